"""Start, reuse and stop one notebook server process per site user.

Each user gets a work folder ``<notebook_folder>/<name>`` holding the pid file,
the context file, the logs and the user's notebooks.  The manager never runs
Jupyter itself: it spawns ``notebook_daemon.py`` and reads back the files the
daemon writes.  Several web worker processes may share one notebook folder,
so every decision that must be taken once (start this user, give out this
port, record why a notebook ended) happens under a file lock.
"""

import fcntl
import logging
import math
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
    STOPPED_BY_USER,
    STOPPED_CONTEXT_CHANGE,
    STOPPED_CRASH,
    STOPPED_PID_FILE_DAMAGED,
    STOPPED_START_FAILED,
    context_hash,
    default_notebook_name,
    read_context,
    write_context,
)
from pyramid_notebook.server.processes import daemon_pid, find_daemons, is_daemon_for, is_gone, terminate_tree
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

#: The context key naming the launcher process (``notebook_daemon.py start``)
#: of the current start, so that any web process can tell whether it still runs.
LAUNCHER_PID_KEY = "launcher_pid"

#: Seconds to wait, beyond ``start_timeout``, for a failed start to be recorded by whoever noticed it.
SETTLE_GRACE_SECONDS = 5

#: Rounds of looking for daemons of a pid file and ending them: a launcher
#: caught in the middle of forking may leave a child that the next look finds.
STOP_ROUNDS = 5

#: Seconds to wait for the exit code of a launcher known to have exited.
LAUNCHER_EXIT_SECONDS = 2

#: Lines that daemonocle's shutdown hook and launcher write around a failure;
#: they say that it failed, not why.
UNINFORMATIVE_LOG_PREFIXES = ("notebook_daemon: ", "Starting notebook_daemon", "ERROR: Child exited")

# The problems a state read can find, which must be recorded once (see NotebookManager._observe).
CRASHED = "crashed"
START_DIED = "start died"
START_TIMED_OUT = "start timed out"
LAUNCH_UNCONFIRMED = "launch unconfirmed"


class NotebookStartError(RuntimeError):
    """A notebook did not come up; the message says why, or where to read why."""


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


def last_informative_line(path: Path) -> str | None:
    """The last line of a log that says something about a failure, or None.

    daemonocle's own lines ("Exiting with non-zero exit code 1") say only
    that the server failed; the line before them says why.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            lines = [line.strip() for line in deque(stream, maxlen=LOG_TAIL_LINES)]
    except OSError:
        return None
    for line in reversed(lines):
        if line and not line.startswith(UNINFORMATIVE_LOG_PREFIXES):
            return line
    return None


_held_locks = threading.local()


@contextmanager
def file_lock(path: Path):
    """Hold an exclusive lock on ``path`` (shared between processes) for the block.

    A thread that holds the lock already may take it again: a state read
    that finds something to record takes the user's lock, and it may run
    inside a launch or a stop that holds it.
    """
    held = _held_locks.__dict__.setdefault("paths", set())
    key = os.path.abspath(path)
    if key in held:
        yield
        return
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
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


def seconds(value: float, what: str, allow_zero: bool = False) -> float:
    """``value`` as a finite number of seconds, else ValueError naming ``what``.

    NaN or infinity would turn every wait on it into a wait forever.
    """
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(
            "{} must be a finite number of seconds{}, got {!r}".format(what, "" if allow_zero else " above 0", value)
        )
    return number


def is_alive_process(pid: int | None, pid_file: Path) -> bool:
    """True if ``pid`` is a live daemon (or its launcher) for ``pid_file``."""
    if pid is None:
        return False
    try:
        process = psutil.Process(pid)
    except psutil.Error:
        return False
    return is_daemon_for(process, pid_file)


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
        self.start_timeout = seconds(start_timeout, "start_timeout")
        self.idle_timeout = seconds(idle_timeout, "idle_timeout", allow_zero=True)
        self.notebook_args = list(notebook_args)
        #: The launchers this process spawned, by user: their exit codes explain failed starts.
        self._launchers: dict[str, subprocess.Popen] = {}
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

    def _user_lock(self, name: str):
        return file_lock(self.get_work_folder(name) / LOCK_FILE_NAME)

    def _prepare_work_folder(self, name: str) -> Path:
        """Create the user's work folder and lock file, or raise NotebookStartError naming what failed."""
        work_folder = self.get_work_folder(name)
        try:
            work_folder.mkdir(exist_ok=True, mode=0o700)
            os.close(os.open(work_folder / LOCK_FILE_NAME, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as error:
            raise NotebookStartError(
                "Cannot create the notebook work folder {}: {}".format(work_folder, error.strerror or error)
            ) from None
        return work_folder

    # State

    def get_pid(self, name: str) -> int | None:
        """The pid of the user's notebook daemon, if that process is alive and really is it.

        A pid file can outlive its process (``kill -9``), be damaged, or name
        a pid now reused by an unrelated process; only a live process whose
        command line is this daemon with this pid file counts.
        """
        return daemon_pid(self.get_pid_file(name))

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
            "launch_url": context.get("launch_url"),
            "stopped_at": None,
            "stopped_reason": None,
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
        """Ports held by notebooks that run or are being started right now.

        A stopped or failed notebook holds none, nor does a pid that has
        exited (a zombie included) or that is not this user's daemon.
        """
        claimed = set()
        for context_file in self.notebook_folder.glob("*/" + CONTEXT_FILE_NAME):
            context = read_context(context_file)
            if not context or "http_port" not in context or context.get("stopped_at") or context.get("start_error"):
                continue
            pid_file = context_file.parent / PID_FILE_NAME
            if "pid" in context:
                holds = is_alive_process(context["pid"], pid_file)
            else:
                holds = self._start_is_recent(context) or self._start_shows_life(pid_file, context)
            if holds:
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

    # Reading the state

    def daemon_command(self, action: str, *arguments) -> list[str]:
        return [self.python, "-m", "pyramid_notebook.server.notebook_daemon", action, *map(str, arguments)]

    def _start_is_recent(self, context: dict) -> bool:
        return time.time() - context.get("launched_at", 0) <= self.start_timeout

    def _start_shows_life(self, pid_file: Path, context: dict) -> bool:
        """True if the daemon of a start, or the launcher that forks it, still runs.

        The launcher lives until a second after the daemon wrote its pid
        file, so between them there is no gap.
        """
        return daemon_pid(pid_file) is not None or is_alive_process(context.get(LAUNCHER_PID_KEY), pid_file)

    def _observe(self, name: str, context: dict | None, locked: bool = False) -> tuple[str, str, str | None]:
        """``(state, reason, problem)`` from the files and the process table, changing nothing.

        ``problem`` names what a state read must record once (a crash, a
        start that died or timed out), or is None.  ``locked`` says the
        caller holds the user's lock, so a start without a launcher yet is
        not one in progress in another thread or process: it was cut short.
        """
        if context is None:
            return STOPPED, "no notebook is running", None
        if context.get("start_error"):
            return FAILED, context["start_error"], None
        if context.get("stopped_at"):
            reason = context.get("stopped_reason")
            return STOPPED, "the notebook stopped: {}".format(reason) if reason else "no notebook is running", None
        pid_file = self.get_pid_file(name)
        pid = daemon_pid(pid_file)
        alive = pid is not None and context.get("pid") == pid
        if context.get("ready"):
            return (RUNNING, "", None) if alive else (STOPPED, "the notebook has ended", CRASHED)
        if "pid" in context and not alive:
            return FAILED, "the notebook process ended while starting", START_DIED
        if not self._start_is_recent(context):
            return FAILED, "the notebook did not start within {:g} seconds".format(self.start_timeout), START_TIMED_OUT
        if "pid" not in context and pid is None:
            if LAUNCHER_PID_KEY not in context:
                if locked:
                    return FAILED, "the launch was cut short before the notebook daemon was started", START_DIED
                return STARTING, "", LAUNCH_UNCONFIRMED
            if not is_alive_process(context[LAUNCHER_PID_KEY], pid_file):
                return FAILED, "the notebook daemon ended while starting", START_DIED
        return STARTING, "", None

    def get_state(self, name: str, context: dict | None = None) -> tuple[str, str]:
        """Where the user's notebook is: ``(state, reason)``, the state one of
        :data:`STARTING`, :data:`RUNNING`, :data:`FAILED` or :data:`STOPPED`.

        Read from the files and the process table, so any web process can
        answer: the daemon marks the context ``ready`` once its server
        listens, a failed start leaves ``start_error``, and a stop leaves
        ``stopped_at``.  What only a read can notice (a crash, a start whose
        process ended, a start past ``start_timeout``) is recorded at once by
        the first reader, under the user's lock, and a start that failed is
        ended so that nothing of it keeps running.  A caller that has just
        read the context may pass it, to spare a read.
        """
        context = self.get_context(name) if context is None else context
        state, reason, problem = self._observe(name, context)
        if problem is None:
            return state, reason
        return self._settle(name)

    def _settle(self, name: str) -> tuple[str, str]:
        """Record what a state read found (see :meth:`_observe`) once, under the user's lock; the state after."""
        with self._user_lock(name):
            context = self.get_context(name)
            state, reason, problem = self._observe(name, context, locked=True)
            if problem == CRASHED:
                # A server that runs on while its pid file names something
                # else counts as ended, and is ended: no orphan stays.
                damaged = is_alive_process(context.get("pid"), self.get_pid_file(name))
                self._end_daemons(name)
                self._record_stop(name, STOPPED_PID_FILE_DAMAGED if damaged else STOPPED_CRASH, logging.WARNING)
            elif problem == START_TIMED_OUT:
                self._fail_start(name, reason)
            elif problem == START_DIED:
                self._fail_start(name, self._explain_start_death(name, context, reason))
            else:
                return state, reason
            state, reason, _problem = self._observe(name, self.get_context(name), locked=True)
            return state, reason

    def _explain_start_death(self, name: str, context: dict, reason: str) -> str:
        """``reason`` with what the logs and the launcher's exit code say about it."""
        launcher = self._launchers.get(name)
        if launcher is not None and launcher.pid == context.get(LAUNCHER_PID_KEY):
            try:
                exit_code = launcher.wait(timeout=LAUNCHER_EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                exit_code = None
            if exit_code:
                reason = "the notebook launcher failed with exit code {}".format(exit_code)
        work_folder = self.get_work_folder(name)
        server_log = work_folder / STDERR_LOG_NAME
        try:
            server_log_is_this_runs = server_log.stat().st_mtime >= context.get("launched_at", 0)
        except OSError:
            server_log_is_this_runs = False
        cause = last_informative_line(server_log if server_log_is_this_runs else work_folder / LAUNCH_LOG_NAME)
        return "{}: {}".format(reason, cause) if cause else reason

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

    # Start

    def start_notebook(self, name: str, context: dict, fg: bool = False, wait: bool = True) -> dict:
        """Start a notebook for ``name`` with ``context``; a notebook the user already has is stopped first.

        With ``wait`` (the default) this returns once the notebook answers,
        with the context as the daemon completed it (pid, port, token), and
        raises :class:`NotebookStartError` if it does not start.  Without,
        it returns at once; :meth:`get_state` follows the start.  With
        ``fg`` the daemon runs in the foreground until it ends, for debugging.
        Any failure to launch raises :class:`NotebookStartError` naming the cause.
        """
        self._prepare_work_folder(name)
        with self._user_lock(name):
            context = self._launch(name, context, fg)
        if fg:
            self._launchers[name].wait()
            return self.get_context(name)
        return self.wait_until_running(name) if wait else context

    def _launch(self, name: str, context: dict, fg: bool) -> dict:
        """Stop what runs for the user and spawn the daemon for a fresh context; call with the user's lock held."""
        wanted_hash = context.get("context_hash") or context_hash(context)
        previous = self.get_context(name)
        changed = previous is not None and previous.get("context_hash") != wanted_hash
        self._stop(name, STOPPED_CONTEXT_CHANGE if changed else STOPPED_BY_USER)
        work_folder = self.get_work_folder(name)
        pid_file = self.get_pid_file(name)
        context = {key: value for key, value in context.items() if key not in RUN_KEYS}
        context["context_hash"] = wanted_hash
        context["notebook_name"] = default_notebook_name(context)
        context["token"] = secrets.token_urlsafe(32)
        context["idle_timeout"] = self.idle_timeout
        context["launched_at"] = time.time()
        try:
            with file_lock(self.notebook_folder / PORTS_LOCK_NAME):
                context["http_port"] = self.pick_port()
                write_context(work_folder / CONTEXT_FILE_NAME, context)
        except OSError as error:
            message = "Cannot write the notebook's files in {}: {}".format(work_folder, error.strerror or error)
            raise self._launch_failure(name, message) from None

        command = self.daemon_command(
            "fg" if fg else "start", pid_file, work_folder, context["http_port"], self.kill_timeout, *self.notebook_args
        )
        logger.info("Starting notebook for %s on port %d", name, context["http_port"])
        try:
            # In the foreground the daemon's output goes to this terminal.
            output = None if fg else open(work_folder / LAUNCH_LOG_NAME, "wb")
        except OSError as error:
            message = "Cannot write {}: {}".format(work_folder / LAUNCH_LOG_NAME, error.strerror or error)
            raise self._launch_failure(name, message) from None
        try:
            launcher = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=None if fg else subprocess.STDOUT,
                cwd=work_folder,
            )
        except OSError as error:
            message = "Cannot run the notebook daemon with {} (pyramid_notebook.python): {}".format(
                self.python, error.strerror or error
            )
            raise self._launch_failure(name, message) from None
        finally:
            if output is not None:
                output.close()
        self._launchers[name] = launcher
        if not fg:
            # The launcher exits about a second after forking the daemon: reap it.
            threading.Thread(target=launcher.wait, name="notebook-launcher-reaper", daemon=True).start()
        context[LAUNCHER_PID_KEY] = launcher.pid
        # Added to the file as it is now: the daemon writes to it too, though
        # not before its server has initialised, a second from now at best.
        current = self.get_context(name)
        if current is not None and current.get("token") == context["token"]:
            write_context(work_folder / CONTEXT_FILE_NAME, dict(current, **{LAUNCHER_PID_KEY: launcher.pid}))
        return context

    def _launch_failure(self, name: str, message: str) -> NotebookStartError:
        """Record a launch that could not spawn its daemon; the error to raise, with ``message``."""
        try:
            self._fail_start(name, message)
        except OSError:
            logger.exception("Could not record the failed start of %s", name)
        return NotebookStartError(message)

    def _fail_start(self, name: str, reason: str) -> None:
        """End what is left of a failed start and record why; call with the user's lock held."""
        self._end_daemons(name)
        context = self.get_context(name)
        if context is None:
            return
        context.update(start_error=reason, stopped_at=time.time(), stopped_reason=STOPPED_START_FAILED)
        write_context(self.get_context_file(name), context)
        logger.warning("Notebook for %s did not start: %s", name, reason)

    def wait_until_running(self, name: str) -> dict:
        """Wait until the user's notebook answers and return its context; raise NotebookStartError if it fails.

        A start that fails or takes longer than ``start_timeout`` is ended,
        so that nothing half-started stays behind.
        """

        def settled():
            state, reason = self.get_state(name)
            if state == RUNNING and not self.is_answering(self.get_context(name)):
                return None
            return (state, reason) if state != STARTING else None

        outcome = wait_for(settled, self.start_timeout + SETTLE_GRACE_SECONDS)
        if outcome is None:
            with self._user_lock(name):
                reason = "the notebook did not answer within {:g} seconds".format(self.start_timeout)
                self._fail_start(name, reason)
            outcome = FAILED, reason
        state, reason = outcome
        if state != RUNNING:
            raise NotebookStartError(self.describe_failure(name, reason or "the notebook did not start"))
        return self.get_context(name)

    def start_notebook_on_demand(self, name: str, context: dict, wait: bool = True) -> tuple[dict, bool]:
        """Reuse the user's notebook if it runs (or is starting) with this context, else (re)start it.

        Returns the notebook's context and whether it was started now.
        ``wait`` as for :meth:`start_notebook`.
        """
        wanted_hash = context.get("context_hash") or context_hash(context)
        self._prepare_work_folder(name)
        with self._user_lock(name):
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

    # Stop

    def stop_notebook(self, name: str, reason: str = STOPPED_BY_USER) -> None:
        """Stop the user's notebook and its kernels, and record why; nothing happens if none runs.

        ``reason`` is one of the ``STOPPED_*`` constants of
        :mod:`pyramid_notebook.server.context`.  The user's folder and
        notebooks stay.
        """
        work_folder = self.get_work_folder(name)
        if not work_folder.is_dir():
            return
        with self._user_lock(name):
            self._stop(name, reason)

    def _stop(self, name: str, reason: str) -> None:
        """End every process of the user's notebook and record ``reason``; call with the user's lock held.

        A crash or failed start that no one noticed yet is recorded as what
        it was, not as this stop.
        """
        self._settle(name)
        context = self.get_context(name)
        self._end_daemons(name)
        self.get_pid_file(name).unlink(missing_ok=True)
        if context is not None and not context.get("stopped_at"):
            # Recorded even if the daemon wrote a reason of its own while it
            # shut down: this stop is why it ended.
            self._record_stop(name, reason, logging.INFO)

    def _record_stop(self, name: str, reason: str, level: int) -> None:
        """Write ``stopped_at`` and ``stopped_reason`` and log the stop once; call with the user's lock held."""
        context = self.get_context(name)
        if context is None:
            return
        context.update(stopped_at=time.time(), stopped_reason=reason)
        write_context(self.get_context_file(name), context)
        logger.log(level, "Notebook for %s stopped: %s", name, reason)

    def _end_daemons(self, name: str) -> list[int]:
        """End every daemon and launcher for the user's pid file, whatever the pid file says.

        Found by their command lines, so a server whose pid file was
        damaged is stopped too, instead of running on as an orphan beside
        the next one.  Returns the pids that were ended.
        """
        pid_file = self.get_pid_file(name)
        ended = []
        for _round in range(STOP_ROUNDS):
            daemons = find_daemons(pid_file)
            if not daemons:
                break
            for process in deepest_first(daemons):
                if not is_gone(process):
                    terminate_tree(process.pid)
                    ended.append(process.pid)
        if ended:
            logger.debug("Ended the notebook processes of %s: %s", name, ", ".join(map(str, ended)))
        return ended

    # Listing

    def list_notebooks(self, include_stopped: bool = False) -> list[dict]:
        """The status of every running notebook under the folder, by user name.

        With ``include_stopped`` also the users whose notebook does not run,
        with their state, ``stopped_at``, ``stopped_reason`` and ``launch_url``,
        so an operator can see who had one and why it ended.
        """
        statuses = []
        for folder in sorted(self.notebook_folder.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                name = check_name(folder.name)
            except ValueError:
                continue
            status = self.get_notebook_status(name)
            if status is not None:
                statuses.append(status)
            elif include_stopped:
                context = self.get_context(name) or {}
                statuses.append(
                    {
                        "name": name,
                        "state": self.get_state(name)[0],
                        "stopped_at": context.get("stopped_at"),
                        "stopped_reason": context.get("stopped_reason"),
                        "launch_url": context.get("launch_url"),
                    }
                )
        return statuses
