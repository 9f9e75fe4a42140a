"""Start, reuse and stop one notebook server process per site user.

The manager spawns the daemon, follows its start, and ends it; what a
notebook's state is comes from :func:`.state.notebook_state`, and where that
state is kept from a :class:`.store.NotebookStore`.  Several web processes may
share one store, so every decision that must be taken once (start this
user, record why a notebook ended) happens under the user's lock.
"""
import dataclasses
import logging
import os
import secrets
import subprocess
import time
from pathlib import Path

import psutil
import urllib3

from pyramid_notebook.manager.daemons import daemon_command, end_daemons, spawn_launcher
from pyramid_notebook.manager.errors import NotebookStartError
from pyramid_notebook.manager.logs import failure_report, start_failure_cause
from pyramid_notebook.manager.names import user_work_folder
from pyramid_notebook.manager.options import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_KILL_TIMEOUT,
    DEFAULT_MIN_PORT,
    DEFAULT_PORT_RANGE,
    DEFAULT_START_TIMEOUT,
    ManagerOptions,
)
from pyramid_notebook.manager.ports import PortAllocator
from pyramid_notebook.manager.state import (
    CRASHED,
    FAILED,
    RUNNING,
    START_DIED,
    START_TIMED_OUT,
    STARTING,
    Observation,
    crash_stop_reason,
    notebook_state,
)
from pyramid_notebook.manager.store import FileStore, NotebookStore
from pyramid_notebook.protocol.context import (
    STOPPED_BY_USER,
    STOPPED_CONTEXT_CHANGE,
    STOPPED_START_FAILED,
    NotebookContext,
)
from pyramid_notebook.protocol.processes import daemon_pid, is_daemon_pid
from pyramid_notebook.protocol.workfolder import WorkFolder
from pyramid_notebook.waiting import wait_for

logger = logging.getLogger(__name__)

#: Seconds to wait, beyond ``start_timeout``, for a failed start to be recorded by whoever noticed it.
SETTLE_GRACE_SECONDS = 5

#: Seconds to wait for the exit code of a launcher known to have exited.
LAUNCHER_EXIT_SECONDS = 2


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
    :param store: where the notebooks' state is kept; the work folders by default.
    """

    def __init__(
        self,
        notebook_folder: str | os.PathLike,
        min_port: int = DEFAULT_MIN_PORT,
        port_range: int = DEFAULT_PORT_RANGE,
        kill_timeout: int = DEFAULT_KILL_TIMEOUT,
        python: str | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        notebook_args: list[str] | tuple[str, ...] = (),
        store: NotebookStore | None = None,
    ):
        self.notebook_folder = Path(notebook_folder).absolute()
        self.options = ManagerOptions(
            min_port=min_port,
            port_range=port_range,
            kill_timeout=kill_timeout,
            python=python or "",
            start_timeout=start_timeout,
            idle_timeout=idle_timeout,
            notebook_args=tuple(notebook_args),
        )
        ports = PortAllocator(self.options.min_port, self.options.port_range)
        self.store = store or FileStore(self.notebook_folder, ports, self.options.start_timeout)
        #: The launchers this process spawned, by user: their exit codes explain failed starts.
        self._launchers: dict[str, subprocess.Popen] = {}
        self.notebook_folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    # Where things are

    def work_folder(self, name: str) -> WorkFolder:
        """The user's work folder and its files (not created here); ValueError for a bad name."""
        return user_work_folder(self.notebook_folder, name)

    def get_work_folder(self, name: str) -> Path:
        """The path of the user's work folder (not created here)."""
        return self.work_folder(name).path

    def get_context(self, name: str) -> NotebookContext | None:
        """The user's last context, with its token and port, or ``None``."""
        return self.store.read_context(name)

    def _prepare_work_folder(self, name: str) -> WorkFolder:
        """Create the user's work folder and lock file, or raise NotebookStartError naming what failed."""
        folder = self.work_folder(name)
        try:
            folder.path.mkdir(exist_ok=True, mode=0o700)
            os.close(os.open(folder.lock_file, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as error:
            raise NotebookStartError(
                "Cannot create the notebook work folder {}: {}".format(folder.path, error.strerror or error)
            ) from None
        return folder

    # State

    def get_pid(self, name: str) -> int | None:
        """The pid of the user's notebook daemon, if that process is alive and really is it.

        A pid file can outlive its process (``kill -9``), be damaged, or name
        a pid now reused by an unrelated process; only a live process whose
        command line is this daemon with this pid file counts.
        """
        return daemon_pid(self.work_folder(name).pid_file)

    def is_running(self, name: str) -> bool:
        """True if the user's notebook process runs and its context describes it."""
        context = self.get_context(name)
        return context is not None and context.pid is not None and self.store.is_alive(name, context)

    def _observe(self, name: str, context: NotebookContext | None, locked: bool = False) -> Observation:
        """What the context and the process table say, changing nothing (see :func:`.state.notebook_state`)."""
        alive = context is not None and self.store.is_alive(name, context)
        return notebook_state(context, alive, time.time(), self.options.start_timeout, locked)

    def get_state(self, name: str, context: NotebookContext | None = None) -> tuple[str, str]:
        """Where the user's notebook is: ``(state, reason)``, the state one of
        :data:`STARTING`, :data:`RUNNING`, :data:`FAILED` or :data:`STOPPED`.

        Any web process can answer.  What only a read can notice (a crash, a
        start whose process ended, a start past ``start_timeout``) is
        recorded at once by the first reader, under the user's lock, and a
        start that failed is ended so that nothing of it keeps running.  A
        caller that has just read the context may pass it, to spare a read.
        """
        context = self.get_context(name) if context is None else context
        observation = self._observe(name, context)
        if observation.problem is None:
            return observation.state, observation.reason
        return self._settle(name)

    def _settle(self, name: str) -> tuple[str, str]:
        """Record what a state read found once, under the user's lock; the state after."""
        with self.store.lock(name):
            context = self.get_context(name)
            state, reason, problem = self._observe(name, context, locked=True)
            if problem == CRASHED:
                # A server that runs on while its pid file names something
                # else counts as ended, and is ended: no orphan stays.
                runs_on = is_daemon_pid(context.pid, self.work_folder(name).pid_file)
                self._end_daemons(name)
                self._record_stop(name, crash_stop_reason(runs_on), logging.WARNING)
            elif problem == START_TIMED_OUT:
                self._fail_start(name, reason)
            elif problem == START_DIED:
                self._fail_start(name, self._explain_start_death(name, context, reason))
            else:
                return state, reason
            state, reason, _problem = self._observe(name, self.get_context(name), locked=True)
            return state, reason

    def _explain_start_death(self, name: str, context: NotebookContext, reason: str) -> str:
        """``reason`` with what the logs and the launcher's exit code say about it."""
        launcher = self._launchers.get(name)
        if launcher is not None and launcher.pid == context.launcher_pid:
            try:
                exit_code = launcher.wait(timeout=LAUNCHER_EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                exit_code = None
            if exit_code:
                reason = "the notebook launcher failed with exit code {}".format(exit_code)
        cause = start_failure_cause(self.work_folder(name), context.launched_at or 0)
        return "{}: {}".format(reason, cause) if cause else reason

    def describe_failure(self, name: str, reason: str) -> str:
        """A failed start explained: the reason and the last lines of the logs.

        For the owner of the notebook only: the logs are theirs.
        """
        return failure_report(name, self.work_folder(name), reason)

    def is_answering(self, context: NotebookContext) -> bool:
        """True if the notebook described by ``context`` answers its status API."""
        url = "http://127.0.0.1:{}{}api/status".format(context.http_port, context.notebook_path)
        try:
            response = urllib3.request(
                "GET", url, headers={"Authorization": "token " + context.token}, timeout=2, retries=False
            )
        except urllib3.exceptions.HTTPError:
            return False
        return response.status == 200

    # Start

    def start_notebook(
        self, name: str, context: NotebookContext | dict, fg: bool = False, wait: bool = True
    ) -> NotebookContext:
        """Start a notebook for ``name`` with ``context``; a notebook the user already has is stopped first.

        With ``wait`` (the default) this returns once the notebook answers,
        with the context as the daemon completed it (pid, port, token), and
        raises :class:`NotebookStartError` if it does not start.  Without,
        it returns at once; :meth:`get_state` follows the start.  With
        ``fg`` the daemon runs in the foreground until it ends, for debugging.
        Any failure to launch raises :class:`NotebookStartError` naming the cause.
        """
        self._prepare_work_folder(name)
        with self.store.lock(name):
            started = self._launch(name, NotebookContext.from_site(context).with_hash(), fg)
        if fg:
            self._launchers[name].wait()
            return self.get_context(name)
        return self.wait_until_running(name) if wait else started

    def _launch(self, name: str, site_context: NotebookContext, fg: bool) -> NotebookContext:
        """Stop what runs for the user and spawn the daemon for a fresh run; call with the user's lock held."""
        previous = self.get_context(name)
        changed = previous is not None and previous.context_hash != site_context.context_hash
        self._stop(name, STOPPED_CONTEXT_CHANGE if changed else STOPPED_BY_USER)
        folder = self.work_folder(name)
        context = dataclasses.replace(
            site_context,
            notebook_name=site_context.default_notebook_name(),
            token=secrets.token_urlsafe(32),
            idle_timeout=self.options.idle_timeout,
            launched_at=time.time(),
        )
        try:
            context = self.store.claim_port(name, context)
        except OSError as error:
            message = "Cannot write the notebook's files in {}: {}".format(folder.path, error.strerror or error)
            raise self._launch_failure(name, message) from None

        command = daemon_command(
            self.options.python,
            "fg" if fg else "start",
            folder.pid_file,
            folder.path,
            context.http_port,
            self.options.kill_timeout,
            *self.options.notebook_args,
        )
        logger.info("Starting notebook for %s on port %d", name, context.http_port)
        try:
            # In the foreground the daemon's output goes to this terminal.
            output = None if fg else open(folder.launch_log, "wb")
        except OSError as error:
            message = "Cannot write {}: {}".format(folder.launch_log, error.strerror or error)
            raise self._launch_failure(name, message) from None
        try:
            launcher = spawn_launcher(command, folder.path, output)
        except OSError as error:
            message = "Cannot run the notebook daemon with {} (pyramid_notebook.python): {}".format(
                self.options.python, error.strerror or error
            )
            raise self._launch_failure(name, message) from None
        finally:
            if output is not None:
                output.close()
        self._launchers[name] = launcher
        context.launcher_pid = launcher.pid
        # Added to the context as it is now: the daemon writes to it too,
        # though not before its server has initialised, a second from now at best.
        current = self.get_context(name)
        if current is not None and current.token == context.token:
            current.launcher_pid = launcher.pid
            self.store.write_context(name, current)
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
        context.start_error = reason
        context.stopped_at = time.time()
        context.stopped_reason = STOPPED_START_FAILED
        self.store.write_context(name, context)
        logger.warning("Notebook for %s did not start: %s", name, reason)

    def wait_until_running(self, name: str) -> NotebookContext:
        """Wait until the user's notebook answers and return its context; raise NotebookStartError if it fails.

        A start that fails or takes longer than ``start_timeout`` is ended,
        so that nothing half-started stays behind.
        """

        def settled():
            state, reason = self.get_state(name)
            if state == RUNNING and not self.is_answering(self.get_context(name)):
                return None
            return (state, reason) if state != STARTING else None

        outcome = wait_for(settled, self.options.start_timeout + SETTLE_GRACE_SECONDS)
        if outcome is None:
            with self.store.lock(name):
                reason = "the notebook did not answer within {:g} seconds".format(self.options.start_timeout)
                self._fail_start(name, reason)
            outcome = FAILED, reason
        state, reason = outcome
        if state != RUNNING:
            raise NotebookStartError(self.describe_failure(name, reason or "the notebook did not start"))
        return self.get_context(name)

    def start_notebook_on_demand(
        self, name: str, context: NotebookContext | dict, wait: bool = True
    ) -> tuple[NotebookContext, bool]:
        """Reuse the user's notebook if it runs (or is starting) with this context, else (re)start it.

        Returns the notebook's context and whether it was started now.
        ``wait`` as for :meth:`start_notebook`.
        """
        self._prepare_work_folder(name)
        wanted = NotebookContext.from_site(context).with_hash()
        with self.store.lock(name):
            state, _reason = self.get_state(name)
            current = self.get_context(name)
            if state in (RUNNING, STARTING) and current.context_hash == wanted.context_hash:
                created = False
            else:
                if state in (RUNNING, STARTING):
                    logger.info("Context of %s changed; restarting the notebook", name)
                current = self._launch(name, wanted, fg=False)
                created = True
        return (self.wait_until_running(name) if wait else current), created

    # Stop

    def stop_notebook(self, name: str, reason: str = STOPPED_BY_USER) -> None:
        """Stop the user's notebook and its kernels, and record why; nothing happens if none runs.

        ``reason`` is one of the ``STOPPED_*`` constants of
        :mod:`pyramid_notebook.protocol.context`.  The user's folder and
        notebooks stay.
        """
        if not self.work_folder(name).path.is_dir():
            return
        with self.store.lock(name):
            self._stop(name, reason)

    def stop_all(self, reason: str = STOPPED_BY_USER) -> list[str]:
        """Stop every user's notebook, recording ``reason``; the names of those that ran or were starting.

        One way for everyone who stops everything (the command line, the
        test fixtures): each user's processes are looked for and ended,
        whatever the state says, so nothing is left behind.
        """
        stopped = []
        for name in self.store.names():
            with self.store.lock(name):
                state, _reason = self.get_state(name)
                self._stop(name, reason)
            if state in (RUNNING, STARTING):
                stopped.append(name)
        return stopped

    def _stop(self, name: str, reason: str) -> None:
        """End every process of the user's notebook and record ``reason``; call with the user's lock held.

        A crash or failed start that no one noticed yet is recorded as what
        it was, not as this stop.
        """
        self._settle(name)
        context = self.get_context(name)
        self._end_daemons(name)
        self.work_folder(name).pid_file.unlink(missing_ok=True)
        if context is not None and not context.stopped_at:
            # Recorded even if the daemon wrote a reason of its own while it
            # shut down: this stop is why it ended.
            self._record_stop(name, reason, logging.INFO)

    def _record_stop(self, name: str, reason: str, level: int) -> None:
        """Write ``stopped_at`` and ``stopped_reason`` and log the stop once; call with the user's lock held."""
        context = self.get_context(name)
        if context is None:
            return
        context.stopped_at = time.time()
        context.stopped_reason = reason
        self.store.write_context(name, context)
        logger.log(level, "Notebook for %s stopped: %s", name, reason)

    def _end_daemons(self, name: str) -> None:
        """End every daemon and launcher of the user, found by their command lines."""
        ended = end_daemons(self.work_folder(name).pid_file)
        if ended:
            logger.debug("Ended the notebook processes of %s: %s", name, ", ".join(map(str, ended)))

    # Listing

    def get_notebook_status(self, name: str) -> dict | None:
        """Facts about the user's running notebook, or ``None`` when none runs.

        ``memory_rss`` counts the server and all its kernels, in bytes.
        """
        context = self.get_context(name)
        if context is None or context.pid is None or not self.store.is_alive(name, context):
            return None
        try:
            process = psutil.Process(context.pid)
            processes = [process, *process.children(recursive=True)]
            memory = sum(child.memory_info().rss for child in processes)
            status = process.status()
        except psutil.Error:
            return None
        return {
            "name": name,
            "pid": context.pid,
            "status": status,
            "state": self.get_state(name)[0],
            "http_port": context.http_port,
            "started": context.started,
            "last_activity": context.last_activity,
            "context_hash": context.context_hash or None,
            "launch_url": context.launch_url or None,
            "stopped_at": None,
            "stopped_reason": None,
            "memory_rss": memory,
            "kernels": len(processes) - 1,
        }

    def list_notebooks(self, include_stopped: bool = False) -> list[dict]:
        """The status of every running notebook under the folder, by user name.

        With ``include_stopped`` also the users whose notebook does not run,
        with their state, ``stopped_at``, ``stopped_reason`` and ``launch_url``,
        so an operator can see who had one and why it ended.
        """
        statuses = []
        for name in self.store.names():
            status = self.get_notebook_status(name)
            if status is not None:
                statuses.append(status)
            elif include_stopped:
                context = self.get_context(name) or NotebookContext()
                statuses.append(
                    {
                        "name": name,
                        "state": self.get_state(name)[0],
                        "stopped_at": context.stopped_at,
                        "stopped_reason": context.stopped_reason or None,
                        "launch_url": context.launch_url or None,
                    }
                )
        return statuses
