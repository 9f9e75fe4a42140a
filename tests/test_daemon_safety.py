"""The daemon acts only on its own server, whatever its pid file says.

A pid file can outlive its server and name a pid the system has given to an
unrelated program since, or it can be damaged (garbage, ``1``).  ``stop``,
``status`` and ``start`` must then leave every other process alone, treat
the notebook as not running, and still never leave a server of this pid file
running unseen.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.protocol.processes import daemon_pid, find_daemons, is_daemon_for, is_gone, terminate_tree
from pyramid_notebook.waiting import wait_for
from tests.support.daemon_cli import daemon

TOKEN = "a-secret-token-for-the-safety-tests"

#: Ports for these tests, apart from the other test modules' ranges.
PORT = 23900


@pytest.fixture
def unrelated_process():
    """A process that is not a notebook: what a reused pid names."""
    process = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def work_folder(tmp_path):
    folder = tmp_path / "alice"
    folder.mkdir()
    NotebookContext(token=TOKEN, context_hash="abc").write(folder / "context.json")
    yield folder
    for server in find_daemons(folder / "notebook.pid"):
        terminate_tree(server.pid, 10)


def answers(port: int) -> bool:
    try:
        url = "http://127.0.0.1:{}/notebook/api/status".format(port)
        return requests.get(url, headers={"Authorization": "token " + TOKEN}, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def start_server(work_folder: Path, port: int) -> psutil.Process:
    """Start the daemon from the command line; return its server process once it answers."""
    pid_file = work_folder / "notebook.pid"
    result = daemon("start", pid_file, work_folder, port, 300)
    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: answers(port), 30), (work_folder / "notebook.stderr.log").read_text()[-3000:]
    pid = daemon_pid(pid_file)
    assert pid is not None, "the pid file does not name the server: {!r}".format(pid_file.read_text())
    return psutil.Process(pid)


def test_stop_leaves_an_unrelated_process_named_by_the_pid_file_alone(tmp_path, unrelated_process):
    pid_file = tmp_path / "notebook.pid"
    pid_file.write_text("{}\n".format(unrelated_process.pid))

    status = daemon("status", pid_file)
    stop = daemon("stop", pid_file)

    assert status.returncode == 1, status.stdout
    assert "not running" in status.stdout
    assert stop.returncode == 0
    assert "not running" in stop.stdout
    assert unrelated_process.poll() is None, "stop ended a process that was not the notebook"
    assert not pid_file.exists(), "a pid file naming no notebook server is stale"


@pytest.mark.parametrize("content", ["garbage\n", "1\n", "", "-42\n", "0\n", "4194305\n"])
def test_a_damaged_pid_file_means_not_running(tmp_path, content):
    pid_file = tmp_path / "notebook.pid"
    pid_file.write_text(content)
    # Status first: on a pid file saying "1", an unguarded stop would signal init.
    status = daemon("status", pid_file)
    assert status.returncode == 1, status.stdout
    assert "not running" in status.stdout
    stop = daemon("stop", pid_file)
    assert stop.returncode == 0
    assert "not running" in stop.stdout


def test_is_daemon_for_needs_this_daemon_and_this_pid_file(work_folder, unrelated_process):
    server = start_server(work_folder, PORT)
    pid_file = work_folder / "notebook.pid"
    assert is_daemon_for(server, pid_file)
    assert not is_daemon_for(server, work_folder / "other.pid")
    assert not is_daemon_for(psutil.Process(unrelated_process.pid), pid_file)
    assert not is_daemon_for(psutil.Process(), pid_file)
    assert [process.pid for process in find_daemons(pid_file)] == [server.pid]


@pytest.mark.parametrize("damage", ["garbage", "init", "unrelated"])
def test_start_over_a_damaged_pid_file_replaces_it_and_leaves_no_orphan(work_folder, unrelated_process, damage):
    pid_file = work_folder / "notebook.pid"
    old_server = start_server(work_folder, PORT + 1)
    pid_file.write_text({"garbage": "x17", "init": "1", "unrelated": str(unrelated_process.pid)}[damage] + "\n")
    assert daemon("status", pid_file).returncode == 1

    new_server = start_server(work_folder, PORT + 2)

    assert new_server.pid != old_server.pid
    assert wait_for(lambda: is_gone(old_server), 15), "the earlier server was left running, unseen"
    assert pid_file.read_text().strip() == str(new_server.pid)
    assert unrelated_process.poll() is None


def test_stop_with_a_damaged_pid_file_still_stops_the_server(work_folder, unrelated_process):
    pid_file = work_folder / "notebook.pid"
    server = start_server(work_folder, PORT + 3)
    pid_file.write_text("{}\n".format(unrelated_process.pid))

    stop = daemon("stop", pid_file)

    assert stop.returncode == 0
    assert is_gone(server)
    assert unrelated_process.poll() is None
    assert not pid_file.exists()


def test_a_server_ending_late_does_not_delete_the_pid_file_of_its_successor(work_folder, unrelated_process):
    """The successor is played by the unrelated process: the pid file names it when the old server exits."""
    pid_file = work_folder / "notebook.pid"
    server = start_server(work_folder, PORT + 4)
    pid_file.write_text("{}\n".format(unrelated_process.pid))

    os.kill(server.pid, signal.SIGTERM)

    assert wait_for(lambda: is_gone(server), 15)
    assert pid_file.exists(), "the old server deleted a pid file that was no longer its own"
    assert pid_file.read_text().strip() == str(unrelated_process.pid)


def test_a_server_removes_its_own_pid_file_when_it_ends(work_folder):
    pid_file = work_folder / "notebook.pid"
    server = start_server(work_folder, PORT + 5)
    os.kill(server.pid, signal.SIGTERM)
    assert wait_for(lambda: is_gone(server), 15)
    assert not pid_file.exists()


def test_a_forced_kill_is_logged_with_the_pid(tmp_path, caplog):
    """A process that ignores SIGTERM is killed after the grace period, and the log says which."""
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(300)",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stubborn.stdout.readline() == "ready\n"
        with caplog.at_level("WARNING", logger="pyramid_notebook.protocol.processes"):
            terminate_tree(stubborn.pid, 0.5)
        assert stubborn.wait(5) == -signal.SIGKILL
    finally:
        stubborn.kill()
        stubborn.wait()
    [record] = [record for record in caplog.records if "SIGKILL" in record.getMessage()]
    assert record.levelname == "WARNING"
    assert str(stubborn.pid) in record.getMessage()
