"""The daemon's worker: one run of a user's Jupyter server, from its context file to its end.

The run reads the context the manager wrote, completes it with what only it
knows (its pid, its port, when it started, when it is ready and last used,
why it stopped by itself) and serves the user's notebook root until it is
stopped, idle for too long, or past its hard time limit.
"""
import dataclasses
import logging
import os
import time
import traceback
from pathlib import Path

from pyramid_notebook.protocol.context import STOPPED_HARD_LIMIT, STOPPED_IDLE, NotebookContext
from pyramid_notebook.protocol.workfolder import WorkFolder
from pyramid_notebook.server.command_line import DaemonCommand
from pyramid_notebook.server.jupyter import (
    IPYTHON_DIR_NAME,
    direct_websocket_url,
    keep_token_out_of_pages,
    prepare_jupyter_folders,
    server_arguments,
    server_config,
    skip_slow_optional_imports,
)
from pyramid_notebook.server.kernel_startup import install_kernel_startup
from pyramid_notebook.server.prelaunch import discard_waiting_kernel, launch_ahead
from pyramid_notebook.server.workspace import prepare_notebook_root, write_default_notebook

logger = logging.getLogger(__name__)


class ContextRecorder:
    """Adds what the daemon knows to the context file, without undoing what the manager wrote.

    Every write re-reads the file and changes only the fields given.  Once
    the file belongs to another run (the manager started a new notebook with
    a new token), this daemon writes nothing more to it.
    """

    def __init__(self, path: Path, token: str):
        self.path = path
        self.token = token

    def record(self, **changes) -> None:
        """Set the fields ``changes`` in the context file, if it is still this run's."""
        current = NotebookContext.read(self.path)
        if current is None or current.token != self.token:
            logger.info("The context file belongs to another run now: not recording %s", sorted(changes))
            return
        dataclasses.replace(current, **changes).write(self.path)


def this_run(context: NotebookContext, command: DaemonCommand) -> dict:
    """The context fields this run sets as it starts."""
    run = dict(
        pid=os.getpid(),
        http_port=command.port,
        kill_timeout=command.kill_timeout,
        work_folder=str(command.work_folder),
        started=time.time(),
        notebook_name=context.notebook_name or context.default_notebook_name(),
    )
    if context.direct_websockets:
        # The browser opens its websockets straight to this server's port.
        run["websocket_url"] = direct_websocket_url(command.port, context.notebook_path)
    return run


async def start_landing_kernel(server, notebook_name: str, on_ready) -> None:
    """Start the landing notebook's kernel session as the server starts, then call ``on_ready``.

    The page then finds the session for its path and attaches to it, instead
    of starting a kernel of its own and waiting for the site's startup
    script.  The session's kernel is the one launched ahead of the server
    when it could be (:mod:`pyramid_notebook.server.prelaunch`), already
    busy with that script.  The notebook counts as ready once the
    session exists, so that the page finds it rather than starting a
    second kernel of its own.
    """
    try:
        await server.session_manager.create_session(path=notebook_name, name=notebook_name, type="notebook")
    except Exception:
        logger.exception("Could not start the kernel of %s ahead of the browser", notebook_name)
    finally:
        discard_waiting_kernel()
    on_ready()


def run_notebook(command: DaemonCommand) -> None:
    """Run the Jupyter server of ``command`` until it is stopped or stops by itself."""
    skip_slow_optional_imports()
    work_folder = WorkFolder(command.work_folder)
    context_file = WorkFolder.of_pid_file(command.pid_file).context_file
    context = NotebookContext.read(context_file)
    if context is None or not context.token:
        raise RuntimeError("No usable context file at {}".format(context_file))
    run = this_run(context, command)
    context = dataclasses.replace(context, **run)

    os.environ.update(prepare_jupyter_folders(work_folder.path))
    # The token reaches the server through its configuration; make sure the
    # kernels (which inherit this environment) never see it another way.
    os.environ.pop("JUPYTER_TOKEN", None)
    install_kernel_startup(work_folder.path / IPYTHON_DIR_NAME, context.startup)
    root = prepare_notebook_root(work_folder)
    # First the kernel, for its head start; then the notebook it is for.
    launched_ahead = launch_ahead(
        str(root / context.notebook_name), str(root), os.environ["JUPYTER_RUNTIME_DIR"]
    )
    write_default_notebook(root / context.notebook_name, context)

    from notebook.app import JupyterNotebookApp

    from pyramid_notebook.server.activity import ActivityMonitor
    from pyramid_notebook.server.graceful import GracefulStop

    server = JupyterNotebookApp.initialize_server(
        argv=server_arguments(command.port, context, root, list(command.extra)),
        config=server_config(context, adopt_landing_kernel=launched_ahead is not None),
    )
    keep_token_out_of_pages(server, context)
    recorder = ContextRecorder(context_file, context.token)
    graceful = GracefulStop(server)
    graceful.install()

    def stop_by_itself(reason: str) -> None:
        recorder.record(stopped_reason=reason, stopped_at=time.time())
        graceful.stop(reason)

    server.io_loop.call_later(command.kill_timeout, stop_by_itself, STOPPED_HARD_LIMIT)
    ActivityMonitor(
        server,
        float(context.idle_timeout or 0),
        lambda when: recorder.record(last_activity=when),
        lambda idle: stop_by_itself(STOPPED_IDLE),
    ).start()
    # Runs once the loop turns, when the server is already listening.
    server.io_loop.add_callback(lambda: recorder.record(listening=True))
    server.io_loop.add_callback(
        start_landing_kernel, server, context.notebook_name, lambda: recorder.record(ready=True)
    )
    recorder.record(last_activity=context.started, **run)
    try:
        server.start()
    finally:
        discard_waiting_kernel()


def run_worker(command: DaemonCommand) -> None:
    """Run the notebook, with the full traceback in the stderr log if it fails."""
    try:
        run_notebook(command)
    except Exception:
        traceback.print_exc()
        raise
