"""Ports come back as soon as their notebook is stopped, and a launch cut short leaves one consistent state."""

import subprocess
import sys
import time

import psutil
import pytest
import requests

from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.protocol.processes import find_daemons
from pyramid_notebook.waiting import wait_for
from tests.support.notebooks import stop_all


def answers(context: NotebookContext) -> bool:
    url = "http://127.0.0.1:{}/notebook/api/status".format(context.http_port)
    return requests.get(url, headers={"Authorization": "token " + context.token}, timeout=10).status_code == 200


def server_pids(manager: NotebookManager, name: str) -> list[int]:
    """The live daemon processes for the user's pid file (for about a second also the launcher)."""
    return sorted(process.pid for process in find_daemons(manager.work_folder(name).pid_file))


@pytest.fixture
def one_port_manager(notebook_folder):
    """A manager with a single port: a second notebook can only start once the first is really gone."""
    manager = NotebookManager(notebook_folder, min_port=22600, port_range=1, kill_timeout=600)
    yield manager
    stop_all(manager)


def test_a_stopped_notebooks_port_is_free_at_once(one_port_manager):
    first, _ = one_port_manager.start_notebook_on_demand("alice", {})
    one_port_manager.stop_notebook("alice")
    again, created = one_port_manager.start_notebook_on_demand("alice", {})
    assert created
    assert again.http_port == first.http_port
    assert answers(again)
    one_port_manager.stop_notebook("alice")
    other, _ = one_port_manager.start_notebook_on_demand("bob", {})
    assert other.http_port == first.http_port
    assert answers(other)


def test_ended_and_foreign_processes_claim_no_port(manager):
    """Stopped notebooks, zombies and pids that are not our daemon do not hold ports."""
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    assert wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, 10)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        for port, name, pid, extra in [
            (42001, "zombie", zombie.pid, {}),
            (42002, "stranger", stranger.pid, {}),
            (42003, "stopped", stranger.pid, {"stopped_at": time.time()}),
        ]:
            folder = manager.work_folder(name)
            folder.path.mkdir()
            context = {"http_port": port, "pid": pid, "token": "t", "ready": True, "launched_at": time.time()}
            NotebookContext(**context, **extra).write(folder.context_file)
        assert manager.store.claimed_ports() == set()
        assert manager.store.ports.pick(manager.store.claimed_ports()) == manager.options.min_port
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
        zombie.wait()


#: A web process that launches a notebook and dies: either just before it
#: spawns the launcher, or just after, before anyone saw the notebook start.
DYING_WEB_PROCESS = """
import os, subprocess, sys
from pyramid_notebook.manager import NotebookManager

manager = NotebookManager(sys.argv[1], min_port=22000, port_range=500, kill_timeout=600)
if sys.argv[2] == "before-spawn":
    def die(*args, **kwargs):
        os._exit(9)
    subprocess.Popen = die
manager.start_notebook("alice", {"startup": "x = 1"}, wait=False)
os._exit(9)
"""


@pytest.mark.parametrize("moment", ["before-spawn", "after-spawn"])
def test_web_process_dying_during_a_launch_leaves_one_server(manager, moment):
    dying = subprocess.run(
        [sys.executable, "-c", DYING_WEB_PROCESS, str(manager.notebook_folder), moment], timeout=60, check=False
    )
    assert dying.returncode == 9
    context, _created = manager.start_notebook_on_demand("alice", {"startup": "x = 1"})
    assert answers(context)
    assert wait_for(lambda: server_pids(manager, "alice") == [context.pid], 10), server_pids(manager, "alice")
    server_log = manager.work_folder("alice").stderr_log.read_text()
    assert "127.0.0.1:{}/notebook/".format(context.http_port) in server_log
