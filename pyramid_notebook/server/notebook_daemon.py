"""Run one user's Jupyter Notebook server as a daemon.

Usage::

    python -m pyramid_notebook.server.notebook_daemon start|fg PID_FILE WORK_FOLDER PORT KILL_TIMEOUT [extra...]
    python -m pyramid_notebook.server.notebook_daemon stop|status PID_FILE

The web process never imports Jupyter: it talks to this program only through
its command line (:mod:`.command_line`), its pid file and the context file
(``context.json`` beside the pid file).  ``start`` detaches with daemonocle
(:mod:`.daemon`); ``fg`` stays in the foreground, which is handy when a
notebook will not start and you want to see why.  The server (:mod:`.worker`,
configured by :mod:`.jupyter`) binds to 127.0.0.1 only and accepts nothing
without the secret token that the manager put in the context file.

``stop``, ``status`` and ``start`` act only on a process whose command line
is this daemon for this pid file (see :mod:`pyramid_notebook.protocol.processes`),
whatever number the pid file holds.
"""
import functools
import logging
import os
import sys

if __package__ in (None, ""):
    # Run as a script (``python .../notebook_daemon.py``): drop this folder
    # from the path so its modules (jupyter.py, daemon.py) cannot shadow top-level ones.
    sys.path.pop(0)

from pyramid_notebook.protocol.workfolder import WorkFolder  # noqa: E402
from pyramid_notebook.server.command_line import USAGE, DaemonCommand, UsageError, parse_command_line  # noqa: E402
from pyramid_notebook.server.daemon import make_daemon  # noqa: E402
from pyramid_notebook.server.signals import reset_signal_state  # noqa: E402
from pyramid_notebook.server.worker import run_worker  # noqa: E402

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def configure_logging(command: DaemonCommand) -> None:
    """Send this package's log to stderr: the server's stderr log once the daemon has detached.

    ``stop`` also appends its warnings (a server that had to be killed) to
    the notebook's stderr log, where whoever looks into the notebook finds them.
    """
    package_logger = logging.getLogger("pyramid_notebook")
    package_logger.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter(LOG_FORMAT))
    package_logger.addHandler(console)
    if command.action == "stop" and command.pid_file.parent.is_dir():
        notebook_log = logging.FileHandler(WorkFolder.of_pid_file(command.pid_file).stderr_log, delay=True)
        notebook_log.setLevel(logging.WARNING)
        notebook_log.setFormatter(logging.Formatter(LOG_FORMAT))
        package_logger.addHandler(notebook_log)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 for a wrong command line)."""
    # Before anything else, and before daemonocle forks: the launcher may
    # have inherited blocked or ignored signals (see .signals).
    blocked, ignored = reset_signal_state()
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    try:
        command = parse_command_line(argv)
    except UsageError as error:
        sys.stderr.write("notebook_daemon: {}\nUsage:\n{}\n".format(error, USAGE))
        return 2
    if from_command_line and command.runs_server and argv[1] != str(command.pid_file):
        # A running server is recognised by its command line naming its pid
        # file, so that must be the absolute path.
        os.execv(sys.executable, command.argv(sys.executable))
    configure_logging(command)
    if blocked or ignored:
        logger.info("Launched with signals blocked %s and ignored %s: reset them", sorted(blocked), sorted(ignored))
    daemon = make_daemon(command, functools.partial(run_worker, command))
    return daemon.do_action(command.daemonocle_action) or 0


if __name__ == "__main__":
    sys.exit(main())
