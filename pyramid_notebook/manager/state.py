"""Where a user's notebook is, decided from its context alone: no files, no processes, no clock.

Every web process answers "is this user's notebook running?" from the
context file and one fact about the process table (does a process of this
run live?).  Keeping that decision in a pure function means it is made the
same way everywhere (the views, the port allocator, the manager's stop) and
that tests can walk through every case without starting a notebook.

A read can find something that must be recorded once: a crash, a start
whose processes ended, a start past its time.  :func:`notebook_state` names
that ``problem``; the manager records it under the user's lock.
"""
from typing import NamedTuple

from pyramid_notebook.protocol.context import STOPPED_CRASH, STOPPED_PID_FILE_DAMAGED, NotebookContext

#: The states of a user's notebook.
STARTING, RUNNING, FAILED, STOPPED = "starting", "running", "failed", "stopped"

#: The problems a state read can find, which must be recorded once.
CRASHED = "crashed"
START_DIED = "start died"
START_TIMED_OUT = "start timed out"
LAUNCH_UNCONFIRMED = "launch unconfirmed"


class Observation(NamedTuple):
    """What a read of a notebook's context found: its state, why (for failures and stops), and what to record."""

    state: str
    reason: str = ""
    problem: str | None = None


def start_is_recent(context: NotebookContext, now: float, start_timeout: float) -> bool:
    """True while a start launched at ``context.launched_at`` is still within ``start_timeout``."""
    return now - (context.launched_at or 0) <= start_timeout


def notebook_state(
    context: NotebookContext | None, pid_alive: bool, now: float, start_timeout: float, locked: bool = False
) -> Observation:
    """The state of the notebook ``context`` describes, and the problem a read must record, if any.

    :param pid_alive: a process of this run lives: the daemon the context
        names once it has recorded its pid; before that, the daemon its pid
        file names, or the launcher that forks it.
    :param now: the current time, as ``time.time()``.
    :param start_timeout: seconds a start may take before it counts as failed.
    :param locked: the caller holds the user's lock, so a start that has not
        recorded its launcher yet is not in progress elsewhere: it was cut short.

    The daemon marks the context ``ready`` once its server listens, a failed
    start leaves ``start_error``, and a stop leaves ``stopped_at``.
    """
    if context is None:
        return Observation(STOPPED, "no notebook is running")
    if context.start_error:
        return Observation(FAILED, context.start_error)
    if context.stopped_at:
        reason = context.stopped_reason
        return Observation(STOPPED, "the notebook stopped: {}".format(reason) if reason else "no notebook is running")
    daemon_recorded = context.pid is not None
    if context.ready:
        if daemon_recorded and pid_alive:
            return Observation(RUNNING)
        return Observation(STOPPED, "the notebook has ended", CRASHED)
    if daemon_recorded and not pid_alive:
        return Observation(FAILED, "the notebook process ended while starting", START_DIED)
    if not start_is_recent(context, now, start_timeout):
        return Observation(
            FAILED, "the notebook did not start within {:g} seconds".format(start_timeout), START_TIMED_OUT
        )
    if not pid_alive:
        if context.launcher_pid is None:
            if locked:
                return Observation(FAILED, "the launch was cut short before the daemon was started", START_DIED)
            return Observation(STARTING, "", LAUNCH_UNCONFIRMED)
        return Observation(FAILED, "the notebook daemon ended while starting", START_DIED)
    return Observation(STARTING)


def holds_port(context: NotebookContext | None, pid_alive: bool, now: float, start_timeout: float) -> bool:
    """True if the notebook ``context`` describes holds its port: it runs, or it is being started right now.

    A stopped or failed notebook holds none, nor does one whose processes
    have all ended; a start that has not shown a process yet holds its port
    while it is recent, since its launcher may be about to spawn.
    """
    if context is None or context.http_port is None or context.stopped_at or context.start_error:
        return False
    if pid_alive:
        return True
    return context.pid is None and start_is_recent(context, now, start_timeout)


def crash_stop_reason(server_runs_on: bool) -> str:
    """Why a notebook that no longer counts as running ended, as recorded in ``stopped_reason``.

    ``server_runs_on``: its server still runs, though its pid file names
    something else; the pid file was damaged, and the server is ended too.
    """
    return STOPPED_PID_FILE_DAMAGED if server_runs_on else STOPPED_CRASH
