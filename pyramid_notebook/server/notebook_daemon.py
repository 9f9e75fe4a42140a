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

Jupyter's root is the ``notebooks`` folder inside the work folder (see
:mod:`.workspace`): the pid, lock, context and log files stay out of the
notebook's reach.  ``stop``, ``status`` and ``start`` act only on a process
whose command line is this daemon for this pid file (see :mod:`.processes`),
whatever number the pid file holds.
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
    STOPPED_HARD_LIMIT,
    STOPPED_IDLE,
    default_notebook_name,
    read_context,
    write_context,
)
from pyramid_notebook.server.processes import (  # noqa: E402
    DAEMON_MODULE,
    STOP_GRACE_SECONDS,
    daemon_pid,
    find_daemons,
    read_pid,
    terminate_tree,
)
from pyramid_notebook.server.signals import reset_signal_state  # noqa: E402
from pyramid_notebook.server.workspace import prepare_notebook_root  # noqa: E402

logger = logging.getLogger(__name__)

STDOUT_LOG = "notebook.stdout.log"
STDERR_LOG = "notebook.stderr.log"

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"

#: Templates that replace some of Jupyter Server's own.
TEMPLATES = Path(__file__).resolve().parent / "templates"

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
    config.ServerApp.contents_manager_class = "pyramid_notebook.server.contents.ConfinedContentsManager"
    # Jupyter Server's own pages (errors, login) without the token in them.
    config.ServerApp.extra_template_paths = [str(TEMPLATES)]
    config.ServerApp.open_browser = False
    config.ServerApp.allow_origin = context.get("allow_origin", "")
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


def server_arguments(port: int, context: dict, root: Path, extra: list[str]) -> list[str]:
    """Command line arguments for the Jupyter server, serving the notebooks in ``root``."""
    arguments = [
        "--no-browser",
        "--ip=127.0.0.1",
        "--port={}".format(port),
        "--port-retries=0",
        "--ServerApp.base_url={}".format(context.get("notebook_path", "/notebook/")),
        "--ServerApp.root_dir={}".format(root),
    ]
    if os.geteuid() == 0:
        arguments.append("--allow-root")
    return arguments + extra


class ContextRecorder:
    """Adds what the daemon knows to the context file, without undoing what the manager wrote.

    Every write re-reads the file and changes only the daemon's keys.  Once
    the file belongs to another run (the manager started a new notebook with
    a new token), this daemon writes nothing more to it.
    """

    def __init__(self, path: Path, token: str):
        self.path = path
        self.token = token

    def record(self, **changes) -> None:
        """Set ``changes`` in the context file, if it is still this run's."""
        current = read_context(self.path)
        if current is None or current.get("token") != self.token:
            logger.info("The context file belongs to another run now: not recording %s", sorted(changes))
            return
        current.update(changes)
        write_context(self.path, current)


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
    context.setdefault("context_hash", "default")
    run_keys = dict(
        pid=os.getpid(),
        http_port=port,
        kill_timeout=kill_timeout,
        work_folder=str(work_folder),
        started=time.time(),
        context_hash=context["context_hash"],
        notebook_name=context.get("notebook_name") or default_notebook_name(context),
    )
    # A websocket URL naming "{port}" points the browser straight at this
    # server (development, without a websocket proxy); the browser then needs
    # the token in the page configuration to authenticate its websockets.
    direct_websockets = "{port}" in context.get("websocket_url", "")
    if direct_websockets:
        run_keys["websocket_url"] = context["websocket_url"].replace("{port}", str(port))
    context.update(run_keys)

    os.environ.update(prepare_work_folder(work_folder, context))
    root = prepare_notebook_root(work_folder)
    write_default_notebook(root / context["notebook_name"], context)
    # The token reaches the server through its configuration; make sure the
    # kernels (which inherit this environment) never see it another way.
    os.environ.pop("JUPYTER_TOKEN", None)

    from notebook.app import JupyterNotebookApp

    from pyramid_notebook.server.activity import ActivityMonitor
    from pyramid_notebook.server.graceful import GracefulStop

    server = JupyterNotebookApp.initialize_server(
        argv=server_arguments(port, context, root, extra), config=server_config(context, direct_websockets)
    )
    if not direct_websockets:
        # Every request arrives through the site's proxy, which adds the token
        # itself; the browser has no use for it.
        server.web_app.settings["token"] = ""
    recorder = ContextRecorder(context_file, context["token"])
    graceful = GracefulStop(server)
    graceful.install()

    def stop_by_itself(reason: str) -> None:
        recorder.record(stopped_reason=reason, stopped_at=time.time())
        graceful.stop(reason)

    server.io_loop.call_later(kill_timeout, stop_by_itself, STOPPED_HARD_LIMIT)
    ActivityMonitor(
        server,
        float(context.get("idle_timeout") or 0),
        lambda when: recorder.record(last_activity=when),
        lambda idle: stop_by_itself(STOPPED_IDLE),
    ).start()
    # Runs once the loop turns, when the server is already listening.
    server.io_loop.add_callback(lambda: recorder.record(ready=True))
    recorder.record(last_activity=context["started"], **run_keys)
    server.start()


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
    """daemonocle's daemon, made to act only on its own processes and to behave the same wherever it starts.

    Every use of daemonocle's private methods is here:

    * the pid file counts only when it names this daemon for this pid file
      (:func:`.processes.daemon_pid`): garbage, ``1`` or another program's
      pid means "not running", and nothing else is ever signalled;
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


def configure_logging(arguments: dict) -> None:
    """Send this package's log to stderr: the server's stderr log once the daemon has detached.

    ``stop`` also appends its warnings (a server that had to be killed) to
    the notebook's stderr log, where whoever looks into the notebook finds them.
    """
    package_logger = logging.getLogger("pyramid_notebook")
    package_logger.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter(LOG_FORMAT))
    package_logger.addHandler(console)
    if arguments["action"] == "stop" and arguments["pid_file"].parent.is_dir():
        notebook_log = logging.FileHandler(arguments["pid_file"].parent / STDERR_LOG, delay=True)
        notebook_log.setLevel(logging.WARNING)
        notebook_log.setFormatter(logging.Formatter(LOG_FORMAT))
        package_logger.addHandler(notebook_log)


def with_absolute_paths(arguments: dict) -> list[str]:
    """The daemon's command line for ``arguments``, with absolute paths.

    A running server is recognised by its command line naming its pid file
    (see :mod:`.processes`), so that must be the absolute path.
    """
    return [
        sys.executable,
        "-m",
        DAEMON_MODULE,
        arguments["action"],
        str(arguments["pid_file"]),
        str(arguments["work_folder"]),
        str(arguments["port"]),
        str(arguments["kill_timeout"]),
        *arguments["extra"],
    ]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    # Before anything else, and before daemonocle forks: the launcher may
    # have inherited blocked or ignored signals (see .signals).
    blocked, ignored = reset_signal_state()
    command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    try:
        arguments = parse_arguments(argv)
    except UsageError as error:
        sys.stderr.write("notebook_daemon: {}\nUsage:\n{}\n".format(error, USAGE))
        return 2
    if command_line and arguments["action"] in ("start", "fg") and argv[1] != str(arguments["pid_file"]):
        os.execv(sys.executable, with_absolute_paths(arguments))
    configure_logging(arguments)
    if blocked or ignored:
        logger.info("Launched with signals blocked %s and ignored %s: reset them", sorted(blocked), sorted(ignored))
    daemon = make_daemon(arguments)
    action = "start" if arguments["action"] == "fg" else arguments["action"]
    return daemon.do_action(action) or 0


if __name__ == "__main__":
    sys.exit(main())
