"""Websockets through the site: the demo under a real uWSGI (and nginx), with the shipped configuration.

One uWSGI serves the whole module (``tests/support/uwsgi_site.py`` starts it from
the shipped ``uwsgi.ini`` on a free port); ``user`` has a notebook started
with Jupyter's output rate limit raised so that 20 MB outputs get through.
The browser is played by websocket-client with the session cookie of a
logged-in user.
"""
import base64
import hashlib
import logging
import os
import re
import statistics
import time

import psutil
import pytest
import requests
import websocket

from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.protocol.workfolder import WorkFolder
from pyramid_notebook.waiting import wait_for
from tests.support.chromium import KERNEL_IDLE, OUTPUT, element_present, page_text, type_into_last_cell
from tests.support.login import cookie_header, csrf_token, log_in_browser, log_in_session
from tests.support.notebooks import kernel_is_connected, notebook_api, token_header
from tests.support.servers import peak_rss, reset_peak_rss
from tests.support.uwsgi_site import NGINX, running_nginx, running_uwsgi, start_notebook
from tests.support.ws_client import (
    V1_PROTOCOL,
    KernelSocket,
    channels_path,
    chosen_protocol,
    delete_kernel,
    open_websocket,
    start_kernel,
)

logger = logging.getLogger(__name__)

MB = 1000 * 1000
PROTOCOLS = [pytest.param(None, id="legacy-json"), pytest.param(V1_PROTOCOL, id="v1-binary")]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_uwsgi(tmp_path_factory.mktemp("uwsgi-demo")) as running:
        yield running


@pytest.fixture(scope="module")
def notebook(site):
    """``user``'s notebook context (port, token); stopped with the site."""
    return start_notebook(site, "user")


@pytest.fixture(scope="module")
def user(site, notebook):
    return log_in_session(site.base, "user")


@pytest.fixture(scope="module")
def kernel(notebook):
    kernel_id = start_kernel(notebook)
    yield kernel_id
    delete_kernel(notebook, kernel_id)


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://", 1) + path


def browser_socket(base: str, session: requests.Session, path: str, protocols=None, origin=None):
    """A websocket opened the way the notebook page opens it: same origin, with the session cookie."""
    return open_websocket(
        ws_url(base, path), {"Cookie": cookie_header(session)}, protocols, origin=origin or base
    )


def kernel_socket(base, session, kernel_id, protocol) -> KernelSocket:
    ws = browser_socket(base, session, channels_path(kernel_id), [protocol] if protocol else None)
    assert chosen_protocol(ws) == protocol
    return KernelSocket(ws, protocol)


# Kernel protocols


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_code_runs_over_the_proxied_websocket(site, user, kernel, protocol):
    kernel_ws = kernel_socket(site.base, user, kernel, protocol)
    try:
        outcome = kernel_ws.execute("print('hello'); 6 * 7")
        assert outcome == {
            "stdout": "hello\n",
            "stderr": "",
            "result": "42",
            "display": [],
            "error": None,
            "status": "ok",
        }
        # Frames kept their type: JSON text for legacy, binary for v1.
        assert kernel_ws.opcodes == {websocket.ABNF.OPCODE_BINARY if protocol else websocket.ABNF.OPCODE_TEXT}
    finally:
        kernel_ws.ws.close()


def test_a_subprotocol_the_notebook_does_not_choose_is_not_announced(site, user, kernel):
    """uWSGI's own handshake would echo the browser's offer; the proxy answers with the notebook's choice."""
    ws = browser_socket(site.base, user, channels_path(kernel), ["x-unknown.example"])
    try:
        assert chosen_protocol(ws) is None
        assert KernelSocket(ws, None).execute("1 + 1")["result"] == "2"
    finally:
        ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_2_mb_input_and_20_mb_output_pass_intact(site, user, kernel, protocol):
    big_input = base64.b64encode(os.urandom(3 * MB // 2)).decode()
    assert len(big_input) == 2 * MB
    code = (
        "import hashlib\n"
        "from IPython.display import display\n"
        "big_input = {!r}\n"
        "print(len(big_input), hashlib.sha256(big_input.encode()).hexdigest())\n"
        "display({{'text/plain': ''.join('%09d\\n' % i for i in range(2_000_000))}}, raw=True)\n"
    ).format(big_input)
    expected_output = "".join("%09d\n" % i for i in range(2_000_000))
    assert len(expected_output) == 20 * MB

    kernel_ws = kernel_socket(site.base, user, kernel, protocol)
    try:
        outcome = kernel_ws.execute(code)
    finally:
        kernel_ws.ws.close()
    assert outcome["error"] is None and outcome["status"] == "ok"
    assert outcome["stdout"] == "{} {}\n".format(2 * MB, hashlib.sha256(big_input.encode()).hexdigest())
    assert len(outcome["display"]) == 1
    assert outcome["display"][0] == expected_output
    assert max(kernel_ws.frame_sizes) > 20 * MB, "the output should arrive as one frame"


# Other websockets of a notebook page


def test_a_200_mb_download_streams_through_a_worker_intact(site, user, notebook):
    """The proxy hands uWSGI 1 MiB pieces as they come: the file arrives whole, and no worker holds it."""
    download = WorkFolder(site.notebook_folder / "user").notebook_root / "download.bin"
    with open(download, "wb") as stream:
        for _ in range(200):
            stream.write(os.urandom(MB))
    expected = hashlib.sha256(download.read_bytes()).hexdigest()
    before = {worker.pid: reset_peak_rss(worker.pid) for worker in site.workers()}
    digest, size = hashlib.sha256(), 0
    with user.get(site.base + "/notebook/files/download.bin", stream=True, timeout=60) as response:
        response.raise_for_status()
        for chunk in response.iter_content(MB):
            digest.update(chunk)
            size += len(chunk)
    assert (size, digest.hexdigest()) == (200 * MB, expected)
    growth = max(peak_rss(pid) - peak for pid, peak in before.items())
    assert growth < 50 * MB, "a worker grew by {:.0f} MB".format(growth / MB)


def test_events_websocket_carries_the_notebooks_events(site, user, notebook):
    ws = browser_socket(site.base, user, "/notebook/api/events/subscribe")
    try:
        response = requests.put(
            notebook_api(notebook) + "api/contents/event-test.txt",
            json={"type": "file", "format": "text", "content": "hello"},
            headers=token_header(notebook),
            timeout=30,
        )
        response.raise_for_status()
        ws.settimeout(30)
        while True:
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT
            if b"event-test.txt" in data:
                break
    finally:
        ws.close()


def test_terminal_websocket(site, user, notebook):
    response = requests.post(notebook_api(notebook) + "api/terminals", headers=token_header(notebook), timeout=30)
    response.raise_for_status()
    name = response.json()["name"]
    try:
        ws = browser_socket(site.base, user, "/notebook/terminals/websocket/" + name)
        try:
            ws.send('["stdin", "echo $((6 * 7))-from-the-terminal\\r"]')
            ws.settimeout(30)
            output = ""
            while "42-from-the-terminal" not in output:
                opcode, data = ws.recv_data()
                assert opcode == websocket.ABNF.OPCODE_TEXT
                output += data.decode()
        finally:
            ws.close()
    finally:
        requests.delete(notebook_api(notebook) + "api/terminals/" + name, headers=token_header(notebook), timeout=30)


# Refusals and errors


def test_cross_origin_websocket_gets_403(site, user, kernel):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        browser_socket(site.base, user, channels_path(kernel), [V1_PROTOCOL], origin="http://evil.example")
    assert refused.value.status_code == 403


def handshake(origin: str) -> dict:
    """The headers of a browser's websocket handshake from a page at ``origin``, sent as a plain HTTP request."""
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Origin": origin,
    }


def test_websocket_without_login_gets_no_further(site, kernel):
    response = requests.get(
        site.base + channels_path(kernel), headers=handshake(site.base), allow_redirects=False, timeout=10
    )
    # The demo sends visitors who are not logged in to its login page.
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_unknown_kernel_gets_the_notebooks_404(site, user):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        browser_socket(site.base, user, channels_path("00000000-0000-0000-0000-000000000000"), [V1_PROTOCOL])
    assert refused.value.status_code == 404


# Pings and endings


def next_control_frame(ws, opcode: int) -> websocket.ABNF:
    """The next frame with ``opcode``, skipping the kernel messages that arrive meanwhile."""
    ws.settimeout(30)
    while True:
        frame = ws.recv_frame()
        if frame.opcode == opcode:
            return frame


def test_ping_passes_and_the_close_code_goes_through_and_back(site, user, kernel):
    ws = browser_socket(site.base, user, channels_path(kernel), [V1_PROTOCOL])
    try:
        ws.ping(b"are you there")
        assert next_control_frame(ws, websocket.ABNF.OPCODE_PONG).data == b"are you there"
        ws.send_close(4001, b"tab closed")
        # Tornado echoes the code it received: it went to the notebook and came back.
        close = next_control_frame(ws, websocket.ABNF.OPCODE_CLOSE)
        assert int.from_bytes(close.data[:2], "big") == 4001
        ws.settimeout(10)
        assert ws.sock.recv(1) == b"", "the proxy should close the connection after the closing handshake"
    finally:
        ws.shutdown()


def test_browser_runs_a_cell_through_uwsgi(site, browser):
    """A real notebook page: its websockets go through uWSGI, since the site has the proxy configured."""
    manager = NotebookManager(site.notebook_folder)
    try:
        log_in_browser(browser, site.base, "user2")
        browser.visit(site.base + "/shell2")

        def kernel_connected():
            if "did not start" in browser.title:
                return "failed"
            return element_present(browser, KERNEL_IDLE) and kernel_is_connected(manager, "user2")

        connected = wait_for(kernel_connected, 90)
        assert connected != "failed", "the notebook did not start under uWSGI: " + browser.find_by_tag("body").text
        assert connected, "the notebook's kernel did not connect; page at " + browser.url

        type_into_last_cell(browser, "print('through', 6 * 7)")
        assert wait_for(lambda: any("through 42" in text for text in page_text(browser, OUTPUT)), 30), page_text(
            browser, OUTPUT
        )
    finally:
        manager.stop_notebook("user2")
    # The page's kernel websocket went through the site.
    assert re.search(r"Websocket /notebook/api/kernels/[-0-9a-f]+/channels open", site.log_text())


def test_dying_notebook_closes_the_browsers_websocket(site):
    context = start_notebook(site, "user2")
    session = log_in_session(site.base, "user2")
    kernel_id = start_kernel(context)
    server = psutil.Process(context.pid)
    processes = [server, *server.children(recursive=True)]
    ws = browser_socket(site.base, session, channels_path(kernel_id), [V1_PROTOCOL])
    try:
        assert KernelSocket(ws, V1_PROTOCOL).execute("1 + 1")["result"] == "2"
        server.kill()
        close = next_control_frame(ws, websocket.ABNF.OPCODE_CLOSE)
        assert int.from_bytes(close.data[:2], "big") == 1011
        ws.settimeout(10)
        assert ws.sock.recv(1) == b""
    finally:
        ws.shutdown()
        # Its kernels outlive a killed server: end them too.
        for process in processes:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(processes, timeout=10)


def worker_resources(site, notebook_port: int) -> dict:
    """Descriptors and threads of each uWSGI worker, and their connections to the notebook."""
    resources = {}
    for worker in site.workers():
        upstream = [c for c in worker.net_connections(kind="tcp") if c.raddr and c.raddr.port == notebook_port]
        resources[worker.pid] = (worker.num_fds(), worker.num_threads(), len(upstream))
    return resources


def test_200_open_close_cycles_leave_nothing_behind(site, user, notebook, kernel):
    def cycle(number: int):
        ws = browser_socket(site.base, user, channels_path(kernel), [V1_PROTOCOL])
        if number % 4 == 3:
            # A browser that vanishes without a closing handshake.
            ws.shutdown()
        else:
            ws.close()

    # The proxy's pool may keep HTTP connections to the notebook from earlier
    # requests: the relay's own must all be gone after each websocket.
    pooled = {pid: upstream for pid, (_fds, _threads, upstream) in worker_resources(site, notebook.http_port).items()}
    for number in range(8):
        cycle(number)
    baseline = worker_resources(site, notebook.http_port)
    assert {pid: upstream for pid, (_fds, _threads, upstream) in baseline.items()} == pooled

    for number in range(200):
        cycle(number)

    settled = wait_for(lambda: worker_resources(site, notebook.http_port) == baseline, 30)
    assert settled, "before: {}, after: {}".format(baseline, worker_resources(site, notebook.http_port))
    status = requests.get(notebook_api(notebook) + "api/status", headers=token_header(notebook), timeout=10).json()
    assert wait_for(
        lambda: requests.get(notebook_api(notebook) + "api/status", headers=token_header(notebook), timeout=10)
        .json()["connections"]
        == 0,
        30,
    ), status


def test_site_answers_while_20_notebook_websocket_pairs_are_open(site, user, kernel):
    """Each notebook tab holds two websockets (events and kernel), each a uWSGI thread."""
    sockets = []
    try:
        for _ in range(20):
            sockets.append(browser_socket(site.base, user, "/notebook/api/events/subscribe"))
            sockets.append(browser_socket(site.base, user, channels_path(kernel), [V1_PROTOCOL]))
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            response = user.get(site.base + "/", timeout=10)
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200
        logger.info(
            "Home page with 20 websocket pairs open: median %.1f ms, slowest %.1f ms",
            statistics.median(timings) * 1000,
            max(timings) * 1000,
        )
        # Each page answered (a starved site would have timed out); how fast is ws_capacity's figure.
        # And the websockets still work.
        assert KernelSocket(sockets[-1], V1_PROTOCOL).execute("1 + 1")["result"] == "2"
    finally:
        for ws in sockets:
            ws.close()


# Through nginx


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_through_nginx(site, user, kernel, tmp_path):
    with running_nginx(tmp_path, site.port) as base:
        session = log_in_session(base, "user")
        home = session.get(base + "/", timeout=10)
        assert home.status_code == 200
        for protocol in (V1_PROTOCOL, None):
            kernel_ws = kernel_socket(base, session, kernel, protocol)
            try:
                big = "x" * (2 * MB)
                assert kernel_ws.execute("len({!r})".format(big))["result"] == str(2 * MB)
                if protocol:
                    code = "from IPython.display import display\ndisplay({'text/plain': 'y' * 20_000_000}, raw=True)"
                    output = kernel_ws.execute(code)
                    assert output["display"] == ["y" * 20 * MB]
            finally:
                kernel_ws.ws.close()
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            browser_socket(base, session, channels_path(kernel), [V1_PROTOCOL], origin="http://evil.example")
        assert refused.value.status_code == 403


# Last: what the tests above left in uWSGI's log.


def test_uwsgi_log_is_clean(site, notebook):
    log = site.log_text()
    assert "headers already sent" not in log
    assert "Traceback" not in log
    assert notebook.token not in log
    assert "(HTTP/1.1 101)" in log


def test_keep_alive_client_meets_no_resets(site):
    """A plain requests.Session reuses its connection; uWSGI must say it closes each one."""
    session = requests.Session()
    token = csrf_token(session.get(site.base + "/login", timeout=10).text)
    form = {"csrf_token": token, "came_from": "", "username": "nobody", "password": "wrong"}
    statuses = [session.post(site.base + "/login", data=form, timeout=10).status_code for _ in range(300)]
    assert statuses == [200] * 300


def test_logout_ends_the_open_websocket_of_the_tab(site):
    """An open notebook tab of a user who logs out stops working at once, websockets included."""
    session = log_in_session(site.base, "user2")
    context = start_notebook(site, "user2")
    kernel_id = start_kernel(context)
    ws = browser_socket(site.base, session, channels_path(kernel_id), [V1_PROTOCOL])
    try:
        assert KernelSocket(ws, V1_PROTOCOL).execute("1 + 1")["result"] == "2"
        home = session.get(site.base + "/", timeout=10).text
        token = csrf_token(home)
        session.post(site.base + "/logout", data={"csrf_token": token}, timeout=30).raise_for_status()
        close = next_control_frame(ws, websocket.ABNF.OPCODE_CLOSE)
        assert close is not None, "the open websocket was closed"
        # The tab's next websocket handshake carries what the browser has after the logout.
        url = site.base + channels_path(kernel_id)
        again = session.get(url, headers=handshake(site.base), allow_redirects=False, timeout=10)
        assert again.status_code == 302 and "/login" in again.headers["Location"]
        assert session.get(site.base + "/notebook/api/status", allow_redirects=False, timeout=10).status_code == 302
        assert NotebookManager(site.notebook_folder).get_state("user2")[0] == "stopped"
    finally:
        ws.shutdown()
        NotebookManager(site.notebook_folder).stop_notebook("user2")
