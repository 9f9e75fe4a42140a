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
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

from pyramid_notebook.server.context import (
    CONTEXT_FILE_NAME,
    RUN_KEYS,
    context_hash,
    default_notebook_name,
    read_context,
    write_context,
)
from pyramid_notebook.waiting import wait_for

logger = logging.getLogger(__name__)

PID_FILE_NAME = "notebook.pid"
LOCK_FILE_NAME = "notebook.lock"
LAUNCH_LOG_NAME = "notebook.launch.log"
STDERR_LOG_NAME = "notebook.stderr.log"
PORTS_LOCK_NAME = ".ports.lock"

#: The states of a user's notebook (see NotebookManager.get_state).
STARTING, RUNNING, FAILED, STOPPED = "starting", "running", "failed", "stopped"

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


def default_python() -> str:
    """The Python of this environment, even when this process is not a Python binary.

    Under uWSGI ``sys.executable`` is the uwsgi binary, which cannot run
    ``-m pyramid_notebook.server.notebook_daemon``; the environment's own
    interpreter sits in its ``bin`` folder.
    """
    executable = Path(sys.executable)
    if executable.name.startswith("python"):
        return str(executable)
    for name in ("python3", "python"):
        candidate = Path(sys.exec_prefix) / "bin" / name
        if candidate.exists():
            return str(candidate)
    raise RuntimeError(
        "No Python interpreter found for the notebook daemon next to {}: set pyramid_notebook.python".format(
            sys.exec_prefix
        )
    )


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
    :param kill_timeout: seconds after which a notebook ends itself, used or not.
    :param python: the interpreter that runs the daemon; this one by default.
    :param start_timeout: seconds a new notebook may take to answer.
    :param idle_timeout: seconds without use after which a notebook ends itself; 0 for never.
    :param notebook_args: extra command line arguments for every notebook server,
        e.g. ``["--ServerApp.iopub_data_rate_limit=1e10"]``.
    """

    def __init__(
        self,
        notebook_folder: str | os.PathLike,
        min_port: int = 40000,
        port_range: int = 1000,
        kill_timeout: int = 3600,
        python: str | None = None,
        start_timeout: float = 60,
        idle_timeout: float = 0,
        notebook_args: list[str] | tuple[str, ...] = (),
    ):
        self.notebook_folder = Path(notebook_folder).absolute()
        self.min_port = int(min_port)
        self.port_range = int(port_range)
        self.kill_timeout = int(kill_timeout)
        self.python = python or default_python()
        self.start_timeout = float(start_timeout)
        self.idle_timeout = float(idle_timeout)
        self.notebook_args = list(notebook_args)
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
        """Facts about the user's running notebook, or ``None`` when none runs.

        ``memory_rss`` counts the server and all its kernels, in bytes.
        """
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
            "name": name,
            "pid": context["pid"],
            "status": status,
            "state": self.get_state(name)[0],
            "http_port": context["http_port"],
            "started": context.get("started"),
            "last_activity": context.get("last_activity"),
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

    def get_state(self, name: str, context: dict | None = None) -> tuple[str, str]:
        """Where the user's notebook is: ``(state, reason)``, the state one of
        :data:`STARTING`, :data:`RUNNING`, :data:`FAILED` or :data:`STOPPED`.

        Read from the files alone, so any web process can answer: the daemon
        marks the context ``ready`` once its server listens, a launcher that
        failed leaves ``start_error``, and a stop leaves ``stopped_at``.
        A caller that has just read the context may pass it, to spare a read.
        """
        context = self.get_context(name) if context is None else context
        if context is None or context.get("stopped_at"):
            return STOPPED, "no notebook is running"
        if context.get("start_error"):
            return FAILED, context["start_error"]
        pid = self.get_pid(name)
        alive = pid is not None and context.get("pid") == pid
        if context.get("ready"):
            return (RUNNING, "") if alive else (STOPPED, "the notebook has ended")
        if "pid" in context and not alive:
            return FAILED, "the notebook process ended while starting"
        if time.time() - context.get("launched_at", 0) > self.start_timeout:
            return FAILED, "the notebook did not start within {:g} seconds".format(self.start_timeout)
        return STARTING, ""

    def describe_failure(self, name: str, reason: str) -> str:
        """A failed start explained: the reason and the last lines of the logs.

        For the owner of the notebook only: the logs are theirs.
        """
        work_folder = self.get_work_folder(name)
        return "Notebook for {} failed: {}.\n\nLast lines of {}:\n{}\nLast lines of {}:\n{}".format(
            name,
            reason,
            work_folder / STDERR_LOG_NAME,
            log_tail(work_folder / STDERR_LOG_NAME),
            work_folder / LAUNCH_LOG_NAME,
            log_tail(work_folder / LAUNCH_LOG_NAME),
        )

    def start_notebook(self, name: str, context: dict, fg: bool = False, wait: bool = True) -> dict:
        """Start a notebook for ``name`` with ``context``; a notebook the user already has is stopped first.

        With ``wait`` (the default) this returns once the notebook answers,
        with the context as the daemon completed it (pid, port, token), and
        raises :class:`NotebookStartError` if it does not start.  Without,
        it returns at once; :meth:`get_state` follows the start.  With
        ``fg`` the daemon runs in the foreground until it ends, for debugging.
        """
        work_folder = self.get_work_folder(name)
        work_folder.mkdir(exist_ok=True, mode=0o700)
        with file_lock(work_folder / LOCK_FILE_NAME):
            context = self._launch(name, context, fg)
        return self.wait_until_running(name) if wait and not fg else context

    def _launch(self, name: str, context: dict, fg: bool) -> dict:
        """Spawn the daemon for a fresh context; call with the user's lock held."""
        self._stop(name)
        work_folder = self.get_work_folder(name)
        pid_file = self.get_pid_file(name)
        context = {key: value for key, value in context.items() if key not in RUN_KEYS}
        context["context_hash"] = context.get("context_hash") or context_hash(context)
        context["notebook_name"] = default_notebook_name(context)
        context["token"] = secrets.token_urlsafe(32)
        context["idle_timeout"] = self.idle_timeout
        context["launched_at"] = time.time()
        with file_lock(self.notebook_folder / PORTS_LOCK_NAME):
            context["http_port"] = self.pick_port()
            write_context(work_folder / CONTEXT_FILE_NAME, context)

        command = self.daemon_command(
            "fg" if fg else "start", pid_file, work_folder, context["http_port"], self.kill_timeout, *self.notebook_args
        )
        logger.info("Starting notebook for %s on port %d", name, context["http_port"])
        if fg:
            subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
            return self.get_context(name)
        with open(work_folder / LAUNCH_LOG_NAME, "wb") as output:
            launcher = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=work_folder
            )
        threading.Thread(
            target=self._watch_launcher, args=(name, launcher, context["token"]), name="notebook-launcher", daemon=True
        ).start()
        return context

    def _watch_launcher(self, name: str, launcher: subprocess.Popen, token: str) -> None:
        """Reap the launcher (it exits about a second after forking the daemon); record its failure."""
        exit_code = launcher.wait()
        if exit_code == 0:
            return
        context = self.get_context(name)
        if context is not None and context.get("token") == token and "pid" not in context:
            context["start_error"] = "the notebook launcher failed with exit code {}".format(exit_code)
            write_context(self.get_context_file(name), context)

    def wait_until_running(self, name: str) -> dict:
        """Wait until the user's notebook answers and return its context; raise NotebookStartError if it fails.

        A notebook that failed is stopped, so that nothing half-started stays behind.
        """

        def settled():
            state, reason = self.get_state(name)
            if state == RUNNING and not self.is_answering(self.get_context(name)):
                return None
            return (state, reason) if state != STARTING else None

        state, reason = wait_for(settled, self.start_timeout + 1) or self.get_state(name)
        if state != RUNNING:
            failure = self.describe_failure(name, reason or "the notebook did not start")
            self.stop_notebook(name)
            raise NotebookStartError(failure)
        return self.get_context(name)

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
        if self.get_state(name)[0] == STARTING:
            # The daemon may not have written its pid file yet: wait for it,
            # or it would come up after this stop.
            wait_for(lambda: self.get_pid(name) is not None or self.get_state(name)[0] != STARTING, self.start_timeout)
        if self.get_pid(name) is not None:
            logger.info("Stopping notebook for %s", name)
            subprocess.run(
                self.daemon_command("stop", pid_file),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        pid_file.unlink(missing_ok=True)
        context = self.get_context(name)
        if context is not None and not context.get("stopped_at"):
            context["stopped_at"] = time.time()
            write_context(self.get_context_file(name), context)

    def start_notebook_on_demand(self, name: str, context: dict, wait: bool = True) -> tuple[dict, bool]:
        """Reuse the user's notebook if it runs (or is starting) with this context, else (re)start it.

        Returns the notebook's context and whether it was started now.
        ``wait`` as for :meth:`start_notebook`.
        """
        wanted_hash = context.get("context_hash") or context_hash(context)
        work_folder = self.get_work_folder(name)
        work_folder.mkdir(exist_ok=True, mode=0o700)
        with file_lock(work_folder / LOCK_FILE_NAME):
            state, _reason = self.get_state(name)
            current = self.get_context(name)
            if state in (RUNNING, STARTING) and current.get("context_hash") == wanted_hash:
                created = False
            else:
                if state in (RUNNING, STARTING):
                    logger.info("Context of %s changed; restarting the notebook", name)
                current = self._launch(name, dict(context, context_hash=wanted_hash), fg=False)
                created = True
        return (self.wait_until_running(name) if wait else current), created

    def list_notebooks(self) -> list[dict]:
        """The status of every running notebook under the folder, by user name."""
        statuses = []
        for folder in sorted(self.notebook_folder.iterdir()):
            if folder.is_dir() and not folder.name.startswith("."):
                status = self.get_notebook_status(folder.name)
                if status is not None:
                    statuses.append(status)
        return statuses
