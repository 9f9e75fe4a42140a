"""Find and end notebook daemons by what they are, not by a number in a file.

A pid file only says which pid a daemon had.  The daemon may be gone and the
pid reused by an unrelated program, or the file may be damaged (garbage,
``1``, another program's pid).  Everything that acts on a daemon first checks
that the process's command line is this daemon *for this pid file*: the
daemon is always started as ``python -m pyramid_notebook.server.notebook_daemon
ACTION PID_FILE ...`` or ``python .../notebook_daemon.py ACTION PID_FILE ...``
with an absolute ``PID_FILE``.
"""
import logging
import os
from pathlib import Path

import psutil

from pyramid_notebook.waiting import wait_for

logger = logging.getLogger(__name__)

DAEMON_MODULE = "pyramid_notebook.server.notebook_daemon"
DAEMON_SCRIPT_NAME = "notebook_daemon.py"

#: The daemon's actions that run a server (and so stay alive).
SERVER_ACTIONS = ("start", "fg")

#: Seconds a stopped notebook gets to shut its kernels down before SIGKILL.
STOP_GRACE_SECONDS = 10


def _daemon_arguments(command_line: list[str]) -> list[str] | None:
    """The daemon's own arguments (action, pid file, ...) if ``command_line`` runs the daemon, else None."""
    for index, argument in enumerate(command_line):
        if argument == "-m" and command_line[index + 1 : index + 2] == [DAEMON_MODULE]:
            return command_line[index + 2 :]
        if os.path.basename(argument) == DAEMON_SCRIPT_NAME and index > 0:
            return command_line[index + 1 :]
    return None


def _same_file_name(named: str, pid_file: Path) -> bool:
    """True if the path ``named`` on a command line is ``pid_file`` (both absolute)."""
    if not os.path.isabs(named):
        return False
    wanted = os.path.abspath(pid_file)
    return os.path.normpath(named) == wanted or os.path.realpath(named) == os.path.realpath(wanted)


def is_daemon_for(process: psutil.Process, pid_file: Path) -> bool:
    """True only if ``process`` is a live notebook daemon serving ``pid_file``.

    Guards every signal we send: a pid read from a file may by now belong to
    anything.  A zombie has exited already and counts as not running.
    """
    try:
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        arguments = _daemon_arguments(process.cmdline())
    except (psutil.Error, OSError):
        return False
    if not arguments or len(arguments) < 2 or arguments[0] not in SERVER_ACTIONS:
        return False
    return _same_file_name(arguments[1], pid_file)


def read_pid(pid_file: Path) -> int | None:
    """The pid written in ``pid_file``, or None if the file is missing or does not hold a usable pid.

    Pid 1 (init) and anything that is not a positive whole number are damage,
    never a daemon.
    """
    try:
        text = Path(pid_file).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid > 1 else None


def is_daemon_pid(pid: int | None, pid_file: Path) -> bool:
    """True if ``pid`` is a live daemon (or its launcher) for ``pid_file``, whatever the pid file says."""
    if pid is None:
        return False
    try:
        process = psutil.Process(pid)
    except psutil.Error:
        return False
    return is_daemon_for(process, pid_file)


def daemon_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is the daemon for this pid file, else None."""
    pid = read_pid(pid_file)
    return pid if is_daemon_pid(pid, pid_file) else None


def find_daemons(pid_file: Path) -> list[psutil.Process]:
    """Every live daemon for ``pid_file``, whatever its pid file says.

    Finds a server whose pid file was damaged or overwritten, so that it can
    be stopped instead of left running as an orphan nobody knows about.
    """
    found = []
    for process in psutil.process_iter():
        if process.pid != os.getpid() and is_daemon_for(process, pid_file):
            found.append(process)
    return found


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (kernels), or nothing if it is gone."""
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def is_gone(process: psutil.Process) -> bool:
    """True once ``process`` has exited.

    A zombie counts as gone: it has exited and only waits for its parent
    (for a daemon, the init process, which may reap it only seconds later).
    """
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for ``processes`` to exit; return those still alive."""
    wait_for(lambda: all(is_gone(process) for process in processes), timeout)
    return [process for process in processes if not is_gone(process)]


def terminate_tree(pid: int, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the process, give it ``grace`` seconds, then SIGKILL what is left of its tree.

    The descendants are collected first: once the server is gone its kernels
    would be orphans that nobody knows about.  A server that stops cleanly
    shuts its kernels down itself.  A forced kill is logged with the pid: it
    means a stop did not work as it should.
    """
    processes = process_tree(pid)
    if not processes:
        return
    try:
        processes[0].terminate()
    except psutil.NoSuchProcess:
        pass
    alive = wait_gone(processes, grace)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
        logger.warning(
            "Process %d (of the tree of %d) did not exit within %.0f s of SIGTERM: killed it with SIGKILL",
            process.pid,
            pid,
            grace,
        )
    wait_gone(alive, grace)
