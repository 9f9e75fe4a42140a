"""The notebook's life: the dead man switch, starting without blocking, failures, and the operators' tools."""

import subprocess
import sys

import psutil
import pytest
import requests
import webtest

from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.waiting import wait_for
from tests.support import site
from tests.support.kernel_client import connect, execute, execute_request, start_kernel
from tests.support.notebooks import stop_all
from tests.support.site import as_user


@pytest.fixture
def idle_manager(notebook_folder):
    """A manager whose notebooks end after 4 seconds without use."""
    manager = NotebookManager(notebook_folder, min_port=22000, port_range=500, kill_timeout=600, idle_timeout=4)
    yield manager
    stop_all(manager)


def kernel_socket(context):
    base = "127.0.0.1:{}/notebook/".format(context.http_port)
    kernel_id = start_kernel("http://" + base, context.token)
    return connect("ws://" + base, kernel_id, context.token)


def test_idle_notebook_stops_itself(idle_manager):
    context, _ = idle_manager.start_notebook_on_demand("alice", {})
    assert wait_for(lambda: not idle_manager.is_running("alice"), 30)
    assert idle_manager.get_state("alice")[0] == "stopped"
    assert "No use for" in idle_manager.work_folder("alice").stderr_log.read_text()


def test_open_idle_tab_does_not_keep_the_notebook_alive(idle_manager):
    """An open kernel websocket and the front end's polling are not use."""
    context, _ = idle_manager.start_notebook_on_demand("alice", {})
    ws = kernel_socket(context)
    try:
        assert execute(ws, "1")["result"] == "1"
        headers = {"Authorization": "token " + context.token}
        base = "http://127.0.0.1:{}/notebook/".format(context.http_port)

        def poll_until_stopped():
            for path in ("api/kernels", "api/sessions", "api/contents", "api/status"):
                try:
                    requests.get(base + path, headers=headers, timeout=5)
                except requests.ConnectionError:
                    pass
            return not idle_manager.is_running("alice")

        assert wait_for(poll_until_stopped, 40, interval=0.5)
    finally:
        ws.close()


def test_use_keeps_the_notebook_alive_and_a_busy_kernel_is_not_idle(idle_manager):
    context, _ = idle_manager.start_notebook_on_demand("alice", {})
    ws = kernel_socket(context)
    try:
        outcome = execute(ws, "import time\ntime.sleep(10)\nprint('still here')", timeout=60)
        assert outcome["stdout"] == "still here\n"
        assert idle_manager.is_running("alice")
        last_activity = idle_manager.get_context("alice").last_activity
        assert last_activity > context.started + 9
    finally:
        ws.close()
    assert wait_for(lambda: not idle_manager.is_running("alice"), 30)


def test_kill_timeout_is_a_hard_limit_even_in_use(notebook_folder):
    manager = NotebookManager(notebook_folder, min_port=22000, port_range=500, kill_timeout=5, idle_timeout=60)
    try:
        context, _ = manager.start_notebook_on_demand("alice", {})
        ws = kernel_socket(context)
        try:
            text, _msg_id = execute_request("import time\ntime.sleep(60)", session="busy")
            ws.send(text)
            assert wait_for(lambda: not manager.is_running("alice"), 30)
        finally:
            ws.shutdown()
    finally:
        manager.stop_notebook("alice")


def test_startup_script_failure_is_shown_in_the_notebook(manager):
    context, _ = manager.start_notebook_on_demand("alice", {"startup": "before = 1\nraise KeyError('no such table')\n"})
    base = "127.0.0.1:{}/notebook/".format(context.http_port)
    ws = connect("ws://" + base, start_kernel("http://" + base, context.token), context.token)
    try:
        first = execute(ws, "print(before)")
        assert first["stdout"] == "1\n"
        assert "The notebook's startup script failed" in first["stderr"]
        assert "KeyError: 'no such table'" in first["stderr"]
        assert "site_startup.py" in first["stderr"]
        assert execute(ws, "print(2)")["stderr"] == ""
    finally:
        ws.close()


# Through the site


def state(app, user="alice"):
    return app.get("/notebook/_pyramid_notebook/status", headers=as_user(user)).json["state"]


def test_launch_redirects_at_once_and_shows_progress(app):
    response = app.get("/launch", headers=as_user("alice"), status=302)
    assert state(app) == "starting"
    page = app.get(response.location.replace("http://localhost", ""), headers=as_user("alice"), status=200)
    assert 'id="pyramid-notebook-starting"' in page.text
    assert '"/notebook/_pyramid_notebook/status"' in page.text
    api = app.get("/notebook/api/contents", headers=as_user("alice"), status=503)
    assert api.json["error"] == "notebook_starting"
    assert wait_for(lambda: state(app) == "running", 60)
    page = app.get(response.location.replace("http://localhost", ""), headers=as_user("alice"), status=200)
    assert "pyramid-notebook-starting" not in page.text
    again = app.get("/launch", headers=as_user("alice"), status=302)
    assert again.location == response.location
    assert state(app) == "running"


def test_failed_start_shows_the_log_to_its_owner_only(settings, tmp_path):
    broken_python = tmp_path / "broken-python"
    broken_python.write_text("#!/bin/sh\necho 'simulated failure: cannot import the site' >&2\nexit 3\n")
    broken_python.chmod(0o755)
    settings["pyramid_notebook.python"] = str(broken_python)
    app = webtest.TestApp(site.main({}, **settings))
    app.get("/launch", headers=as_user("alice"), status=302)
    assert wait_for(lambda: state(app) == "failed", 30)
    page = app.get("/notebook/tree", headers=as_user("alice"), status=500)
    assert "launcher failed with exit code 3" in page.text
    assert "simulated failure: cannot import the site" in page.text
    assert "Traceback" not in page.text
    other = app.get("/notebook/tree", headers=as_user("bob"), status=503)
    assert "simulated failure" not in other.text
    assert "not running" in other.text


def test_damaged_context_file_is_not_running(app, notebook_folder):
    folder = notebook_folder / "alice"
    folder.mkdir(parents=True)
    (folder / "context.json").write_text('{"pid": 12, "http_port": 4')
    assert "not running" in app.get("/notebook/tree", headers=as_user("alice"), status=503).text
    assert app.get("/notebook/api/status", headers=as_user("alice"), status=503).json["state"] == "stopped"


def test_admin_page_lists_and_stops_notebooks(app):
    app.get("/launch", headers=as_user("alice"), status=302)
    assert wait_for(lambda: state(app) == "running", 60)
    page = app.get("/admin/notebooks", headers=as_user("admin"))
    assert "alice" in page.text
    assert "kernel" in page.text
    form = page.forms[0]
    assert form["user"].value == "alice"
    app.post("/admin/notebooks", {"user": "alice"}, headers=as_user("admin"), status=400)
    assert state(app) == "running"
    form.submit(headers=as_user("admin"), status=302)
    assert state(app) == "stopped"
    assert "No notebooks are running" in app.get("/admin/notebooks", headers=as_user("admin")).text


def cli(config_file, *arguments):
    return subprocess.run(
        [sys.executable, "-m", "pyramid_notebook.cli", str(config_file), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_command_line_lists_and_stops(settings, tmp_path, notebook_folder):
    config_file = tmp_path / "site.ini"
    config_file.write_text(
        "[app:main]\nuse = call:tests.support.site:main\n"
        + "".join("{} = {}\n".format(k, v) for k, v in settings.items())
    )
    manager = NotebookManager(notebook_folder, min_port=22000, port_range=500)
    try:
        alice, _ = manager.start_notebook_on_demand("alice", {})
        bob, _ = manager.start_notebook_on_demand("bob", {})
        listing = cli(config_file, "list")
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert lines[0].split() == ["user", "pid", "port", "started", "last", "activity", "memory", "launch", "URL"]
        assert lines[1].split()[:3] == ["alice", str(alice.pid), str(alice.http_port)]
        assert lines[2].split()[:3] == ["bob", str(bob.pid), str(bob.http_port)]
        assert "MB (1 kernel)" in lines[1], "the landing notebook's kernel"

        stopped = cli(config_file, "stop", "alice")
        assert stopped.returncode == 0, stopped.stderr
        assert not manager.is_running("alice")
        assert manager.is_running("bob")
        assert cli(config_file, "stop", "alice").returncode == 1
        assert "no notebook runs for alice" in cli(config_file, "stop", "alice").stderr

        everything = cli(config_file, "stop-all")
        assert everything.stdout == "Stopped 1 notebook(s): bob\n"
        assert not manager.is_running("bob")
        assert not psutil.pid_exists(bob.pid) or psutil.Process(bob.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        stop_all(manager)


def test_command_line_names_a_bad_ini(tmp_path):
    result = cli(tmp_path / "missing.ini", "list")
    assert result.returncode == 2
    assert "missing.ini" in result.stderr
    config_file = tmp_path / "bad.ini"
    config_file.write_text("[app:main]\nuse = call:tests.support.site:main\n")
    result = cli(config_file, "list")
    assert result.returncode == 2
    assert "pyramid_notebook.notebook_folder" in result.stderr


def test_stop_while_starting_leaves_nothing_running(manager):
    context = manager.start_notebook("alice", {}, wait=False)
    assert manager.get_state("alice")[0] == "starting"
    manager.stop_notebook("alice")
    assert manager.get_state("alice")[0] == "stopped"

    def processes_for_alice():
        # The daemon, and the launcher that forked it (it lingers for a second by design).
        return [
            process
            for process in psutil.process_iter(["cmdline"])
            if str(manager.work_folder("alice").pid_file) in " ".join(process.info["cmdline"] or ())
            and process.status() != psutil.STATUS_ZOMBIE
        ]

    assert wait_for(lambda: not processes_for_alice(), 10)
    assert manager.get_state("alice")[0] == "stopped"
    assert context.notebook_name.startswith("default-")
