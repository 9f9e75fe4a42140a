"""Give the notebook daemon the signal state of a freshly started program.

A child process inherits the blocked-signal mask of the thread that spawned
it, and every ignored signal, across ``exec``.  uWSGI's worker threads other
than the first block most signals, so a notebook launched from one of them
(and every kernel it starts) would ignore SIGINT, which is how "Interrupt
kernel" works, and SIGTERM, so that every stop ran out its grace period and
ended in SIGKILL.  ``subprocess`` resets a few dispositions, never the mask.
"""
import signal

#: Python itself ignores these at start (broken pipes and oversized files
#: become exceptions instead); leave them as Python set them.
IGNORED_BY_PYTHON = frozenset({signal.SIGPIPE, signal.SIGXFSZ})


def reset_signal_state() -> tuple[set[int], set[int]]:
    """Unblock every signal and give each one its default action; return the signals that were blocked and ignored.

    Called first thing in the daemon, before it forks: the server and its
    kernels then behave the same whoever launched them.  SIGINT gets
    Python's KeyboardInterrupt handler, which Python does not install when
    SIGINT was ignored at start.
    """
    blocked = {int(number) for number in signal.pthread_sigmask(signal.SIG_SETMASK, set())}
    ignored = set()
    for number in signal.valid_signals():
        if number in IGNORED_BY_PYTHON:
            continue
        try:
            if signal.getsignal(number) != signal.SIG_IGN:
                continue
            signal.signal(number, signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL)
        except (OSError, ValueError):
            # SIGKILL, SIGSTOP and the real-time signals the C library keeps.
            continue
        ignored.add(int(number))
    return blocked, ignored
