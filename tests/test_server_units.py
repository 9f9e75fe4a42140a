"""The notebook side's rules, without a process: activity, the command line, Jupyter's configuration, kernel startup.

Everything here runs in this process, with small fakes of the Jupyter
objects the code reads; the daemon's own tests (test_daemon.py) run it for real.
"""
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from IPython.core.events import EventManager, available_events
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager, ServerKernelManager
from traitlets import TraitError

from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.protocol.processes import DAEMON_MODULE, is_daemon_for
from pyramid_notebook.server import prelaunch
from pyramid_notebook.server.activity import ActivityMonitor, counts_as_use
from pyramid_notebook.server.command_line import DaemonCommand, UsageError, parse_command_line
from pyramid_notebook.server.jupyter import (
    TEMPLATES,
    direct_websocket_url,
    keep_token_out_of_pages,
    page_config,
    server_arguments,
    server_config,
)
from pyramid_notebook.server.kernel_startup import FAILURE_HEADING, install_kernel_startup, run_site_startup
from pyramid_notebook.server.kernels import StartingKernelsListed
from pyramid_notebook.server.prelaunch import (
    PROVISIONER_NAME,
    KernelLaunch,
    WaitingKernel,
    claim_waiting_kernel,
    provisioner_registered,
    without_connection_file,
)
from pyramid_notebook.server.worker import ContextRecorder, this_run

BASE_URL = "/notebook/"

# The activity rules


@pytest.mark.parametrize(
    "method, path, used",
    [
        ("GET", "/notebook/tree", True),
        ("GET", "/notebook/notebooks/default.ipynb", True),
        ("GET", "/notebook/api/contents", False),
        ("HEAD", "/notebook/api/status", False),
        ("GET", "/notebook/api/kernels/abc/channels", False),
        ("PUT", "/notebook/api/contents/a.ipynb", True),
        ("POST", "/notebook/api/kernels", True),
        ("PATCH", "/notebook/api/contents/a.ipynb", True),
        ("DELETE", "/notebook/api/sessions/1", True),
        ("GET", "/notebook/static/notebook/main.js", False),
        ("POST", "/notebook/static/x", False),
        ("GET", "/api/status", False),
    ],
)
def test_what_counts_as_use(method, path, used):
    assert counts_as_use(method, path, BASE_URL) is used


class FakeClock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeKernel:
    def __init__(self, execution_state: str, last_activity: float | None):
        self.execution_state = execution_state
        self.last_activity = None if last_activity is None else datetime.fromtimestamp(last_activity, UTC)


class FakeKernelManager:
    def __init__(self):
        self.kernels = {}

    def list_kernel_ids(self):
        return list(self.kernels)

    def get_kernel(self, kernel_id):
        return self.kernels[kernel_id]


class FakeLoop:
    def __init__(self):
        self.callbacks = []

    def add_callback(self, callback, *args):
        self.callbacks.append((callback, args))


class FakeWebApp:
    def __init__(self):
        self.settings = {"token": "secret"}


class FakeServer:
    """What the activity monitor and the configuration helpers read of a jupyter_server ServerApp."""

    def __init__(self):
        self.base_url = BASE_URL
        self.kernel_manager = FakeKernelManager()
        self.io_loop = FakeLoop()
        self.web_app = FakeWebApp()


class FakeRequest:
    def __init__(self, method: str, path: str):
        self.method = method
        self.path = path


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def server():
    return FakeServer()


def monitor(server, clock, idle_timeout: float = 60):
    """An activity monitor that records what it reports."""
    reported = {"activity": [], "idle": []}
    activity = ActivityMonitor(
        server, idle_timeout, reported["activity"].append, reported["idle"].append, clock=clock
    )
    return activity, reported


def opened(activity) -> None:
    """A person opens the notebook page: from then on, kernels count as use."""
    activity.observe_request(FakeRequest("GET", BASE_URL + "notebooks/default.ipynb"))


def test_a_check_reports_newer_kernel_activity(server, clock):
    activity, reported = monitor(server, clock)
    opened(activity)
    reported["activity"].clear()
    server.kernel_manager.kernels["k"] = FakeKernel("idle", clock.now + 5)
    clock.now += 10
    activity.check()
    assert reported == {"activity": [clock.now - 5], "idle": []}
    activity.check()
    assert reported["activity"] == [clock.now - 5], "the same use is reported once"


def test_a_busy_kernel_is_in_use_however_long_it_computes(server, clock):
    activity, reported = monitor(server, clock, idle_timeout=60)
    opened(activity)
    server.kernel_manager.kernels["k"] = FakeKernel("busy", clock.now)
    clock.now += 3600
    activity.check()
    assert reported == {"activity": [clock.now], "idle": []}


def test_the_kernel_started_with_the_server_is_nobodys_use(server, clock):
    """The landing notebook's kernel starts with the server and runs the site's script: no person used anything."""
    activity, reported = monitor(server, clock, idle_timeout=60)
    server.kernel_manager.kernels["landing"] = FakeKernel("busy", clock.now)
    clock.now += 60
    activity.check()
    assert reported == {"activity": [], "idle": [60]}


def test_idle_too_long_stops_the_server(server, clock):
    activity, reported = monitor(server, clock, idle_timeout=60)
    server.kernel_manager.kernels["k"] = FakeKernel("idle", clock.now - 10)
    clock.now += 59
    activity.check()
    assert reported["idle"] == []
    clock.now += 1
    activity.check()
    assert reported == {"activity": [], "idle": [60]}


def test_no_idle_timeout_never_stops(server, clock):
    activity, reported = monitor(server, clock, idle_timeout=0)
    clock.now += 10 * 365 * 86400
    activity.check()
    assert reported == {"activity": [], "idle": []}


def test_polling_is_not_use_and_the_first_use_is_reported_at_once(server, clock):
    activity, reported = monitor(server, clock)
    clock.now += 30
    activity.observe_request(FakeRequest("GET", "/notebook/api/contents"))
    assert activity.last_use == activity.started
    assert server.io_loop.callbacks == []

    activity.observe_request(FakeRequest("PUT", "/notebook/api/contents/a.ipynb"))
    assert activity.last_use == clock.now
    assert server.io_loop.callbacks == [(activity.check, ())]
    server.io_loop.callbacks[0][0]()
    assert reported == {"activity": [clock.now], "idle": []}

    clock.now += 1
    activity.observe_request(FakeRequest("GET", "/notebook/tree"))
    assert len(server.io_loop.callbacks) == 1, "later uses wait for the next regular check"
    assert activity.last_use == clock.now


# The command line


@pytest.mark.parametrize(
    "arguments, message",
    [
        ([], "no action given"),
        (["restart", "x.pid"], "unknown action 'restart': use start, fg, stop or status"),
        (["stop"], "stop takes exactly one argument, PID_FILE"),
        (["status", "a.pid", "b.pid"], "status takes exactly one argument, PID_FILE"),
        (["stop", "--force"], "stop takes exactly one argument, PID_FILE"),
        (["start", "x.pid", "/tmp"], "start needs PID_FILE WORK_FOLDER PORT KILL_TIMEOUT"),
        (["fg", "x.pid", "/tmp", "8899", "--debug"], "fg needs PID_FILE WORK_FOLDER PORT KILL_TIMEOUT"),
        (["start", "x.pid", "/tmp", "port", "10"], "PORT and KILL_TIMEOUT must be whole numbers, got 'port' and '10'"),
        (["start", "x.pid", "/tmp", "70000", "10"], "PORT must be between 1 and 65535, got 70000"),
        (["start", "x.pid", "/tmp", "0", "10"], "PORT must be between 1 and 65535, got 0"),
        (["start", "x.pid", "/tmp", "8899", "0"], "KILL_TIMEOUT must be a positive number of seconds, got 0"),
        (["start", "x.pid", "/tmp", "8899", "-5"], "KILL_TIMEOUT must be a positive number of seconds, got -5"),
        (["start", "x.pid", "/nonexistent/folder", "8899", "10"], "WORK_FOLDER /nonexistent/folder is not a folder"),
    ],
)
def test_a_wrong_command_line_says_what_is_wrong(arguments, message):
    with pytest.raises(UsageError) as raised:
        parse_command_line(arguments)
    assert str(raised.value) == message


def test_a_start_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alice").mkdir()
    command = parse_command_line(["start", "alice/notebook.pid", "alice", "8899", "3600"])
    assert command == DaemonCommand(
        action="start",
        pid_file=tmp_path / "alice" / "notebook.pid",
        work_folder=tmp_path / "alice",
        port=8899,
        kill_timeout=3600,
        extra=(),
    )
    assert command.runs_server
    assert command.daemonocle_action == "start"


@pytest.mark.parametrize(
    "extra",
    [
        ["--ServerApp.iopub_data_rate_limit=1e12"],
        ["--", "--not-an-option"],
        ["--debug", "--", "-h", "--help", "file.ipynb"],
        ["-5", "stop", "x.pid"],
    ],
)
def test_extra_notebook_arguments_pass_exactly_as_given(tmp_path, extra):
    command = parse_command_line(["fg", str(tmp_path / "notebook.pid"), str(tmp_path), "8899", "10", *extra])
    assert command.extra == tuple(extra)
    assert command.action == "fg"
    assert command.daemonocle_action == "start"


def test_the_absolute_command_line_parses_back_the_same(tmp_path, monkeypatch):
    """A server started with relative paths re-executes itself with this, and is then recognised by it."""
    monkeypatch.chdir(tmp_path)
    command = parse_command_line(["start", "notebook.pid", ".", "8899", "10", "--", "--x"])
    argv = command.argv("/usr/bin/python3")
    assert argv[:3] == ["/usr/bin/python3", "-m", DAEMON_MODULE]
    assert argv[3:] == ["start", str(tmp_path / "notebook.pid"), str(tmp_path), "8899", "10", "--", "--x"]
    assert parse_command_line(argv[3:]) == command


@pytest.mark.parametrize("action", ["stop", "status"])
def test_stop_and_status_name_only_the_pid_file(tmp_path, monkeypatch, action):
    monkeypatch.chdir(tmp_path)
    command = parse_command_line([action, "notebook.pid"])
    assert command.pid_file == tmp_path / "notebook.pid"
    assert command.work_folder == tmp_path
    assert not command.runs_server
    assert command.argv("python") == ["python", "-m", DAEMON_MODULE, action, str(tmp_path / "notebook.pid")]


def test_the_processes_module_recognises_this_command_line(tmp_path):
    """protocol.processes tells a daemon by its command line: the two must agree."""

    class FakeProcess:
        def __init__(self, cmdline):
            self._cmdline = cmdline

        def status(self):
            return "sleeping"

        def cmdline(self):
            return self._cmdline

    command = parse_command_line(["start", str(tmp_path / "notebook.pid"), str(tmp_path), "8899", "10"])
    assert is_daemon_for(FakeProcess(command.argv()), tmp_path / "notebook.pid")
    assert not is_daemon_for(FakeProcess(command.argv()), tmp_path / "other.pid")


# Jupyter's configuration


def proxied_context(**fields) -> NotebookContext:
    values = dict(token="the-token", allow_origin="https://site.example", notebook_path="/notebook/")
    values.update(fields)
    return NotebookContext(**values)


def test_direct_websockets_get_the_servers_port_and_the_token():
    context = proxied_context(direct_websockets=True)
    run = this_run(context, DaemonCommand("start", Path("/w/notebook.pid"), Path("/w"), 8899, 10))
    assert run["websocket_url"] == "ws://127.0.0.1:8899/notebook/" == direct_websocket_url(8899, "/notebook/")
    context = NotebookContext(**{**context.to_dict(), **run})
    assert page_config(context) == {"wsUrl": "ws://127.0.0.1:8899/notebook/", "appendToken": "true"}
    config = server_config(context)
    assert config.ServerApp.websocket_url == "ws://127.0.0.1:8899/notebook/"
    assert config.ServerApp.tornado_settings == {"page_config_data": page_config(context)}
    server = FakeServer()
    keep_token_out_of_pages(server, context)
    assert server.web_app.settings["token"] == "secret", "the browser's websockets need the token"


def test_proxied_websockets_on_another_domain_get_no_token():
    context = proxied_context(websocket_url="wss://ws.example.com/notebook/")
    run = this_run(context, DaemonCommand("start", Path("/w/notebook.pid"), Path("/w"), 8899, 10))
    assert "websocket_url" not in run
    assert page_config(context) == {"wsUrl": "wss://ws.example.com/notebook/"}
    config = server_config(context)
    assert config.ServerApp.websocket_url == "wss://ws.example.com/notebook/"
    server = FakeServer()
    keep_token_out_of_pages(server, context)
    assert server.web_app.settings["token"] == ""


def test_websockets_through_the_pages_own_origin_need_no_configuration():
    context = proxied_context()
    assert page_config(context) == {}
    config = server_config(context)
    assert "websocket_url" not in config.ServerApp
    assert "tornado_settings" not in config.ServerApp
    server = FakeServer()
    keep_token_out_of_pages(server, context)
    assert server.web_app.settings["token"] == ""


def test_server_config_carries_the_token_and_the_sites_origin():
    config = server_config(proxied_context())
    assert config.IdentityProvider.token == "the-token"
    assert config.ServerApp.allow_origin == "https://site.example"
    assert config.ServerApp.extra_template_paths == [str(TEMPLATES)]
    assert (TEMPLATES / "page.html").is_file()
    assert config.ServerApp.contents_manager_class.endswith("ConfinedContentsManager")
    assert config.ServerApp.kernel_websocket_connection_class.endswith("NoDelayKernelWebsocketConnection")
    assert config.ServerApp.jpserver_extensions == {"jupyterlab": False, "jupyter_lsp": False}


def test_server_arguments_keep_the_token_off_the_command_line(tmp_path):
    context = proxied_context(notebook_path="/shell/")
    arguments = server_arguments(8899, context, tmp_path, ["--ServerApp.iopub_data_rate_limit=1e12"])
    assert "--port=8899" in arguments
    assert "--ip=127.0.0.1" in arguments
    assert "--port-retries=0" in arguments
    assert "--ServerApp.base_url=/shell/" in arguments
    assert "--ServerApp.root_dir={}".format(tmp_path) in arguments
    assert arguments[-1] == "--ServerApp.iopub_data_rate_limit=1e12", "the site's own arguments come last, to win"
    assert not any("the-token" in argument for argument in arguments)


# What the daemon writes to the context file


def test_the_recorder_writes_only_while_the_file_is_its_runs(tmp_path):
    path = tmp_path / "context.json"
    NotebookContext(token="first", greeting="hello", launcher_pid=42).write(path)
    recorder = ContextRecorder(path, "first")
    recorder.record(ready=True, last_activity=5.0)
    recorded = NotebookContext.read(path)
    assert (recorded.ready, recorded.last_activity) == (True, 5.0)
    assert (recorded.greeting, recorded.launcher_pid) == ("hello", 42), "the manager's fields stay"

    NotebookContext(token="second").write(path)
    recorder.record(stopped_reason="idle timeout")
    assert NotebookContext.read(path) == NotebookContext(token="second")


# The kernels' startup


class FakeShell:
    """What the startup reads of IPython's shell: the user namespace and the events."""

    def __init__(self):
        self.user_ns = {}
        self.events = EventManager(self, available_events)


def test_the_site_script_runs_in_the_users_namespace(tmp_path):
    shell = FakeShell()
    script = install_kernel_startup(tmp_path / ".ipython", "import math\nanswer = 6 * 7\n")
    run_site_startup(str(script), shell)
    assert shell.user_ns["answer"] == 42
    assert shell.user_ns["math"].__name__ == "math"
    assert shell.events.callbacks["pre_run_cell"] == []


def test_a_failing_site_script_is_reported_above_the_first_cell_only(tmp_path, capsys):
    shell = FakeShell()
    script = install_kernel_startup(tmp_path / ".ipython", "before = 1\nraise KeyError('no such table')\nafter = 2\n")
    run_site_startup(str(script), shell)
    assert shell.user_ns["before"] == 1
    assert "after" not in shell.user_ns
    assert capsys.readouterr() == ("", ""), "nothing shows before a cell runs"

    shell.events.trigger("pre_run_cell", None)
    shown = capsys.readouterr().err
    assert shown.startswith(FAILURE_HEADING)
    assert "KeyError: 'no such table'" in shown
    assert 'File "{}", line 2'.format(script) in shown, "the traceback quotes the site's script"

    shell.events.trigger("pre_run_cell", None)
    assert capsys.readouterr() == ("", "")


def test_the_ipython_startup_file_runs_the_site_script_and_leaves_nothing_else(tmp_path, monkeypatch):
    """IPython runs the startup file with the user namespace as its globals."""
    import IPython

    shell = FakeShell()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    ipython_dir = tmp_path / ".ipython"
    script = install_kernel_startup(ipython_dir, "answer = 42\n")
    assert script == ipython_dir / "site_startup.py"
    startup_file = ipython_dir / "profile_default" / "startup" / "startup.py"
    exec(compile(startup_file.read_text(), str(startup_file), "exec"), shell.user_ns)
    shell.user_ns.pop("__builtins__")
    assert shell.user_ns == {"answer": 42}


# The landing kernel launched ahead of the server


class FakeProcess:
    """Stands for a kernel's ``Popen``: running until terminated, or already exited."""

    def __init__(self, returncode=None):
        self.pid = 4242
        self.returncode = returncode
        self.terminated = False

    def poll(self):
        return self.returncode

    def terminate(self):
        self.terminated = True
        self.returncode = -15

    def wait(self, timeout=None):
        return self.returncode


def waiting_kernel(tmp_path, process=None, **changes) -> WaitingKernel:
    connection_file = tmp_path / "kernel-ahead.json"
    connection_file.write_text("{}")
    fields = dict(
        kernel_name="python3",
        session_name=str(tmp_path / "default.ipynb"),
        cwd=str(tmp_path),
        argv=["/venv/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        env={"HOME": "/home/alice", "JPY_SESSION_NAME": str(tmp_path / "default.ipynb")},
        connection_file=str(connection_file),
        process=process or FakeProcess(),
    )
    fields.update(changes)
    return WaitingKernel(**fields)


@pytest.fixture
def ahead(tmp_path, monkeypatch):
    """A kernel waiting to be adopted, as :func:`launch_ahead` leaves it."""
    kernel = waiting_kernel(tmp_path)
    monkeypatch.setattr(prelaunch, "_waiting", kernel)
    return kernel


def test_launches_compare_without_their_own_connection_files(tmp_path):
    """Each launch writes a connection file of its own; the rest of the command line must match."""
    command = [sys.executable, "-m", "ipykernel_launcher", "-f", os.path.realpath(tmp_path / "k.json")]
    assert without_connection_file(command, str(tmp_path / "k.json")) == [
        sys.executable,
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]


def launch_like(kernel: WaitingKernel, **changes) -> KernelLaunch:
    """A launch the kernel ``kernel`` would do for, with ``changes``; ``extra_env`` adds variables."""
    env = dict(kernel.env, **changes.pop("extra_env", {}))
    fields = dict(kernel_name=kernel.kernel_name, cwd=kernel.cwd, argv=kernel.argv, env=env)
    fields.update(changes)
    return KernelLaunch(**fields)


@pytest.mark.parametrize(
    "changes, refusal",
    [
        ({"kernel_name": "ir"}, "kernel 'ir', not 'python3'"),
        ({"cwd": "/elsewhere"}, "another folder"),
        ({"argv": ["/other/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]}, "another command line"),
        ({"transport": "ipc"}, "another transport or address (ipc on 127.0.0.1)"),
        ({"encrypted": True}, "transport encryption"),
        ({"extra_env": {"HOME": "/home/bob"}}, "another environment (HOME)"),
        ({"extra_env": {"EXTRA": "1"}}, "another environment (EXTRA)"),
    ],
)
def test_a_launch_unlike_the_kernel_ahead_does_not_adopt_it(ahead, changes, refusal):
    launch = launch_like(ahead, **changes)
    assert ahead.refusal(launch) == refusal
    assert claim_waiting_kernel(launch) is None
    assert ahead.process.terminated, "a kernel nobody can adopt is ended at once"
    assert not Path(ahead.connection_file).exists()
    assert prelaunch._waiting is None


def test_the_landing_session_adopts_the_kernel_ahead_once(ahead):
    launch = launch_like(ahead, extra_env={"JPY_PARENT_PID": "1234"})
    assert claim_waiting_kernel(launch) is ahead, "JPY_PARENT_PID is set per launch: not compared"
    assert claim_waiting_kernel(launch) is None
    assert not ahead.process.terminated


def test_another_notebook_s_kernel_leaves_the_kernel_ahead_waiting(tmp_path, ahead):
    other_notebook = launch_like(ahead, extra_env={"JPY_SESSION_NAME": str(tmp_path / "other.ipynb")})
    assert claim_waiting_kernel(other_notebook) is None
    assert prelaunch._waiting is ahead and not ahead.process.terminated


def test_a_kernel_ahead_that_exited_is_not_adopted(tmp_path, monkeypatch):
    exited = waiting_kernel(tmp_path, FakeProcess(returncode=1))
    monkeypatch.setattr(prelaunch, "_waiting", exited)
    assert claim_waiting_kernel(launch_like(exited)) is None
    assert prelaunch._waiting is None


def test_the_server_uses_the_adopting_provisioner_only_for_a_kernel_ahead():
    assert "KernelProvisionerFactory" not in server_config(proxied_context())
    config = server_config(proxied_context(), adopt_landing_kernel=True)
    assert config.KernelProvisionerFactory.default_provisioner_name == PROVISIONER_NAME
    assert provisioner_registered(), "setup.py registers it: jupyter_client finds provisioners by entry point"


# Kernel listings while a kernel starts


def test_a_kernel_still_starting_is_listed_as_starting_where_jupyter_server_fails():
    stock, ours = AsyncMappingKernelManager(), StartingKernelsListed()
    for manager in (stock, ours):
        # Where jupyter_client's start puts it, before jupyter_server marks its state and activity.
        manager._kernels["k1"] = ServerKernelManager(kernel_name="python3")
    with pytest.raises(TraitError):
        stock.list_kernels()
    (model,) = ours.list_kernels()
    assert model["id"] == "k1" and model["name"] == "python3"
    assert model["execution_state"] == "starting" and model["connections"] == 0
    assert datetime.fromisoformat(model["last_activity"]).tzinfo is not None

    marked = ours.get_kernel("k1")
    marked.execution_state, marked.last_activity = "idle", datetime.now(UTC)
    assert ours.list_kernels()[0]["execution_state"] == "idle", "once marked, jupyter_server's own model"


def test_the_server_lists_starting_kernels():
    assert server_config(proxied_context()).ServerApp.kernel_manager_class.endswith("StartingKernelsListed")
