"""The notebook daemon's command line, run as a real subprocess."""

import ctypes
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

import pyramid_notebook.server.notebook_daemon as notebook_daemon
from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.protocol.context import STOPPED_HARD_LIMIT, STOPPED_IDLE, NotebookContext
from pyramid_notebook.protocol.processes import daemon_pid, find_daemons, is_gone
from pyramid_notebook.server.jupyter import JUPYTER_DATA_DIR_NAME
from pyramid_notebook.waiting import wait_for
from tests.support.daemon_cli import daemon
from tests.support.kernel_client import connect, execute, start_kernel
from tests.support.notebooks import stop_all
from tests.support.ws_client import KernelSocket

#: Notebook ports of this module's own (the manager takes the first 80), apart from other test modules.
MIN_PORT = 24200


@pytest.fixture
def manager(notebook_folder):
    notebook_manager = NotebookManager(notebook_folder, min_port=MIN_PORT, port_range=80, kill_timeout=600)
    yield notebook_manager
    stop_all(notebook_manager)


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
    daemon("start", pid_file, tmp_path, MIN_PORT + 99, 60)
    assert wait_for(lambda: "No usable context file" in (tmp_path / "notebook.stderr.log").read_text(), 10)
    assert not pid_file.exists()


@pytest.mark.parametrize("script", [False, True], ids=["module", "script"])
def test_start_status_stop_from_the_command_line(tmp_path, script):
    pid_file = tmp_path / "notebook.pid"
    token = "a-secret-token-for-this-test"
    NotebookContext(token=token, context_hash="abc").write(tmp_path / "context.json")
    port = MIN_PORT + 90 + script
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
        assert (tmp_path / "notebooks" / "default-abc.ipynb").exists()
    finally:
        stop = daemon("stop", pid_file, script=script)
    assert stop.returncode == 0
    assert not pid_file.exists()
    assert daemon("status", pid_file).returncode == 1


#: pidfd_getfd(2), Linux 5.6+: the same number on x86-64 and arm64.
PIDFD_GETFD = 438


def tcp_nodelay_of(pid: int, fd: int) -> bool:
    """Whether another process's socket ``fd`` has TCP_NODELAY set (read through a duplicate, pidfd_getfd)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        duplicate = libc.syscall(PIDFD_GETFD, pidfd, fd, 0)
        if duplicate < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd of fd {} in process {}".format(fd, pid))
    finally:
        os.close(pidfd)
    with socket.socket(fileno=duplicate) as duplicated:
        return bool(duplicated.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def test_kernel_websockets_send_without_waiting_for_acks(manager):
    """Stock Jupyter Server leaves Nagle's algorithm on: an execute round trip then takes about 45 ms, not 4.

    The figures are ``benchmarks/ws_roundtrip.py``'s; this checks the cause:
    the server's end of the kernel websocket has TCP_NODELAY.
    """
    context, _ = manager.start_notebook_on_demand("alice", {})
    base = "127.0.0.1:{}/notebook/".format(context.http_port)
    kernel_id = start_kernel("http://" + base, context.token)
    ws = connect("ws://" + base, kernel_id, context.token)
    try:
        assert execute(ws, "1")["result"] == "1"
        client_port = ws.sock.getsockname()[1]
        server = psutil.Process(context.pid)
        (server_end,) = [
            connection
            for connection in server.net_connections("tcp")
            if connection.raddr and connection.raddr.port == client_port
        ]
        assert tcp_nodelay_of(server.pid, server_end.fd)
    finally:
        ws.close()


#: Starts the daemon from a process whose parent has exited, so that it runs
#: with PID 1 (or a subreaper) as its parent, and says which parent it got.
ORPHAN_LAUNCHER = """\
import os, sys
first_parent = os.getpid()
if os.fork():
    os._exit(0)
while os.getppid() == first_parent:
    os.sched_yield()
report, command = sys.argv[1], sys.argv[2:]
with open(report, "w") as stream:
    stream.write("{} {}".format(os.getpid(), os.getppid()))
os.execv(command[0], command)
"""


def test_daemon_detaches_the_same_when_its_launcher_is_a_child_of_pid_1(tmp_path):
    """daemonocle would not detach with PID 1 as parent: two processes, and the server's log in the launch log."""
    pid_file = tmp_path / "notebook.pid"
    token = "a-secret-token-for-this-test"
    NotebookContext(token=token, context_hash="abc").write(tmp_path / "context.json")
    report = tmp_path / "launcher.txt"
    launch_log = tmp_path / "launch.log"
    command = [sys.executable, "-m", notebook_daemon.__name__, "start", pid_file, tmp_path, MIN_PORT + 95, 120]
    with open(launch_log, "wb") as output:
        subprocess.run(
            [sys.executable, "-c", ORPHAN_LAUNCHER, report, *map(str, command)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=True,
        )
    try:
        assert wait_for(lambda: report.exists() and report.read_text(), 10)
        launcher_pid, parent_pid = map(int, report.read_text().split())
        if parent_pid != 1:
            pytest.skip("the launcher was adopted by a subreaper (pid {}), not by PID 1".format(parent_pid))
        assert wait_for(lambda: daemon_pid(pid_file), 30), launch_log.read_text()
        launcher = psutil.Process(launcher_pid) if psutil.pid_exists(launcher_pid) else None
        assert launcher is None or wait_for(lambda: is_gone(launcher), 10), "the launcher did not exit"
        servers = find_daemons(pid_file)
        assert [server.pid for server in servers] == [daemon_pid(pid_file)]
        assert wait_for(lambda: "is running at" in (tmp_path / "notebook.stderr.log").read_text(), 30)
        assert "ServerApp" not in launch_log.read_text()
    finally:
        daemon("stop", pid_file)
    assert not find_daemons(pid_file)


def stopped_reason(manager: NotebookManager, name: str) -> str:
    """Why the user's notebook stopped, as recorded in its context; empty while it runs."""
    context = manager.get_context(name)
    return context.stopped_reason if context is not None else ""


@pytest.mark.parametrize(
    "limits, reason",
    [
        ({"kill_timeout": 600, "idle_timeout": 2}, STOPPED_IDLE),
        ({"kill_timeout": 3, "idle_timeout": 600}, STOPPED_HARD_LIMIT),
    ],
    ids=["idle", "hard-limit"],
)
def test_a_notebook_that_stops_by_itself_records_why(notebook_folder, limits, reason):
    manager = NotebookManager(notebook_folder, min_port=MIN_PORT, port_range=80, **limits)
    try:
        context, _ = manager.start_notebook_on_demand("alice", {})
        assert wait_for(lambda: stopped_reason(manager, "alice"), 30)
        stopped = manager.get_context("alice")
        assert stopped.stopped_reason == reason
        assert context.started < stopped.stopped_at <= time.time()
        assert stopped.token == context.token, "the manager's keys were kept"
    finally:
        manager.stop_notebook("alice")


def big_notebook(text: str) -> dict:
    output = {"output_type": "stream", "name": "stdout", "text": text}
    cell = {"cell_type": "code", "execution_count": 1, "id": "big", "metadata": {}, "source": "x", "outputs": [output]}
    content = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return {"type": "notebook", "format": "json", "content": content}


def test_a_stop_during_a_save_answers_it_and_leaves_no_backup(manager):
    """The stop lands while Jupyter writes the file (its backup copy exists): the save finishes and is answered."""
    context, _ = manager.start_notebook_on_demand("alice", {})
    url = "http://127.0.0.1:{}/notebook/api/contents/big.ipynb".format(context.http_port)
    headers = {"Authorization": "token " + context.token}
    first, second = "a" * 30_000_000, "b" * 30_000_000
    assert requests.put(url, json=big_notebook(first), headers=headers, timeout=60).status_code == 201
    root = manager.get_work_folder("alice") / "notebooks"
    backup = root / ".~big.ipynb"
    server = psutil.Process(context.pid)
    answer = {}

    def save():
        try:
            answer["status"] = requests.put(url, json=big_notebook(second), headers=headers, timeout=60).status_code
        except requests.RequestException as error:
            answer["error"] = error

    saving = threading.Thread(target=save)
    saving.start()
    try:
        assert wait_for(lambda: backup.exists() or not saving.is_alive(), 60, interval=0.002)
        assert saving.is_alive(), "the save ended before a stop could land in it"
        server.terminate()
    finally:
        saving.join(60)
    assert wait_for(lambda: is_gone(server), 15)
    saved = json.loads((root / "big.ipynb").read_text())["cells"][0]["outputs"][0]["text"]
    saved = "".join(saved)
    assert answer == {"status": 200}, "the save was cut off ({}); on disk: the {} version".format(
        answer, "new" if saved == second else "old"
    )
    assert saved == second
    assert not backup.exists()


def landing_session(context: NotebookContext) -> dict:
    response = requests.get(
        "http://127.0.0.1:{}{}api/sessions".format(context.http_port, context.notebook_path),
        headers={"Authorization": "token " + context.token},
        timeout=10,
    )
    (session,) = response.json()
    assert session["path"] == context.notebook_name
    return session


def kernel_pids(manager: NotebookManager, name: str) -> set[int]:
    daemon = psutil.Process(manager.get_pid(name))
    return {child.pid for child in daemon.children(recursive=True) if "ipykernel_launcher" in " ".join(child.cmdline())}


def connection_files(manager: NotebookManager, name: str) -> list[Path]:
    return sorted((manager.work_folder(name).path / JUPYTER_DATA_DIR_NAME / "runtime").glob("kernel-*.json"))


def run_in_kernel(context: NotebookContext, kernel_id: str, code: str) -> dict:
    ws = connect("ws://127.0.0.1:{}{}".format(context.http_port, context.notebook_path), kernel_id, context.token)
    try:
        return execute(ws, code)
    finally:
        ws.close()


def test_the_landing_kernel_starts_before_the_server_and_is_the_session_s_kernel(manager):
    """Launched first thing, the kernel runs the site's script while the server starts; the server adopts it."""
    context = manager.start_notebook("alice", NotebookContext(startup="import os\nstartup_pid = os.getpid()"))
    log = manager.work_folder("alice").stderr_log.read_text()
    launched = log.index("Launched the landing kernel ahead of the server (pid ")
    assert launched < log.index("Jupyter Server"), "launched before the server started"
    (pid,) = kernel_pids(manager, "alice")
    assert "Adopted the landing kernel launched ahead (pid {})".format(pid) in log
    (connection_file,) = connection_files(manager, "alice")
    assert str(connection_file) in psutil.Process(pid).cmdline(), "one connection file: the kernel's own"
    session = landing_session(context)
    outcome = run_in_kernel(context, session["kernel"]["id"], "print(startup_pid, os.getpid())")
    assert outcome["stdout"].split() == [str(pid), str(pid)], "the site's script ran in the session's kernel"
    manager.stop_notebook("alice")
    assert connection_files(manager, "alice") == [], "removed with the kernel"


def test_a_server_configured_otherwise_ends_the_kernel_ahead_and_launches_its_own():
    """An operator's notebook_args can ask for kernels the kernel launched ahead is not: it is not adopted.

    Here kernels on Unix sockets, whose paths must fit in 107 bytes: hence a
    short folder of its own rather than pytest's deep temporary one.
    """
    folder = Path(tempfile.mkdtemp(prefix="pn-"))
    manager = NotebookManager(
        folder, min_port=MIN_PORT + 40, port_range=10, kill_timeout=600, notebook_args=["--KernelManager.transport=ipc"]
    )
    try:
        context = manager.start_notebook("alice", NotebookContext(startup="marker = 'startup ran'"))
        log = manager.work_folder("alice").stderr_log.read_text()
        ahead = re.search(r"Launched the landing kernel ahead of the server \(pid (\d+)\)", log)
        assert ahead and "the server launches it with another transport or address (ipc on " in log
        assert "Adopted" not in log
        assert wait_for(lambda: not psutil.pid_exists(int(ahead.group(1))), 10), "the kernel ahead was ended"
        (own,) = kernel_pids(manager, "alice")
        assert own != int(ahead.group(1))
        kernel_id = landing_session(context)["kernel"]["id"]
        assert run_in_kernel(context, kernel_id, "print(marker)")["stdout"].strip() == "startup ran"
    finally:
        stop_all(manager)
        shutil.rmtree(folder)


def test_a_context_change_gets_the_same_head_start(manager):
    """A launch from another page restarts the notebook: its new landing kernel is launched ahead too."""
    first, _ = manager.start_notebook_on_demand("alice", {"startup": "page = 1"})
    second, created = manager.start_notebook_on_demand("alice", {"startup": "page = 2"})
    assert created and second.pid != first.pid
    assert wait_for(lambda: manager.get_context("alice").ready, 60), "the new notebook's landing kernel"
    (pid,) = kernel_pids(manager, "alice")
    assert "Adopted the landing kernel launched ahead (pid {})".format(pid) in manager.work_folder(
        "alice"
    ).stderr_log.read_text()
    kernel_id = landing_session(manager.get_context("alice"))["kernel"]["id"]
    assert run_in_kernel(manager.get_context("alice"), kernel_id, "print(page)")["stdout"].strip() == "2"


def test_a_restart_of_the_adopted_kernel_launches_a_new_one(manager):
    context = manager.start_notebook("alice", NotebookContext(startup="marker = 'startup ran'"))
    (adopted,) = kernel_pids(manager, "alice")
    adopted_process = psutil.Process(adopted)
    kernel_id = landing_session(context)["kernel"]["id"]
    response = requests.post(
        "http://127.0.0.1:{}{}api/kernels/{}/restart".format(context.http_port, context.notebook_path, kernel_id),
        headers={"Authorization": "token " + context.token},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert wait_for(lambda: is_gone(adopted_process), 10), "the adopted process ended"
    (restarted,) = kernel_pids(manager, "alice")
    assert restarted != adopted
    (connection_file,) = connection_files(manager, "alice")
    assert str(connection_file) in psutil.Process(restarted).cmdline(), "the restart reuses it"
    assert run_in_kernel(context, kernel_id, "print(marker)")["stdout"].strip() == "startup ran"


def test_kernel_listings_answer_while_kernels_start(manager):
    """Stock jupyter_server answered 500 to 3-5 of these listings: a kernel started but not yet marked."""
    context = manager.start_notebook("alice", NotebookContext())
    base = "http://127.0.0.1:{}{}".format(context.http_port, context.notebook_path)
    headers = {"Authorization": "token " + context.token}
    starting = threading.Event()
    starting.set()
    answers = []

    def list_kernels():
        with requests.Session() as session:
            while starting.is_set():
                for path in ("api/kernels", "api/status"):
                    response = session.get(base + path, headers=headers, timeout=30)
                    answers.append((path, response.status_code, response.text[:200]))

    listers = [threading.Thread(target=list_kernels) for _ in range(3)]
    for lister in listers:
        lister.start()
    try:
        for _ in range(8):
            response = requests.post(base + "api/kernels", headers=headers, json={"name": "python3"}, timeout=60)
            assert response.status_code == 201, response.text
    finally:
        starting.clear()
        for lister in listers:
            lister.join(60)
    assert answers and all(status == 200 for _path, status, _text in answers), [
        answer for answer in answers if answer[1] != 200
    ]


def test_the_adopted_landing_kernel_can_be_interrupted(manager):
    """The server signals the kernel it adopted as one it launched: the process group it runs in."""
    context = manager.start_notebook("alice", NotebookContext())
    kernel_id = landing_session(context)["kernel"]["id"]
    ws = connect("ws://127.0.0.1:{}{}".format(context.http_port, context.notebook_path), kernel_id, context.token)
    try:
        kernel = KernelSocket(ws, None)
        msg_id = kernel.send_execute("import time\ntime.sleep(60)")

        def sleeping():
            message = kernel.receive()
            return message["msg_type"] == "execute_input" and message["parent_header"].get("msg_id") == msg_id

        assert wait_for(sleeping, 30, interval=0), "the cell did not start"
        response = requests.post(
            "http://127.0.0.1:{}{}api/kernels/{}/interrupt".format(context.http_port, context.notebook_path, kernel_id),
            headers={"Authorization": "token " + context.token},
            timeout=30,
        )
        assert response.status_code == 204, response.text
        ws.settimeout(30)
        errors = []
        while True:
            message = kernel.receive()
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "error":
                errors.append(message["content"]["ename"])
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                break
        assert errors == ["KeyboardInterrupt"]
        # Sent before the kernel is idle again, a request would be aborted (stop_on_error).
        assert kernel.execute("6 * 7")["result"] == "42", "the kernel lives on"
    finally:
        ws.close()
