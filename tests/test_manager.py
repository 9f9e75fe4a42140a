"""NotebookManager against real notebook processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import requests

from pyramid_notebook.notebookmanager import NotebookManager, NotebookStartError, check_name
from pyramid_notebook.server.context import context_hash
from pyramid_notebook.waiting import wait_for
from tests.kernel_client import run_in_notebook


def status_code(context: dict, token: str | None) -> int:
    headers = {"Authorization": "token " + token} if token else {}
    url = "http://127.0.0.1:{}/notebook/api/status".format(context["http_port"])
    return requests.get(url, headers=headers, timeout=10).status_code


def test_start_and_stop(manager):
    context, created = manager.start_notebook_on_demand("alice", {"greeting": "Hello"})
    assert created
    assert manager.is_running("alice")
    assert psutil.Process(context["pid"]).is_running()
    assert manager.get_notebook_status("alice")["pid"] == context["pid"]

    manager.stop_notebook("alice")
    assert not manager.is_running("alice")
    assert manager.get_notebook_status("alice") is None
    assert not psutil.pid_exists(context["pid"]) or psutil.Process(context["pid"]).status() == psutil.STATUS_ZOMBIE


def test_same_context_reuses_the_running_notebook(manager):
    first, _ = manager.start_notebook_on_demand("alice", {"startup": "x = 1"})
    started = time.monotonic()
    second, created = manager.start_notebook_on_demand("alice", {"startup": "x = 1"})
    elapsed = time.monotonic() - started
    assert not created
    assert second["pid"] == first["pid"]
    assert elapsed < 0.1


def test_changed_context_restarts_the_notebook(manager):
    first, _ = manager.start_notebook_on_demand("alice", {"startup": "x = 1"})
    second, created = manager.start_notebook_on_demand("alice", {"startup": "x = 2"})
    assert created
    assert second["pid"] != first["pid"]
    assert second["context_hash"] != first["context_hash"]
    assert wait_for(
        lambda: not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == "zombie", 10
    )


def test_token_is_required(manager):
    context, _ = manager.start_notebook_on_demand("alice", {})
    assert status_code(context, None) == 403
    assert status_code(context, "wrong-token") == 403
    assert status_code(context, context["token"]) == 200


def test_token_never_in_logs_or_command_line(manager):
    context, _ = manager.start_notebook_on_demand("alice", {})
    status_code(context, None)
    folder = manager.get_work_folder("alice")
    for log in folder.glob("*.log"):
        assert context["token"] not in log.read_text()
    assert context["token"] not in " ".join(psutil.Process(context["pid"]).cmdline())
    assert oct(manager.get_context_file("alice").stat().st_mode & 0o777) == "0o600"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"


def test_kill_minus_nine_is_recovered(manager):
    context, _ = manager.start_notebook_on_demand("alice", {})
    os.kill(context["pid"], signal.SIGKILL)
    assert wait_for(lambda: not manager.is_running("alice"), 10)
    again, created = manager.start_notebook_on_demand("alice", {})
    assert created
    assert again["pid"] != context["pid"]
    assert status_code(again, again["token"]) == 200


def test_stale_pid_file_and_damaged_context(manager):
    folder = manager.get_work_folder("alice")
    folder.mkdir(parents=True)
    # A pid that belongs to an unrelated live process: this test's own.
    manager.get_pid_file("alice").write_text("{}\n".format(os.getpid()))
    manager.get_context_file("alice").write_text('{"pid": 1, "http_p')
    assert not manager.is_running("alice")
    assert manager.get_context("alice") is None
    context, created = manager.start_notebook_on_demand("alice", {})
    assert created
    assert status_code(context, context["token"]) == 200


def test_concurrent_launches_of_one_user_give_one_process(manager):
    script = (
        "import json, sys\n"
        "from pyramid_notebook.notebookmanager import NotebookManager\n"
        "m = NotebookManager(sys.argv[1], min_port=42000, port_range=500)\n"
        "context, created = m.start_notebook_on_demand('alice', {'startup': 'x = 1'})\n"
        "print(json.dumps([context['pid'], created]))\n"
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
            if str(manager.get_pid_file("alice")) in " ".join(process.info["cmdline"] or ())
            and process.status() != psutil.STATUS_ZOMBIE
        ]

    assert wait_for(lambda: daemon_pids() == [results[0][0]], 10), daemon_pids()


def test_five_users_at_once_get_five_ports(manager):
    from concurrent.futures import ThreadPoolExecutor

    names = ["user{}".format(number) for number in range(5)]
    with ThreadPoolExecutor(5) as pool:
        contexts = list(pool.map(lambda name: manager.start_notebook_on_demand(name, {})[0], names))
    assert len({context["http_port"] for context in contexts}) == 5
    assert all(status_code(context, context["token"]) == 200 for context in contexts)


def test_port_in_use_is_skipped(notebook_folder):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        manager = NotebookManager(notebook_folder, min_port=taken, port_range=50)
        try:
            context, _ = manager.start_notebook_on_demand("alice", {})
            assert context["http_port"] != taken
            assert status_code(context, context["token"]) == 200
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
    manager = NotebookManager(notebook_folder, min_port=42000, port_range=500, kill_timeout=3)
    try:
        context, _ = manager.start_notebook_on_demand("alice", {})
        assert wait_for(lambda: not manager.is_running("alice"), 20)
        assert not manager.is_running("alice")
        assert context["kill_timeout"] == 3
    finally:
        manager.stop_notebook("alice")


def test_stop_takes_the_kernels_along(manager):
    context, _ = manager.start_notebook_on_demand("alice", {})
    headers = {"Authorization": "token " + context["token"]}
    base = "http://127.0.0.1:{}/notebook/".format(context["http_port"])
    for _ in range(2):
        requests.post(base + "api/kernels", json={"name": "python3"}, headers=headers, timeout=30).raise_for_status()
    kernels = psutil.Process(context["pid"]).children(recursive=True)
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
    assert status_code(context, context["token"]) == 200


def test_context_hash_is_stable_across_processes():
    context = {"startup": "import os", "greeting": "Hello jörg", "extra": [1, 2]}
    other_process = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from pyramid_notebook.server.context import context_hash;"
            "print(context_hash(json.loads(sys.argv[1])))",
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
    notebook = json.loads((manager.get_work_folder("alice") / context["notebook_name"]).read_text())
    sources = ["".join(cell["source"]) for cell in notebook["cells"]]
    assert "Use **answer**" in sources
    assert notebook["cells"][-1]["cell_type"] == "code"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


def test_default_notebook_keeps_the_users_edits(manager):
    context, _ = manager.start_notebook_on_demand("alice", {"greeting": "Hi"})
    path = manager.get_work_folder("alice") / context["notebook_name"]
    path.write_text(path.read_text().replace("Hi", "My own notes"))
    manager.stop_notebook("alice")
    manager.start_notebook_on_demand("alice", {"greeting": "Hi"})
    assert "My own notes" in path.read_text()


def test_start_failure_names_the_log(notebook_folder):
    manager = NotebookManager(notebook_folder, min_port=42000, port_range=500, python="/bin/false")
    with pytest.raises(NotebookStartError) as failure:
        manager.start_notebook("alice", {})
    message = str(failure.value)
    assert "notebook.stderr.log" in message
    assert "launcher failed with exit code 1" in message
    assert manager.get_context("alice")["token"] not in message
