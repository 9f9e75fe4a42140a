"""Start, reuse and stop one notebook server process per site user.

Each user gets a work folder ``<notebook_folder>/<name>`` holding the pid file,
the context file, the logs and the user's notebooks.  The manager never runs
Jupyter itself: it spawns ``notebook_daemon.py`` and reads back the files the
daemon writes.  Several web worker processes may share one notebook folder,
so every decision that must be taken once (start this user, give out this
port) happens under a file lock.
"""
import fcntl
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

from pyramid_notebook.server.context import CONTEXT_FILE_NAME, context_hash, read_context, write_context
from pyramid_notebook.waiting import wait_for

logger = logging.getLogger(__name__)

PID_FILE_NAME = "notebook.pid"
LOCK_FILE_NAME = "notebook.lock"
LAUNCH_LOG_NAME = "notebook.launch.log"
STDERR_LOG_NAME = "notebook.stderr.log"
PORTS_LOCK_NAME = ".ports.lock"

#: How many lines of a log a start failure quotes.
LOG_TAIL_LINES = 20

#: Longest user name, in bytes: a folder name may not exceed 255.
MAX_NAME_BYTES = 200


class NotebookStartError(RuntimeError):
    """A notebook did not come up; the message says where to read why."""


def check_name(name: str) -> str:
    """Return ``name`` if it can safely be used as a folder name, else raise ValueError.

    Names are used as they are, so an administrator can find
    ``mikko@example.com``'s folder at a glance.  Anything that could lead out
    of the notebook folder, or clash with the manager's own files, is refused.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("Notebook user name must be a non-empty string, got {!r}".format(name))
    if "/" in name or "\\" in name:
        raise ValueError("Notebook user name {!r} must not contain a slash".format(name))
    if "\x00" in name or any(ord(character) < 32 or ord(character) == 127 for character in name):
        raise ValueError("Notebook user name {!r} must not contain control characters".format(name))
    if name.startswith("."):
        raise ValueError("Notebook user name {!r} must not start with a dot".format(name))
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError("Notebook user name {!r} is longer than {} bytes".format(name, MAX_NAME_BYTES))
    return name


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, or a note that it does not exist."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return "".join(deque(stream, maxlen=lines))
    except OSError:
        return "({} does not exist)\n".format(path)


@contextmanager
def file_lock(path: Path):
    """Hold an exclusive lock on ``path`` (shared between processes) for the block."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port``, as Tornado would bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class NotebookManager:
    """Per-user notebook processes under one notebook folder.

    :param notebook_folder: where each user's work folder is created.
    :param min_port: the first localhost port handed out.
    :param port_range: how many ports, from ``min_port`` on, may be used:
        the most notebooks that can run at once.
    :param kill_timeout: seconds after which a notebook ends itself.
    :param python: the interpreter that runs the daemon; this one by default.
    :param start_timeout: seconds to wait for a new notebook to answer.
    """

    def __init__(
        self,
        notebook_folder: str | os.PathLike,
        min_port: int = 40000,
        port_range: int = 1000,
        kill_timeout: int = 3600,
        python: str | None = None,
        start_timeout: float = 60,
    ):
        self.notebook_folder = Path(notebook_folder).absolute()
        self.min_port = int(min_port)
        self.port_range = int(port_range)
        self.kill_timeout = int(kill_timeout)
        self.python = python or sys.executable
        self.start_timeout = float(start_timeout)
        self.notebook_folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    # Files

    def get_work_folder(self, name: str) -> Path:
        """The user's work folder (not created here)."""
        return self.notebook_folder / check_name(name)

    def get_pid_file(self, name: str) -> Path:
        return self.get_work_folder(name) / PID_FILE_NAME

    def get_context_file(self, name: str) -> Path:
        return self.get_work_folder(name) / CONTEXT_FILE_NAME

    def get_context(self, name: str) -> dict | None:
        """The user's last context, with its token and port, or ``None``."""
        return read_context(self.get_context_file(name))

    # State

    def get_pid(self, name: str) -> int | None:
        """The pid of the user's notebook daemon, if that process is alive and really is it.

        A pid file can outlive its process (``kill -9``) and the pid can be
        reused by an unrelated process; only a live process whose command
        line names this pid file counts.
        """
        pid_file = self.get_pid_file(name)
        try:
            pid = int(pid_file.read_text().strip())
            command_line = psutil.Process(pid).cmdline()
        except (OSError, ValueError, psutil.Error):
            return None
        return pid if str(pid_file) in command_line else None

    def is_running(self, name: str) -> bool:
        """True if the user's notebook process runs and its context file describes it."""
        pid = self.get_pid(name)
        if pid is None:
            return False
        context = self.get_context(name)
        return context is not None and context.get("pid") == pid

    def get_notebook_status(self, name: str) -> dict | None:
        """Facts about the user's running notebook, or ``None`` when none runs."""
        if not self.is_running(name):
            return None
        context = self.get_context(name)
        try:
            process = psutil.Process(context["pid"])
            processes = [process, *process.children(recursive=True)]
            memory = sum(child.memory_info().rss for child in processes)
            status = process.status()
        except psutil.Error:
            return None
        return {
            "pid": context["pid"],
            "status": status,
            "http_port": context["http_port"],
            "started": context.get("started"),
            "context_hash": context.get("context_hash"),
            "memory_rss": memory,
            "kernels": len(processes) - 1,
        }

    def is_answering(self, context: dict) -> bool:
        """True if the notebook described by ``context`` answers its status API."""
        url = "http://127.0.0.1:{}{}api/status".format(context["http_port"], context.get("notebook_path", "/notebook/"))
        try:
            response = requests.get(url, headers={"Authorization": "token " + context["token"]}, timeout=2)
        except requests.RequestException:
            return False
        return response.status_code == 200

    # Ports

    def claimed_ports(self) -> set[int]:
        """Ports held by notebooks that run or are being started right now."""
        claimed = set()
        for context_file in self.notebook_folder.glob("*/" + CONTEXT_FILE_NAME):
            context = read_context(context_file)
            if not context or "http_port" not in context:
                continue
            pid = context.get("pid")
            if pid is None:
                starting = time.time() - context_file.stat().st_mtime < self.start_timeout
                if starting:
                    claimed.add(context["http_port"])
            elif psutil.pid_exists(pid):
                claimed.add(context["http_port"])
        return claimed

    def pick_port(self) -> int:
        """A port in the configured range that no notebook claims and nothing listens on.

        Call with the ports lock held, and record the port in a context file
        before letting go of it, so that no other process picks it too.
        """
        claimed = self.claimed_ports()
        for port in range(self.min_port, self.min_port + self.port_range):
            if port not in claimed and port_is_free(port):
                return port
        raise NotebookStartError(
            "No free notebook port between {} and {}: raise pyramid_notebook.port_range".format(
                self.min_port, self.min_port + self.port_range - 1
            )
        )

    # Start and stop

    def daemon_command(self, action: str, *arguments) -> list[str]:
        return [self.python, "-m", "pyramid_notebook.server.notebook_daemon", action, *map(str, arguments)]

    def start_notebook(self, name: str, context: dict, fg: bool = False) -> dict:
        """Start a notebook for ``name`` with ``context`` and wait until it answers.

        A notebook the user already has is stopped first.  Returns the context
        as the daemon completed it (pid, port, token, notebook name).  With
        ``fg`` the daemon runs in the foreground and this call returns when it
        ends, which is only useful for debugging.
        """
        work_folder = self.get_work_folder(name)
        work_folder.mkdir(exist_ok=True, mode=0o700)
        with file_lock(work_folder / LOCK_FILE_NAME):
            return self._start(name, context, fg)

    def _start(self, name: str, context: dict, fg: bool) -> dict:
        self._stop(name)
        work_folder = self.get_work_folder(name)
        pid_file = self.get_pid_file(name)
        context = dict(context)
        context["context_hash"] = context.get("context_hash") or context_hash(context)
        context["token"] = secrets.token_urlsafe(32)
        context.pop("pid", None)
        with file_lock(self.notebook_folder / PORTS_LOCK_NAME):
            context["http_port"] = self.pick_port()
            write_context(work_folder / CONTEXT_FILE_NAME, context)

        command = self.daemon_command(
            "fg" if fg else "start", pid_file, work_folder, context["http_port"], self.kill_timeout
        )
        logger.info("Starting notebook for %s on port %d", name, context["http_port"])
        if fg:
            subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
            return self.get_context(name)

        started_at = time.monotonic()
        launch_log = work_folder / LAUNCH_LOG_NAME
        with open(launch_log, "wb") as output:
            launcher = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=work_folder
            )
        try:
            ready = wait_for(lambda: self._start_outcome(name, launcher), self.start_timeout)
        finally:
            # The launcher exits about a second after forking the daemon.
            if launcher.poll() is None and not self.get_pid(name):
                launcher.kill()
            launcher.wait()
        if ready != "ready":
            self._stop(name)
            reason = ready or "did not answer within {:g} seconds".format(self.start_timeout)
            raise NotebookStartError(
                "Notebook for {} {}.\nLast lines of {}:\n{}\nLast lines of {}:\n{}".format(
                    name,
                    reason,
                    work_folder / STDERR_LOG_NAME,
                    log_tail(work_folder / STDERR_LOG_NAME),
                    launch_log,
                    log_tail(launch_log),
                )
            )
        logger.info("Notebook for %s answers after %.2f s", name, time.monotonic() - started_at)
        return self.get_context(name)

    def _start_outcome(self, name: str, launcher: subprocess.Popen) -> str | None:
        """'ready', a reason for failure, or None while the start is still under way."""
        context = self.get_context(name) or {}
        pid = self.get_pid(name)
        if pid is not None and context.get("pid") == pid and self.is_answering(context):
            return "ready"
        exit_code = launcher.poll()
        if exit_code not in (None, 0):
            return "failed to start (launcher exit code {})".format(exit_code)
        if exit_code == 0 and pid is None:
            return "exited during start"
        return None

    def stop_notebook(self, name: str) -> None:
        """Stop the user's notebook and its kernels; nothing happens if none runs.

        The user's folder and notebooks stay.
        """
        work_folder = self.get_work_folder(name)
        if not work_folder.is_dir():
            return
        with file_lock(work_folder / LOCK_FILE_NAME):
            self._stop(name)

    def _stop(self, name: str) -> None:
        pid_file = self.get_pid_file(name)
        if self.get_pid(name) is None:
            pid_file.unlink(missing_ok=True)
            return
        logger.info("Stopping notebook for %s", name)
        subprocess.run(
            self.daemon_command("stop", pid_file),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )

    def start_notebook_on_demand(self, name: str, context: dict) -> tuple[dict, bool]:
        """Reuse the user's notebook if it runs with this context, else (re)start it.

        Returns the running notebook's context and whether it was started now.
        """
        wanted_hash = context.get("context_hash") or context_hash(context)
        work_folder = self.get_work_folder(name)
        work_folder.mkdir(exist_ok=True, mode=0o700)
        with file_lock(work_folder / LOCK_FILE_NAME):
            if self.is_running(name):
                running = self.get_context(name)
                if running.get("context_hash") == wanted_hash:
                    return running, False
                logger.info("Context of %s changed; restarting the notebook", name)
            return self._start(name, dict(context, context_hash=wanted_hash), fg=False), True
