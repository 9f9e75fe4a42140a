"""Run one user's Jupyter Notebook server as a daemon.

Usage::

    notebook_daemon.py start|fg PID_FILE WORK_FOLDER PORT KILL_TIMEOUT [extra notebook arguments]
    notebook_daemon.py stop|status PID_FILE

The web process never imports Jupyter: it talks to this program only through
its command line, its pid file and the context file (``context.json`` beside
the pid file).  ``start`` detaches with daemonocle; ``fg`` stays in the
foreground, which is handy when a notebook will not start and you want to see
why.  The server binds to 127.0.0.1 only and accepts nothing without the
secret token that the manager put in the context file.
"""
import logging
import os
import sys
import time
import traceback
from pathlib import Path

import daemonocle
import psutil

if __package__ in (None, ""):
    # Run as a script (``python .../notebook_daemon.py``): drop this folder
    # from the path so its modules cannot shadow top-level ones.
    sys.path.pop(0)

from pyramid_notebook.server.context import (  # noqa: E402
    CONTEXT_FILE_NAME,
    default_notebook_name,
    read_context,
    write_context,
)
from pyramid_notebook.waiting import wait_for  # noqa: E402

logger = logging.getLogger(__name__)

STDOUT_LOG = "notebook.stdout.log"
STDERR_LOG = "notebook.stderr.log"

#: Files of ours that the notebook's file browser should not show.
HIDDEN_FILES = [CONTEXT_FILE_NAME, "*.pid", "*.log", ".context-*", "*.lock"]

#: Seconds a stopped notebook gets to shut its kernels down before SIGKILL.
STOP_GRACE_SECONDS = 10

USAGE = __doc__.split("Usage::", 1)[1].split("\n\n")[1]


class UsageError(Exception):
    """The command line is wrong; the message says how."""


def write_default_notebook(path: Path, context: dict) -> None:
    """Create the landing notebook unless the user already has it.

    An existing file is never touched: it may hold the user's own work.
    The kernelspec metadata matters: without it Notebook 7 opens a
    "Select Kernel" dialog instead of the notebook.
    """
    if path.exists():
        return
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    welcome = (
        "# Welcome\n\n"
        "This notebook runs on the web site's own server, with the site's code and data. "
        "Whatever you run here runs there: take care."
    )
    notebook.cells.append(nbformat.v4.new_markdown_cell(welcome))
    if context.get("greeting"):
        notebook.cells.append(nbformat.v4.new_markdown_cell(context["greeting"]))
    notebook.cells.append(nbformat.v4.new_code_cell(""))
    nbformat.write(notebook, str(path))


#: The kernels' IPython startup file.  It runs the context's startup script
#: (kept in a file of its own, so tracebacks quote its lines); if that fails,
#: what it defined so far stays, and the traceback is printed above the
#: output of the first cell the user runs instead of being lost in a log.
STARTUP_WRAPPER = """\
# Written by pyramid_notebook; the site's startup script is {script!r}.
def _pyramid_notebook_startup(path):
    import sys
    import traceback

    try:
        with open(path, encoding="utf-8") as stream:
            exec(compile(stream.read(), path, "exec"), globals())
    except Exception:
        failure = traceback.format_exc()
        shell = get_ipython()

        def show_failure(*_args):
            shell.events.unregister("pre_run_cell", show_failure)
            print("The notebook's startup script failed:\\n" + failure, file=sys.stderr)

        shell.events.register("pre_run_cell", show_failure)


_pyramid_notebook_startup({script!r})
del _pyramid_notebook_startup
"""


def prepare_work_folder(work_folder: Path, context: dict) -> dict:
    """Set up the folders and environment that the server and its kernels inherit.

    Everything Jupyter or IPython would keep in the home folder lives inside
    the user's work folder instead, so two users never share settings or
    startup scripts.  Returns the environment variables to set.
    """
    ipython_dir = work_folder / ".ipython"
    startup_dir = ipython_dir / "profile_default" / "startup"
    config_dir = work_folder / ".jupyter"
    for folder in (startup_dir, config_dir, work_folder / ".local" / "runtime"):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    site_script = ipython_dir / "site_startup.py"
    site_script.write_text(context.get("startup", ""), encoding="utf-8")
    (startup_dir / "startup.py").write_text(STARTUP_WRAPPER.format(script=str(site_script)), encoding="utf-8")
    return {
        "IPYTHONDIR": str(ipython_dir),
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_DATA_DIR": str(work_folder / ".local"),
        "JUPYTER_RUNTIME_DIR": str(work_folder / ".local" / "runtime"),
    }


def server_config(context: dict, direct_websockets: bool):
    """The Jupyter configuration that must not travel on the command line.

    The token stays out of ``argv`` (which any local user can read with
    ``ps``) and is shown by Jupyter's own log lines only as ``...``.
    """
    from traitlets.config import Config

    config = Config()
    config.IdentityProvider.token = context["token"]
    config.ServerApp.kernel_websocket_connection_class = (
        "pyramid_notebook.server.nodelay.NoDelayKernelWebsocketConnection"
    )
    config.ServerApp.open_browser = False
    config.ServerApp.allow_origin = context.get("allow_origin", "")
    config.ContentsManager.hide_globs = ["__pycache__", "*.pyc", "*.pyo", ".DS_Store", *HIDDEN_FILES]
    # JupyterLab at /lab would hand the token to the browser; the language
    # server extension finds no servers here and only slows start and stop.
    config.ServerApp.jpserver_extensions = {"jupyterlab": False, "jupyter_lsp": False}
    if context.get("websocket_url"):
        # Notebook 7's page templates take wsUrl from ServerApp.websocket_url,
        # over any page_config_data.
        config.ServerApp.websocket_url = context["websocket_url"]
        page_config = {"wsUrl": context["websocket_url"]}
        if direct_websockets:
            # JupyterLab adds the token to websocket URLs only when the page's
            # host name differs from the websocket's, ignoring the port: a
            # site at http://127.0.0.1:9999 would reach the notebook without it.
            page_config["appendToken"] = "true"
        config.ServerApp.tornado_settings = {"page_config_data": page_config}
    return config


def server_arguments(port: int, context: dict, extra: list[str]) -> list[str]:
    """Command line arguments for the Jupyter server."""
    arguments = [
        "--no-browser",
        "--ip=127.0.0.1",
        "--port={}".format(port),
        "--port-retries=0",
        "--ServerApp.base_url={}".format(context.get("notebook_path", "/notebook/")),
        "--ServerApp.root_dir={}".format(context["work_folder"]),
    ]
    if os.geteuid() == 0:
        arguments.append("--allow-root")
    return arguments + extra


def run_notebook(pid_file: Path, work_folder: Path, port: int, kill_timeout: int, extra: list[str]) -> None:
    """The daemon's worker: run the Jupyter server until it is stopped or times out."""
    # jsonschema (imported by nbformat and Jupyter) imports rfc3987_syntax
    # when it is installed, which compiles some 35 Lark parsers: about 3 s of
    # a 4 s start here.  Only the "iri" formats need it; no Jupyter schema does.
    sys.modules.setdefault("rfc3987_syntax", None)
    context_file = pid_file.parent / CONTEXT_FILE_NAME
    context = read_context(context_file)
    if context is None or "token" not in context:
        raise RuntimeError("No usable context file at {}".format(context_file))
    context.update(
        pid=os.getpid(),
        http_port=port,
        kill_timeout=kill_timeout,
        work_folder=str(work_folder),
        started=time.time(),
    )
    context.setdefault("context_hash", "default")
    context.setdefault("notebook_name", default_notebook_name(context))
    # A websocket URL naming "{port}" points the browser straight at this
    # server (development, without a websocket proxy); the browser then needs
    # the token in the page configuration to authenticate its websockets.
    direct_websockets = "{port}" in context.get("websocket_url", "")
    if direct_websockets:
        context["websocket_url"] = context["websocket_url"].replace("{port}", str(port))

    os.environ.update(prepare_work_folder(work_folder, context))
    write_default_notebook(work_folder / context["notebook_name"], context)
    # The token reaches the server through its configuration; make sure the
    # kernels (which inherit this environment) never see it another way.
    os.environ.pop("JUPYTER_TOKEN", None)

    from notebook.app import JupyterNotebookApp

    from pyramid_notebook.server.activity import ActivityMonitor

    server = JupyterNotebookApp.initialize_server(
        argv=server_arguments(port, context, extra), config=server_config(context, direct_websockets)
    )
    if not direct_websockets:
        # Every request arrives through the site's proxy, which adds the token
        # itself; the browser has no use for it.
        server.web_app.settings["token"] = ""
    server.io_loop.call_later(kill_timeout, server.stop)

    def record(**changes) -> None:
        context.update(changes)
        write_context(context_file, context)

    ActivityMonitor(server, float(context.get("idle_timeout") or 0), lambda when: record(last_activity=when)).start()
    # Runs once the loop turns, when the server is already listening.
    server.io_loop.add_callback(lambda: record(ready=True))
    record(last_activity=context["started"])
    server.start()


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
    """SIGTERM the server, give it ``grace`` seconds, then SIGKILL what is left.

    The descendants are collected first: once the server is gone its kernels
    would be orphans that nobody knows about.  A server that stops cleanly
    shuts its kernels down itself.
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
            pass
    wait_gone(alive, grace)


def report_shutdown(message: str, code: int) -> None:
    """daemonocle's shutdown hook: say in the stderr log why the daemon ended, when it failed."""
    if code:
        sys.stderr.write("notebook_daemon: {}\n".format(message))
        sys.stderr.flush()


def run_worker(arguments: dict) -> None:
    """Run the notebook, with the full traceback in the stderr log if it fails."""
    try:
        run_notebook(
            arguments["pid_file"],
            arguments["work_folder"],
            arguments["port"],
            arguments["kill_timeout"],
            arguments["extra"],
        )
    except Exception:
        traceback.print_exc()
        raise


class NotebookDaemon(daemonocle.Daemon):
    """daemonocle's daemon, with a stop that takes the kernels along and a quick status."""

    @daemonocle.expose_action
    def stop(self, timeout=None, force=True):
        """Stop the notebook server and every kernel it started."""
        pid = self._read_pid_file()
        if pid is None:
            self._echo("{} is not running\n".format(self.name))
            return 0
        terminate_tree(pid, timeout or self.stop_timeout)
        if os.path.exists(self.pid_file):
            os.remove(self.pid_file)
        self._echo("Stopped {} (PID {})\n".format(self.name, pid))
        return 0

    @daemonocle.expose_action
    def status(self, json=False, fields=None):
        """Print the status without daemonocle's one-second CPU sampling; exit 1 if not running."""
        status = self.get_status(fields="pid,status,uptime")
        if status.get("pid") is None:
            self._echo("{} is not running\n".format(self.name))
            sys.exit(1)
        self._echo("{name} is {status} (PID {pid})\n".format(name=self.name, **status))
        return 0


def parse_arguments(argv: list[str]) -> dict:
    """Check the command line, raising UsageError with what is wrong."""
    if not argv:
        raise UsageError("no action given")
    action, arguments = argv[0], argv[1:]
    if action in ("stop", "status"):
        if len(arguments) != 1:
            raise UsageError("{} takes exactly one argument, PID_FILE".format(action))
        return {"action": action, "pid_file": Path(arguments[0]).absolute()}
    if action not in ("start", "fg"):
        raise UsageError("unknown action {!r}: use start, fg, stop or status".format(action))
    if len(arguments) < 4:
        raise UsageError("{} needs PID_FILE WORK_FOLDER PORT KILL_TIMEOUT".format(action))
    pid_file, work_folder, port, kill_timeout, *extra = arguments
    try:
        port = int(port)
        kill_timeout = int(kill_timeout)
    except ValueError:
        message = "PORT and KILL_TIMEOUT must be whole numbers, got {!r} and {!r}".format(port, kill_timeout)
        raise UsageError(message) from None
    if not 0 < port < 65536:
        raise UsageError("PORT must be between 1 and 65535, got {}".format(port))
    if kill_timeout <= 0:
        raise UsageError("KILL_TIMEOUT must be a positive number of seconds, got {}".format(kill_timeout))
    work_folder = Path(work_folder).absolute()
    if not work_folder.is_dir():
        raise UsageError("WORK_FOLDER {} is not a folder".format(work_folder))
    return {
        "action": action,
        "pid_file": Path(pid_file).absolute(),
        "work_folder": work_folder,
        "port": port,
        "kill_timeout": kill_timeout,
        "extra": extra,
    }


def make_daemon(arguments: dict) -> NotebookDaemon:
    """The daemon for a parsed command line."""
    pid_file = arguments["pid_file"]
    work_folder = arguments.get("work_folder", pid_file.parent)
    options = dict(
        name="notebook_daemon",
        pid_file=str(pid_file),
        work_dir=str(work_folder),
        detach=arguments["action"] != "fg",
        stop_timeout=STOP_GRACE_SECONDS,
    )
    if arguments["action"] in ("start", "fg"):
        options.update(
            worker=lambda: run_worker(arguments),
            hooks={"shutdown": report_shutdown},
            stdout_file=str(work_folder / STDOUT_LOG),
            stderr_file=str(work_folder / STDERR_LOG),
            umask=0o077,
        )
    return NotebookDaemon(**options)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        arguments = parse_arguments(argv)
    except UsageError as error:
        sys.stderr.write("notebook_daemon: {}\nUsage:\n{}\n".format(error, USAGE))
        return 2
    daemon = make_daemon(arguments)
    action = "start" if arguments["action"] == "fg" else arguments["action"]
    return daemon.do_action(action) or 0


if __name__ == "__main__":
    sys.exit(main())
