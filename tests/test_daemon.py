"""The notebook daemon's command line, run as a real subprocess."""

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import pyramid_notebook.server.notebook_daemon as notebook_daemon
from pyramid_notebook.server.context import write_context
from pyramid_notebook.waiting import wait_for
from tests.kernel_client import connect, execute, start_kernel

SCRIPT = Path(notebook_daemon.__file__)


def daemon(*arguments, script=False):
    command = (
        [sys.executable, str(SCRIPT)] if script else [sys.executable, "-m", "pyramid_notebook.server.notebook_daemon"]
    )
    return subprocess.run(
        command + [str(argument) for argument in arguments],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.mark.parametrize(
    "arguments, message",
    [
        ([], "no action given"),
        (["restart", "x.pid"], "unknown action 'restart'"),
        (["stop"], "stop takes exactly one argument, PID_FILE"),
        (["start", "x.pid", "/tmp"], "start needs PID_FILE WORK_FOLDER PORT KILL_TIMEOUT"),
        (["start", "x.pid", "/tmp", "port", "10"], "PORT and KILL_TIMEOUT must be whole numbers"),
        (["start", "x.pid", "/tmp", "70000", "10"], "PORT must be between 1 and 65535"),
        (["start", "x.pid", "/tmp", "8899", "0"], "KILL_TIMEOUT must be a positive number"),
        (["start", "x.pid", "/nonexistent/folder", "8899", "10"], "is not a folder"),
    ],
)
def test_bad_command_lines_say_what_is_wrong(arguments, message):
    result = daemon(*arguments)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Usage:" in result.stderr


def test_status_and_stop_when_nothing_runs(tmp_path):
    assert daemon("status", tmp_path / "notebook.pid").returncode == 1
    result = daemon("stop", tmp_path / "notebook.pid")
    assert result.returncode == 0
    assert "not running" in result.stdout


def test_missing_context_file_fails_with_its_name(tmp_path):
    pid_file = tmp_path / "notebook.pid"
    daemon("start", pid_file, tmp_path, 42999, 60)
    assert wait_for(lambda: "No usable context file" in (tmp_path / "notebook.stderr.log").read_text(), 10)
    assert not pid_file.exists()


@pytest.mark.parametrize("script", [False, True], ids=["module", "script"])
def test_start_status_stop_from_the_command_line(tmp_path, script):
    pid_file = tmp_path / "notebook.pid"
    token = "a-secret-token-for-this-test"
    write_context(tmp_path / "context.json", {"token": token, "context_hash": "abc"})
    port = 42990 + script
    result = daemon("start", pid_file, tmp_path, port, 120, script=script)
    try:
        assert result.returncode == 0, result.stderr
        url = "http://127.0.0.1:{}/notebook/api/status".format(port)

        def answers():
            try:
                return requests.get(url, headers={"Authorization": "token " + token}, timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        assert wait_for(answers, 30)
        status = daemon("status", pid_file, script=script)
        assert status.returncode == 0
        assert "PID" in status.stdout
        assert (tmp_path / "default-abc.ipynb").exists()
    finally:
        stop = daemon("stop", pid_file, script=script)
    assert stop.returncode == 0
    assert not pid_file.exists()
    assert daemon("status", pid_file).returncode == 1


def test_kernel_round_trip_has_no_nagle_stall(manager):
    """Stock Jupyter Server takes about 45 ms per execute here; with TCP_NODELAY a few ms."""
    context, _ = manager.start_notebook_on_demand("alice", {})
    base = "127.0.0.1:{}/notebook/".format(context["http_port"])
    kernel_id = start_kernel("http://" + base, context["token"])
    ws = connect("ws://" + base, kernel_id, context["token"])
    try:
        execute(ws, "1")
        timings = []
        for _ in range(50):
            started = time.perf_counter()
            outcome = execute(ws, "1")
            timings.append(time.perf_counter() - started)
            assert outcome["result"] == "1"
    finally:
        ws.close()
    assert statistics.median(timings) < 0.015, "median {:.1f} ms".format(statistics.median(timings) * 1000)
