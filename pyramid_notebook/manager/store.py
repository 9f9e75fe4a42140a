"""Where the manager keeps its users' notebooks' state, behind one small interface.

The manager needs five things of its state: read and write a user's
context, lock a user, claim a port, and tell whether a notebook's processes
live.  :class:`NotebookStore` names exactly those (plus listing the users),
so that a second store can slot in without touching the views or the
daemon.  The one planned is a shared database for sites that run several
web nodes, where a notebook may live on another node.

:class:`FileStore` keeps the state in each user's work folder, as the
daemon expects it: the context file, the pid file, and a lock file.
"""
import dataclasses
import os
import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path

from pyramid_notebook.manager.locks import file_lock
from pyramid_notebook.manager.names import user_names, user_work_folder
from pyramid_notebook.manager.ports import PortAllocator
from pyramid_notebook.manager.state import holds_port
from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.protocol.processes import is_daemon_pid, read_pid
from pyramid_notebook.protocol.workfolder import WorkFolder

#: The lock, in the notebook folder, under which a port is picked and recorded.
PORTS_LOCK_NAME = ".ports.lock"


def file_version(path: Path) -> tuple[int, int, int] | None:
    """What changes whenever ``path`` is replaced or written: inode, modification time and size; None if missing."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None if it is gone or a zombie.

    Together with the pid this names one process for good: a pid reused by
    another process comes with another start time.  One small read of
    ``/proc``, where psutil's command line check costs several.
    """
    try:
        with open("/proc/{}/stat".format(pid), "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command's name: state is field 3, starttime field 22.
    return None if fields[0] == b"Z" else int(fields[19])


class NotebookStore(ABC):
    """The state of every user's notebook: contexts, locks, ports and liveness."""

    @abstractmethod
    def names(self) -> list[str]:
        """The users who have, or had, a notebook, sorted."""

    @abstractmethod
    def read_context(self, name: str) -> NotebookContext | None:
        """The user's last context, or None if there is none or it is damaged."""

    @abstractmethod
    def write_context(self, name: str, context: NotebookContext) -> None:
        """Replace the user's context in one step: a reader sees the old one or the new one."""

    @abstractmethod
    def lock(self, name: str) -> AbstractContextManager[None]:
        """Hold the user's lock for the block, against every web process; re-entrant within a thread."""

    @abstractmethod
    def claim_port(self, name: str, context: NotebookContext) -> NotebookContext:
        """``context`` with a port no other notebook holds, written as the user's context in the same step."""

    @abstractmethod
    def is_alive(self, name: str, context: NotebookContext) -> bool:
        """True if a process of the run ``context`` describes lives (see :func:`.state.notebook_state`)."""


class FileStore(NotebookStore):
    """The state in the users' work folders under ``notebook_folder``, shared by the web processes of one machine.

    :param ports: hands out the ports.
    :param start_timeout: how long a start that shows no process yet still holds its port.
    """

    def __init__(self, notebook_folder: Path, ports: PortAllocator, start_timeout: float):
        self.notebook_folder = Path(notebook_folder)
        self.ports = ports
        self.start_timeout = start_timeout
        # The proxy asks for a user's context and liveness on every request:
        # what was read last is kept, keyed on the file's version, and a
        # daemon once checked by its command line is known by its start time.
        self._contexts: dict[Path, tuple[tuple, NotebookContext]] = {}
        self._pids: dict[Path, tuple[tuple, int | None]] = {}
        self._daemons: dict[int, tuple[Path, int]] = {}

    def work_folder(self, name: str) -> WorkFolder:
        """The user's work folder; ValueError for a bad name."""
        return user_work_folder(self.notebook_folder, name)

    def names(self) -> list[str]:
        return user_names(self.notebook_folder)

    def read_context(self, name: str) -> NotebookContext | None:
        """The user's context; read again only when the file has changed.  Each caller gets a copy of its own."""
        path = self.work_folder(name).context_file
        version = file_version(path)
        known = self._contexts.get(path)
        if known is None or known[0] != version:
            context = NotebookContext.read(path)
            if context is None:
                self._contexts.pop(path, None)
                return None
            known = self._contexts[path] = (version, context)
        return dataclasses.replace(known[1])

    def write_context(self, name: str, context: NotebookContext) -> None:
        context.write(self.work_folder(name).context_file)

    def lock(self, name: str) -> AbstractContextManager[None]:
        return file_lock(self.work_folder(name).lock_file)

    def claim_port(self, name: str, context: NotebookContext) -> NotebookContext:
        with file_lock(self.notebook_folder / PORTS_LOCK_NAME):
            context = dataclasses.replace(context, http_port=self.ports.pick(self.claimed_ports()))
            self.write_context(name, context)
        return context

    def claimed_ports(self) -> set[int]:
        """Ports held by notebooks that run or are being started right now (see :func:`.state.holds_port`)."""
        now = time.time()
        claimed = set()
        for name in self.names():
            context = self.read_context(name)
            if context is not None and holds_port(context, self.is_alive(name, context), now, self.start_timeout):
                claimed.add(context.http_port)
        return claimed

    def is_alive(self, name: str, context: NotebookContext) -> bool:
        """True if the daemon the context names runs and its pid file names it; before the daemon has
        recorded its pid, if the pid file names a live daemon or the launcher that forks it still runs.

        A pid file can outlive its process (``kill -9``), be damaged, or name
        a pid now reused by an unrelated process; only a live process whose
        command line is this daemon with this pid file counts.  The launcher
        lives until a second after the daemon wrote its pid file, so between
        them there is no gap.
        """
        pid_file = self.work_folder(name).pid_file
        written = self._written_pid(pid_file)
        if context.pid is not None:
            return written == context.pid and self._is_daemon(written, pid_file)
        return self._is_daemon(written, pid_file) or is_daemon_pid(context.launcher_pid, pid_file)

    def _written_pid(self, pid_file: Path) -> int | None:
        """The pid in ``pid_file``, read again only when the file has changed."""
        version = file_version(pid_file)
        known = self._pids.get(pid_file)
        if known is None or known[0] != version:
            known = self._pids[pid_file] = (version, read_pid(pid_file))
        return known[1]

    def _is_daemon(self, pid: int | None, pid_file: Path) -> bool:
        """True if ``pid`` is the daemon for ``pid_file``: by its command line once, then by its start time."""
        if pid is None:
            return False
        started = process_start_time(pid)
        if started is None:
            self._daemons.pop(pid, None)
            return False
        if self._daemons.get(pid) == (pid_file, started):
            return True
        if not is_daemon_pid(pid, pid_file):
            return False
        self._daemons[pid] = (pid_file, started)
        return True
