"""Notebooks start with a clean signal state, whoever launches them.

uWSGI's worker threads other than the first run with most signals blocked,
and a child process inherits the blocked mask of the thread that spawned it,
across ``exec``.  A notebook launched from such a thread could not be
interrupted, and ignored SIGTERM until the stop's grace period ran out.
These tests launch the notebook through the demo under the shipped
uwsgi.ini, with other requests in flight so that the launch lands on a
thread other than the first, then interrupt a running cell and stop the
notebook through the site.
"""

import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests

from pyramid_notebook.manager import RUNNING, NotebookManager
from pyramid_notebook.protocol.processes import is_gone
from pyramid_notebook.waiting import wait_for
from tests.support.login import cookie_header, log_in_session
from tests.support.notebooks import stop_all
from tests.support.uwsgi_site import running_uwsgi
from tests.support.ws_client import V1_PROTOCOL, KernelSocket, channels_path, open_websocket

#: The signals the C library keeps for its threads (32 and 33 on Linux): no program can change what they
#: do, so one ignored by whoever started the test run stays ignored everywhere below it.
LIBC_RESERVED = set(range(1, signal.NSIG)) - {int(number) for number in signal.valid_signals()}

#: Python ignores SIGPIPE and SIGXFSZ itself at start; every other signal must have its default action or a handler.
PYTHON_IGNORES = {signal.SIGPIPE, signal.SIGXFSZ} | LIBC_RESERVED

#: An idle ipykernel ignores SIGINT by its own choice, and catches it while a cell runs.
KERNEL_IGNORES = PYTHON_IGNORES | {signal.SIGINT}

#: Bounds the issue states as behaviour.
INTERRUPT_SECONDS = 2
STOP_SECONDS = 3

#: Requests sent beside each launch, so that a launch lands on a worker thread other than the first.
CONCURRENT_REQUESTS = 24
LAUNCH_ATTEMPTS = 6


def signal_masks(pid: int) -> dict[str, int]:
    """The SigBlk, SigIgn and SigCgt masks of ``pid`` from /proc."""
    masks = {}
    for line in Path("/proc/{}/status".format(pid)).read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("SigBlk", "SigIgn", "SigCgt"):
            masks[name] = int(value.strip(), 16)
    return masks


def signals_in(mask: int) -> set[int]:
    return {number for number in range(1, 65) if mask & (1 << (number - 1))}


def assert_clean_signal_state(process: psutil.Process, may_ignore: set[int] = PYTHON_IGNORES) -> None:
    masks = signal_masks(process.pid)
    assert masks["SigBlk"] == 0, "pid {} ({}) blocks signals {}: SigBlk {:016x}".format(
        process.pid, " ".join(process.cmdline()[:4]), sorted(signals_in(masks["SigBlk"])), masks["SigBlk"]
    )
    ignored = signals_in(masks["SigIgn"]) - may_ignore
    assert not ignored, "pid {} ignores signals {}".format(process.pid, sorted(ignored))


@pytest.fixture
def manager(notebook_folder):
    """A manager on ports of this module's own, apart from other test modules running at the same time."""
    notebook_manager = NotebookManager(notebook_folder, min_port=24300, port_range=100, kill_timeout=600)
    yield notebook_manager
    stop_all(notebook_manager)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_uwsgi(tmp_path_factory.mktemp("uwsgi-signals")) as running:
        yield running


def launching_thread(site, since: int) -> str | None:
    """The uWSGI thread that logged the latest launch after log offset ``since``, e.g. ``uWSGIWorker2Core5``."""
    launches = re.findall(
        r"\[pyramid_notebook\.views\]\[([^\]]+)\] Notebook for user launched", site.log_text()[since:]
    )
    return launches[-1] if launches else None


def launch_from_a_busy_worker(site, session: requests.Session) -> str:
    """Launch ``user``'s notebook beside other requests until a thread other than a worker's first launches it.

    Returns the name of the launching thread.  Each attempt opens another
    shell, whose changed context restarts the notebook.
    """
    cookies = cookie_header(session)

    def busy_request(_number):
        requests.get(site.base + "/", headers={"Cookie": cookies}, timeout=30)

    for attempt in range(LAUNCH_ATTEMPTS):
        offset = len(site.log_text())
        with ThreadPoolExecutor(CONCURRENT_REQUESTS + 1) as pool:
            busy = [pool.submit(busy_request, number) for number in range(CONCURRENT_REQUESTS)]
            launch = pool.submit(
                requests.get,
                site.base + ("/shell1", "/shell2")[attempt % 2],
                headers={"Cookie": cookies},
                allow_redirects=False,
                timeout=60,
            )
            for future in busy:
                future.result()
            assert launch.result().status_code == 302, launch.result().text[:500]
        thread = launching_thread(site, offset)
        assert thread, "no launch logged:\n" + site.log_text()[offset:][-3000:]
        if not thread.endswith("Core0"):
            return thread
    raise AssertionError("every launch landed on a worker's first thread")


def kernel_processes(server_pid: int) -> list[psutil.Process]:
    return [
        process
        for process in psutil.Process(server_pid).children(recursive=True)
        if "ipykernel" in " ".join(process.cmdline())
    ]


def test_notebook_launched_from_a_uwsgi_worker_thread_can_be_interrupted_and_stopped(site):
    session = log_in_session(site.base, "user")
    thread = launch_from_a_busy_worker(site, session)
    manager = NotebookManager(site.notebook_folder)
    assert wait_for(lambda: manager.get_state("user")[0] == RUNNING, 60), manager.get_state("user")
    context = manager.get_context("user")
    origin = {"Origin": site.base, "Cookie": cookie_header(session)}
    api = site.base + "/notebook/api/kernels"

    response = requests.post(api, json={"name": "python3"}, headers=origin, timeout=60)
    assert response.status_code == 201, response.text[:500]
    kernel_id = response.json()["id"]
    server = psutil.Process(context.pid)
    assert wait_for(lambda: kernel_processes(server.pid), 30), "no kernel process"
    assert_clean_signal_state(server)
    for kernel in kernel_processes(server.pid):
        assert_clean_signal_state(kernel, KERNEL_IGNORES)

    ws = open_websocket(
        site.base.replace("http://", "ws://", 1) + channels_path(kernel_id),
        {"Cookie": cookie_header(session)},
        [V1_PROTOCOL],
        origin=site.base,
    )
    try:
        kernel = KernelSocket(ws, V1_PROTOCOL)
        assert kernel.execute("1 + 1")["result"] == "2"
        msg_id = kernel.send_execute("import time\ntime.sleep(60)")

        def sleeping():
            message = kernel.receive()
            return message["msg_type"] == "execute_input" and message["parent_header"].get("msg_id") == msg_id

        assert wait_for(sleeping, 30, interval=0), "the cell did not start"
        interrupted_at = time.monotonic()
        response = requests.post("{}/{}/interrupt".format(api, kernel_id), headers=origin, timeout=30)
        assert response.status_code == 204, response.text[:500]
        ws.settimeout(INTERRUPT_SECONDS)
        while True:
            message = kernel.receive()
            if message["msg_type"] == "error" and message["parent_header"].get("msg_id") == msg_id:
                break
        elapsed = time.monotonic() - interrupted_at
        assert message["content"]["ename"] == "KeyboardInterrupt"
        assert elapsed < INTERRUPT_SECONDS, "interrupt took {:.1f} s (launched from {})".format(elapsed, thread)
    finally:
        ws.close()

    processes = [server, *server.children(recursive=True)]
    started = time.monotonic()
    manager.stop_notebook("user")
    assert wait_for(lambda: all(is_gone(process) for process in processes), STOP_SECONDS), "still running"
    elapsed = time.monotonic() - started
    assert elapsed < STOP_SECONDS, "stopping took {:.1f} s".format(elapsed)


def test_daemon_started_from_a_thread_with_blocked_signals_blocks_none(manager):
    """The same inheritance without uWSGI: a web server thread that blocks signals launches the notebook.

    The web server also ignores a few signals (dispositions are inherited across exec as well).
    """
    launched = {}

    def launch_with_signals_blocked():
        signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP})
        try:
            launched["context"] = manager.start_notebook("alice", {})
        except Exception as error:  # handed to the test's own thread below
            launched["error"] = error

    ignored = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2)
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in ignored}
    try:
        thread = threading.Thread(target=launch_with_signals_blocked)
        thread.start()
        thread.join(120)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    assert "error" not in launched, launched.get("error")
    assert_clean_signal_state(psutil.Process(launched["context"].pid))
