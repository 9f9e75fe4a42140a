"""The daemonocle daemon that runs one notebook server: the only code that touches daemonocle's insides.

daemonocle detaches the server, writes its pid file and runs the ``start``,
``stop`` and ``status`` actions.  Its defaults trust whatever number the pid
file holds and do not always detach; :class:`NotebookDaemon` changes that,
overriding daemonocle's private methods, all of them here.
"""
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import daemonocle
import psutil

from pyramid_notebook.protocol.processes import STOP_GRACE_SECONDS, daemon_pid, find_daemons, read_pid, terminate_tree
from pyramid_notebook.protocol.workfolder import WorkFolder
from pyramid_notebook.server.command_line import DaemonCommand

logger = logging.getLogger(__name__)

#: The daemon's name in daemonocle's messages ("notebook_daemon is not running").
DAEMON_NAME = "notebook_daemon"


class NotebookDaemon(daemonocle.Daemon):
    """daemonocle's daemon, made to act only on its own processes and to behave the same wherever it starts.

    Every use of daemonocle's private methods is here:

    * the pid file counts only when it names this daemon for this pid file
      (:func:`pyramid_notebook.protocol.processes.daemon_pid`): garbage,
      ``1`` or another program's pid means "not running", and nothing else
      is ever signalled;
    * the pid file is replaced in one step, and removed at exit only while
      it still holds this process's pid: an old server ending late must not
      delete the pid file of the server that replaced it;
    * the daemon always detaches.  daemonocle would not when its parent is
      PID 1 (a launcher whose own parent had exited), leaving two processes
      per notebook and the server's log in the launch log.
    """

    @classmethod
    def _is_detach_necessary(cls):
        return True

    def _read_pid_file(self):
        return daemon_pid(Path(self.pid_file))

    def _write_pid_file(self):
        pid_file = Path(self.pid_file)
        temporary = pid_file.with_name(".{}.{}".format(pid_file.name, os.getpid()))
        temporary.write_text("{}\n".format(os.getpid()), encoding="ascii")
        os.replace(temporary, pid_file)
        self._pid_fd = None

    def _close_pid_file(self):
        if read_pid(Path(self.pid_file)) == os.getpid():
            Path(self.pid_file).unlink(missing_ok=True)

    @daemonocle.expose_action
    def start(self, debug=False, *args, **kwargs):
        """Start the server, first ending any earlier server of this pid file that its pid file lost track of."""
        pid_file = Path(self.pid_file)
        if daemon_pid(pid_file) is None:
            own_lineage = {process.pid for process in psutil.Process().parents()}
            for orphan in find_daemons(pid_file):
                if orphan.pid not in own_lineage:
                    logger.warning("Stopping server %d: its pid file %s no longer names it", orphan.pid, pid_file)
                    terminate_tree(orphan.pid, self.stop_timeout)
        return super().start(debug, *args, **kwargs)

    @daemonocle.expose_action
    def stop(self, timeout=None, force=True):
        """Stop the notebook server and every kernel it started.

        A pid file that does not name this daemon is left alone as far as
        signals go: a server that it lost track of is found by its command
        line instead, so a damaged pid file never leaves one running.
        """
        pid_file = Path(self.pid_file)
        servers = find_daemons(pid_file)
        if not servers:
            if read_pid(pid_file) is not None or pid_file.exists():
                logger.info("Removing %s: it names no running notebook server", pid_file)
            pid_file.unlink(missing_ok=True)
            self._echo("{} is not running\n".format(self.name))
            return 0
        for server in servers:
            terminate_tree(server.pid, timeout or self.stop_timeout)
        if daemon_pid(pid_file) is None:
            pid_file.unlink(missing_ok=True)
        self._echo("Stopped {} (PID {})\n".format(self.name, ", ".join(str(server.pid) for server in servers)))
        return 0

    @daemonocle.expose_action
    def status(self, json=False, fields=None):
        """Print the status without daemonocle's one-second CPU sampling; exit 1 if not running."""
        pid = daemon_pid(Path(self.pid_file))
        try:
            state = psutil.Process(pid).status() if pid is not None else None
        except psutil.NoSuchProcess:
            state = None
        if state is None:
            self._echo("{} is not running\n".format(self.name))
            sys.exit(1)
        self._echo("{} is {} (PID {})\n".format(self.name, state, pid))
        return 0


def report_shutdown(message: str, code: int) -> None:
    """daemonocle's shutdown hook: say in the stderr log why the daemon ended, when it failed."""
    if code:
        sys.stderr.write("{}: {}\n".format(DAEMON_NAME, message))
        sys.stderr.flush()


def make_daemon(command: DaemonCommand, worker: Callable[[], None]) -> NotebookDaemon:
    """The daemon for a checked command line; ``worker`` runs the server, for ``start`` and ``fg``."""
    options = dict(
        name=DAEMON_NAME,
        pid_file=str(command.pid_file),
        work_dir=str(command.work_folder),
        detach=command.action != "fg",
        stop_timeout=STOP_GRACE_SECONDS,
    )
    if command.runs_server:
        logs = WorkFolder(command.work_folder)
        options.update(
            worker=worker,
            hooks={"shutdown": report_shutdown},
            stdout_file=str(logs.stdout_log),
            stderr_file=str(logs.stderr_log),
            umask=0o077,
        )
    return NotebookDaemon(**options)
