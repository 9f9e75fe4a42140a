"""The web side of a user's daemon processes: its command line, spawning it, and ending every one of them.

The manager never runs Jupyter itself: it spawns ``notebook_daemon.py`` (the
launcher, which forks the daemon and exits) and finds the processes again
by their command lines (:mod:`pyramid_notebook.protocol.processes`), never by
a number in a file alone.
"""
import logging
import subprocess
import threading
from pathlib import Path
from typing import BinaryIO

import psutil

from pyramid_notebook.protocol.processes import DAEMON_MODULE, find_daemons, is_gone, terminate_tree

logger = logging.getLogger(__name__)

#: Rounds of looking for daemons of a pid file and ending them: a launcher
#: caught in the middle of forking may leave a child that the next look finds.
STOP_ROUNDS = 5


def daemon_command(python: str, action: str, *arguments: object) -> list[str]:
    """The daemon's command line: ``python -m pyramid_notebook.server.notebook_daemon ACTION ARGUMENTS...``."""
    return [python, "-m", DAEMON_MODULE, action, *map(str, arguments)]


def spawn_launcher(command: list[str], work_folder: Path, output: BinaryIO | None) -> subprocess.Popen:
    """Run the daemon's launcher with its output to ``output``, or to this terminal when None (``fg``).

    Raises OSError if the command cannot run.  A detaching launcher exits
    about a second after forking the daemon: a thread reaps it, so that it
    does not linger as a zombie.
    """
    launcher = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=None if output is None else subprocess.STDOUT,
        cwd=work_folder,
    )
    if output is not None:
        threading.Thread(target=launcher.wait, name="notebook-launcher-reaper", daemon=True).start()
    return launcher


def deepest_first(processes: list[psutil.Process]) -> list[psutil.Process]:
    """``processes`` ordered so that each comes before its ancestors among them.

    A launcher forks the daemon: ending the daemon first lets it shut its
    kernels down, and ending a launcher first could not stop a daemon it
    has already forked.
    """
    pids = {process.pid for process in processes}

    def depth(process: psutil.Process) -> int:
        try:
            return sum(1 for parent in process.parents() if parent.pid in pids)
        except psutil.Error:
            return 0

    return sorted(processes, key=depth, reverse=True)


def end_daemons(pid_file: Path) -> list[int]:
    """End every daemon and launcher for ``pid_file``, whatever the pid file says; the pids ended.

    Found by their command lines, so a server whose pid file was damaged is
    stopped too, instead of running on as an orphan beside the next one.
    """
    ended = []
    for _round in range(STOP_ROUNDS):
        daemons = find_daemons(pid_file)
        if not daemons:
            break
        for process in deepest_first(daemons):
            if not is_gone(process):
                terminate_tree(process.pid)
                ended.append(process.pid)
    return ended
