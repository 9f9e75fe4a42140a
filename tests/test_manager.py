"""NotebookManager against real notebook processes."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import requests

from pyramid_notebook.manager import NotebookManager, NotebookStartError, check_name
from pyramid_notebook.protocol.context import (
    STOPPED_BY_ADMIN,
    STOPPED_BY_USER,
    STOPPED_CONTEXT_CHANGE,
    STOPPED_CRASH,
    NotebookContext,
)
from pyramid_notebook.protocol.processes import find_daemons, is_gone
from pyramid_notebook.waiting import wait_for
from tests.support.kernel_client import run_in_notebook

#: The logger of the manager's start and stop messages.
MANAGER_LOGGER = "pyramid_notebook.manager.manager"


def context_hash(site_context: dict) -> str:
    """The hash of a context a site gives as a dict."""
    return NotebookContext.from_site(site_context).compute_hash()


def status_code(context: NotebookContext, token: str | None) -> int:
    headers = {"Authorization": "token " + token} if token else {}
    url = "http://127.0.0.1:{}/notebook/api/status".format(context.http_port)
    return requests.get(url, headers=headers, timeout=10).status_code


def test_start_and_stop(manager):
    context, created = manager.start_notebook_on_demand("alice", {"greeting": "Hello"})
    assert created
    assert manager.is_running("alice")
    assert psutil.Process(context.pid).is_running()
    assert manager.get_notebook_status("alice")["pid"] == context.pid

    manager.stop_notebook("alice")
    assert not manager.is_running("alice")
    assert manager.get_notebook_status("alice") is None
    assert not psutil.pid_exists(context.pid) or psutil.Process(context.pid).status() == psutil.STATUS_ZOMBIE


def test_same_context_reuses_the_running_notebook(manager):
    first, _ = manager.start_notebook_on_demand("alice", {"startup": "x = 1"})
    second, created = manager.start_notebook_on_demand("alice", {"startup": "x = 1"})
    assert not created
    assert second.pid == first.pid
    assert second.token == first.token, "the same server, not a new one on the same pid"


def test_changed_context_restarts_the_notebook(manager):
    first, _ = manager.start_notebook_on_demand("alice", {"startup": "x = 1"})
    second, created = manager.start_notebook_on_demand("alice", {"startup": "x = 2"})
    assert created
    assert second.pid != first.pid
    assert second.context_hash != first.context_hash
    assert wait_for(
        lambda: not psutil.pid_exists(first.pid) or psutil.Process(first.pid).status() == "zombie", 10
    )


def test_token_is_required(manager):
    context, _ = manager.start_notebook_on_demand("alice", {})
    assert status_code(context, None) == 403
    assert status_code(context, "wrong-token") == 403
    assert status_code(context, context.token) == 200


def test_token_never_in_logs_or_command_line(manager):
    context, _ = manager.start_notebook_on_demand("alice", {})
    status_code(context, None)
    folder = manager.get_work_folder("alice")
    for log in folder.glob("*.log"):
        assert context.token not in log.read_text()
    assert context.token not in " ".join(psutil.Process(context.pid).cmdline())
    assert oct(manager.work_folder("alice").context_file.stat().st_mode & 0o777) == "0o600"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"


def test_kill_minus_nine_is_recovered(manager):
    context, _ = manager.start_notebook_on_demand("alice", {})
    os.kill(context.pid, signal.SIGKILL)
    assert wait_for(lambda: not manager.is_running("alice"), 10)
    again, created = manager.start_notebook_on_demand("alice", {})
    assert created
    assert again.pid != context.pid
    assert status_code(again, again.token) == 200


def test_stale_pid_file_and_damaged_context(manager):
    folder = manager.get_work_folder("alice")
    folder.mkdir(parents=True)
    # A pid that belongs to an unrelated live process: this test's own.
    manager.work_folder("alice").pid_file.write_text("{}\n".format(os.getpid()))
    manager.work_folder("alice").context_file.write_text('{"pid": 1, "http_p')
    assert not manager.is_running("alice")
    assert manager.get_context("alice") is None
    context, created = manager.start_notebook_on_demand("alice", {})
    assert created
    assert status_code(context, context.token) == 200


def test_concurrent_launches_of_one_user_give_one_process(manager):
    script = (
        "import json, sys\n"
        "from pyramid_notebook.manager import NotebookManager\n"
        "m = NotebookManager(sys.argv[1], min_port=22000, port_range=500)\n"
        "context, created = m.start_notebook_on_demand('alice', {'startup': 'x = 1'})\n"
        "print(json.dumps([context.pid, created]))\n"
    )
    launchers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(manager.notebook_folder)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [json.loads(launcher.communicate(timeout=120)[0]) for launcher in launchers]
    assert results[0][0] == results[1][0]
    assert sorted(created for _pid, created in results) == [False, True]

    def daemon_pids():
        # The daemon, plus for about a second the launcher that forked it.
        return [
            process.pid
            for process in psutil.process_iter(["cmdline"])
            if str(manager.work_folder("alice").pid_file) in " ".join(process.info["cmdline"] or ())
            and process.status() != psutil.STATUS_ZOMBIE
        ]

    assert wait_for(lambda: daemon_pids() == [results[0][0]], 10), daemon_pids()


def test_five_users_at_once_get_five_ports(manager):
    from concurrent.futures import ThreadPoolExecutor

    names = ["user{}".format(number) for number in range(5)]
    with ThreadPoolExecutor(5) as pool:
        contexts = list(pool.map(lambda name: manager.start_notebook_on_demand(name, {})[0], names))
    assert len({context.http_port for context in contexts}) == 5
    assert all(status_code(context, context.token) == 200 for context in contexts)


def test_port_in_use_is_skipped(notebook_folder):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        manager = NotebookManager(notebook_folder, min_port=taken, port_range=50)
        try:
            context, _ = manager.start_notebook_on_demand("alice", {})
            assert context.http_port != taken
            assert status_code(context, context.token) == 200
        finally:
            manager.stop_notebook("alice")


def test_no_free_port_is_a_clear_error(notebook_folder):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        manager = NotebookManager(notebook_folder, min_port=squatter.getsockname()[1], port_range=1)
        with pytest.raises(NotebookStartError, match="port_range"):
            manager.start_notebook("alice", {})


def test_kill_timeout_ends_the_notebook(notebook_folder):
    manager = NotebookManager(notebook_folder, min_port=22000, port_range=500, kill_timeout=3)
    try:
        context, _ = manager.start_notebook_on_demand("alice", {})
        assert wait_for(lambda: not manager.is_running("alice"), 20)
        assert not manager.is_running("alice")
        assert context.kill_timeout == 3
    finally:
        manager.stop_notebook("alice")


def test_stop_takes_the_kernels_along(manager):
    context, _ = manager.start_notebook_on_demand("alice", {})
    headers = {"Authorization": "token " + context.token}
    base = "http://127.0.0.1:{}/notebook/".format(context.http_port)
    for _ in range(2):
        requests.post(base + "api/kernels", json={"name": "python3"}, headers=headers, timeout=30).raise_for_status()
    kernels = psutil.Process(context.pid).children(recursive=True)
    assert len(kernels) >= 2
    manager.stop_notebook("alice")
    assert all(not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE for kernel in kernels)


@pytest.mark.parametrize("name", ["", ".", "..", "../evil", "a/b", "a\x00b", ".hidden", "tab\tname", "x" * 300])
def test_bad_names_are_refused(manager, name):
    with pytest.raises(ValueError, match="user name"):
        manager.start_notebook_on_demand(name, {})
    assert list(manager.notebook_folder.iterdir()) == []


@pytest.mark.parametrize("name", ["mikko@example.com", "jörg", "Anna Maria"])
def test_real_user_names_work(manager, name):
    assert check_name(name) == name
    context, _ = manager.start_notebook_on_demand(name, {})
    assert manager.get_work_folder(name).parent == manager.notebook_folder
    assert status_code(context, context.token) == 200


def test_context_hash_is_stable_across_processes():
    context = {"startup": "import os", "greeting": "Hello jörg", "numbers": [1, 2]}
    other_process = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from pyramid_notebook.protocol.context import NotebookContext;"
            "print(NotebookContext.from_site(json.loads(sys.argv[1])).compute_hash())",
            json.dumps(context),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other_process.stdout.strip() == context_hash(context)
    assert context_hash(dict(context, pid=5, http_port=1, token="x")) == context_hash(context)
    assert context_hash(dict(context, startup="import sys")) != context_hash(context)


def test_startup_script_and_greeting(manager):
    context, _ = manager.start_notebook_on_demand(
        "alice",
        {"startup": "answer = 6 * 7\ndef shout(text):\n    return text.upper()\n", "greeting": "Use **answer**"},
    )
    outcome = run_in_notebook(context, "print(answer, shout('hi'))")
    assert outcome["stdout"] == "42 HI\n"
    notebook = json.loads((manager.work_folder("alice").notebook_root / context.notebook_name).read_text())
    sources = ["".join(cell["source"]) for cell in notebook["cells"]]
    assert "Use **answer**" in sources
    assert notebook["cells"][-1]["cell_type"] == "code"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


def test_default_notebook_keeps_the_users_edits(manager):
    context, _ = manager.start_notebook_on_demand("alice", {"greeting": "Hi"})
    path = manager.work_folder("alice").notebook_root / context.notebook_name
    path.write_text(path.read_text().replace("Hi", "My own notes"))
    manager.stop_notebook("alice")
    manager.start_notebook_on_demand("alice", {"greeting": "Hi"})
    assert "My own notes" in path.read_text()


def test_start_failure_names_the_log(notebook_folder):
    manager = NotebookManager(notebook_folder, min_port=22000, port_range=500, python="/bin/false")
    with pytest.raises(NotebookStartError) as failure:
        manager.start_notebook("alice", {})
    message = str(failure.value)
    assert "notebook.stderr.log" in message
    assert "launcher failed with exit code 1" in message
    assert manager.get_context("alice").token not in message


# Damaged pid files


@pytest.mark.parametrize("damage", ["garbage", "pid 1", "another program"])
def test_damaged_pid_file_is_not_running_and_leaves_no_orphan(manager, damage):
    first, _ = manager.start_notebook_on_demand("alice", {})
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        written = {"garbage": "\x00not a pid\n", "pid 1": "1\n", "another program": "{}\n".format(stranger.pid)}
        manager.work_folder("alice").pid_file.write_text(written[damage])
        assert not manager.is_running("alice")
        old_server = psutil.Process(first.pid)
        assert manager.get_state("alice")[0] == "stopped"
        # Not running means not running: the server the pid file lost is ended, not left as an orphan.
        assert is_gone(old_server)
        second, created = manager.start_notebook_on_demand("alice", {})
        assert created
        assert status_code(second, second.token) == 200
        pid_file = manager.work_folder("alice").pid_file
        assert wait_for(lambda: [process.pid for process in find_daemons(pid_file)] == [second.pid], 10)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


# Why a notebook stopped


def notebook_log_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == MANAGER_LOGGER]


def test_stop_records_and_logs_its_reason(manager, caplog):
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    context, _ = manager.start_notebook_on_demand("alice", {})
    before = time.time()
    manager.stop_notebook("alice")
    stopped = manager.get_context("alice")
    assert stopped.stopped_reason == STOPPED_BY_USER
    assert stopped.stopped_at >= before
    assert notebook_log_lines(caplog).count("Notebook for alice stopped: " + STOPPED_BY_USER) == 1
    manager.start_notebook_on_demand("bob", {})
    manager.stop_notebook("bob", STOPPED_BY_ADMIN)
    assert manager.get_context("bob").stopped_reason == STOPPED_BY_ADMIN
    assert "Notebook for bob stopped: " + STOPPED_BY_ADMIN in notebook_log_lines(caplog)
    assert not any(context.token in line for line in caplog.text.splitlines())


def test_context_change_records_its_reason(manager, caplog):
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    manager.start_notebook_on_demand("alice", {"startup": "x = 1"})
    manager.start_notebook_on_demand("alice", {"startup": "x = 2"})
    assert "Notebook for alice stopped: " + STOPPED_CONTEXT_CHANGE in notebook_log_lines(caplog)
    assert not manager.get_context("alice").stopped_reason


def test_crash_is_recorded_once(manager, caplog):
    caplog.set_level(logging.INFO, logger=MANAGER_LOGGER)
    context, _ = manager.start_notebook_on_demand("alice", {"launch_url": "http://site.example/page"})
    daemon = psutil.Process(context.pid)
    for process in [daemon, *daemon.children(recursive=True)]:
        process.kill()
    assert wait_for(lambda: manager.get_state("alice")[0] == "stopped", 10)
    crashed = manager.get_context("alice")
    assert crashed.stopped_reason == STOPPED_CRASH
    assert manager.get_state("alice")[0] == "stopped"
    manager.stop_notebook("alice")
    assert manager.get_context("alice").stopped_at == crashed.stopped_at
    assert manager.get_context("alice").stopped_reason == STOPPED_CRASH
    assert notebook_log_lines(caplog).count("Notebook for alice stopped: " + STOPPED_CRASH) == 1
    listed = manager.list_notebooks(include_stopped=True)
    assert [(entry["name"], entry["state"]) for entry in listed] == [("alice", "stopped")]
    assert listed[0]["stopped_reason"] == STOPPED_CRASH
    assert listed[0]["stopped_at"] == crashed.stopped_at
    assert listed[0]["launch_url"] == "http://site.example/page"
    assert manager.list_notebooks() == []


def test_list_notebooks_with_stopped_ones(manager):
    alice, _ = manager.start_notebook_on_demand("alice", {"launch_url": "http://site.example/a"})
    manager.start_notebook_on_demand("bob", {})
    manager.stop_notebook("bob")
    running = manager.list_notebooks()
    assert [entry["name"] for entry in running] == ["alice"]
    assert running[0]["pid"] == alice.pid
    assert running[0]["launch_url"] == "http://site.example/a"
    everything = {entry["name"]: entry for entry in manager.list_notebooks(include_stopped=True)}
    assert everything["alice"]["state"] == "running"
    assert everything["alice"]["stopped_at"] is None
    assert everything["bob"]["state"] == "stopped"
    assert everything["bob"]["stopped_reason"] == STOPPED_BY_USER
    assert everything["bob"]["launch_url"] is None
