"""The websocket relay (pyramid_notebook.websocket.relay) frame by frame, and the uWSGI adaptor's checks, without uWSGI.

Two socket pairs stand in for the browser's connection and the notebook's;
the tests play both peers and check what the relay passes on.
"""
import socket
import sys
import threading
import time
import types

import pytest
from pyramid.httpexceptions import HTTPException
from pyramid.request import Request

from pyramid_notebook.uwsgi import serve_websocket
from pyramid_notebook.waiting import wait_for
from pyramid_notebook.websocket import relay as relay_module
from pyramid_notebook.websocket.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    close_payload,
    encode_frame,
)
from pyramid_notebook.websocket.relay import KEEPALIVE_PAYLOAD, UPSTREAM_MAX_FRAME, Relay, Side
from pyramid_notebook.websocket.uwsgi import WebsocketProxyResponse, accept_key
from tests.support.frames import FrameParser

TIMEOUT = 10


class Peer:
    """One of the relay's peers: writes frames to it and reads what it passes on."""

    def __init__(self, sock: socket.socket, masks: bool):
        self.sock = sock
        self.masks = masks
        # What the relay writes to a peer is masked only towards the notebook.
        self.parser = FrameParser(masked=not masks)
        self.pending: list[Frame] = []
        sock.settimeout(TIMEOUT)

    def send(self, frame: Frame) -> None:
        header, payload = encode_frame(frame, masked=self.masks)
        self.sock.sendall(header + payload)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> Frame:
        while not self.pending:
            data = self.sock.recv(1 << 20)
            assert data, "the relay closed the connection instead of sending a frame"
            self.pending.extend(self.parser.feed(data))
        return self.pending.pop(0)

    def receive_close(self) -> Frame:
        """The next frame, which must be a close frame."""
        frame = self.receive()
        assert frame.opcode == OP_CLOSE, frame
        return frame

    def is_closed(self) -> bool:
        """True once the relay has closed its end (after anything still unread)."""
        try:
            return self.sock.recv(1 << 20) == b""
        except ConnectionResetError:
            return True


class Harness:
    """A relay between a fake browser and a fake notebook, running in a thread."""

    def __init__(self, ping_freq: float = 30, pong_tolerance: float = 30, max_payload: int = 16 << 20):
        browser_peer, browser_end = socket.socketpair()
        notebook_peer, notebook_end = socket.socketpair()
        self.browser = Peer(browser_peer, masks=True)
        self.notebook = Peer(notebook_peer, masks=False)
        self.ends = [browser_end, notebook_end]
        self.relay = Relay(
            Side("browser", browser_end, peer_masks=True, we_mask=False, max_payload=max_payload),
            Side("notebook", notebook_end, peer_masks=False, we_mask=True, max_payload=UPSTREAM_MAX_FRAME),
            ping_freq=ping_freq,
            pong_tolerance=pong_tolerance,
            path="/test",
        )
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            self.relay.run()
        finally:
            # What WebsocketProxyResponse does when the relay returns.
            for end in self.ends:
                end.close()

    def wait_ended(self) -> str:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the relay did not end"
        return self.relay.outcome

    def close(self):
        for peer in (self.browser, self.notebook):
            peer.sock.close()
        self.thread.join(TIMEOUT)


@pytest.fixture
def harness():
    running = Harness()
    yield running
    running.close()


def close_handshake(harness: Harness) -> None:
    harness.browser.send(Frame(True, OP_CLOSE, close_payload(1000)))
    assert harness.notebook.receive_close().payload == close_payload(1000)
    harness.notebook.send(Frame(True, OP_CLOSE, close_payload(1000)))
    assert harness.browser.receive_close().payload == close_payload(1000)
    assert harness.wait_ended() == "closed by both sides"


# Relaying


def test_text_stays_text_and_binary_stays_binary(harness):
    text = "€ print('hello') ".encode() * 100_000
    binary = bytes(range(256)) * 10_000
    # One at a time: socket pairs buffer far less than a frame, and the
    # test is both peers.
    for sender, receiver in ((harness.browser, harness.notebook), (harness.notebook, harness.browser)):
        for frame in (Frame(True, OP_TEXT, text), Frame(True, OP_BINARY, binary)):
            sending = threading.Thread(target=sender.send, args=(frame,))
            sending.start()
            assert receiver.receive() == frame
            sending.join(TIMEOUT)
    close_handshake(harness)


def test_fragments_pass_as_they_are_with_a_ping_between(harness):
    frames = [
        Frame(False, OP_TEXT, b"one "),
        Frame(True, OP_PING, b"in between"),
        Frame(False, OP_CONTINUATION, b"two "),
        Frame(True, OP_CONTINUATION, b"three"),
    ]
    for frame in frames:
        harness.notebook.send(frame)
    assert [harness.browser.receive() for _ in frames] == frames
    for frame in frames:
        harness.browser.send(frame)
    assert [harness.notebook.receive() for _ in frames] == frames
    close_handshake(harness)


def test_pings_and_pongs_pass_both_ways(harness):
    harness.browser.send(Frame(True, OP_PING, b"from the browser"))
    assert harness.notebook.receive() == Frame(True, OP_PING, b"from the browser")
    harness.notebook.send(Frame(True, OP_PONG, b"from the browser"))
    assert harness.browser.receive() == Frame(True, OP_PONG, b"from the browser")
    harness.notebook.send(Frame(True, OP_PING, b"from the notebook"))
    assert harness.browser.receive() == Frame(True, OP_PING, b"from the notebook")
    harness.browser.send(Frame(True, OP_PONG, b"from the notebook"))
    assert harness.notebook.receive() == Frame(True, OP_PONG, b"from the notebook")
    close_handshake(harness)


def test_browser_close_code_reaches_the_notebook_and_back(harness):
    harness.browser.send(Frame(True, OP_CLOSE, close_payload(4001, "tab closed")))
    assert harness.notebook.receive_close().payload == close_payload(4001, "tab closed")
    harness.notebook.send(Frame(True, OP_CLOSE, close_payload(4001)))
    assert harness.browser.receive_close().payload == close_payload(4001)
    assert harness.wait_ended() == "closed by both sides"
    assert harness.browser.is_closed() and harness.notebook.is_closed()


def test_notebook_close_code_reaches_the_browser(harness):
    harness.notebook.send(Frame(True, OP_CLOSE, close_payload(1001, "server shutting down")))
    assert harness.browser.receive_close().payload == close_payload(1001, "server shutting down")
    harness.browser.send(Frame(True, OP_CLOSE, close_payload(1001)))
    assert harness.notebook.receive_close().payload == close_payload(1001)
    assert harness.wait_ended() == "closed by both sides"


def test_frames_after_a_close_are_not_passed_on(harness):
    harness.browser.send(Frame(True, OP_CLOSE, close_payload(1000)))
    harness.browser.send(Frame(True, OP_TEXT, b"too late"))
    harness.notebook.send(Frame(True, OP_TEXT, b"still busy"))
    harness.notebook.send(Frame(True, OP_CLOSE, close_payload(1000)))
    assert harness.notebook.receive_close().payload == close_payload(1000)
    # The notebook's frame sent before its close still reaches the browser.
    assert harness.browser.receive() == Frame(True, OP_TEXT, b"still busy")
    assert harness.browser.receive_close().payload == close_payload(1000)
    assert harness.wait_ended() == "closed by both sides"
    assert harness.notebook.is_closed()


def test_vanished_notebook_closes_the_browser_with_1011(harness):
    harness.notebook.sock.close()
    frame = harness.browser.receive_close()
    assert frame.payload[:2] == (1011).to_bytes(2, "big")
    assert harness.wait_ended() == "notebook server went away"
    assert harness.browser.is_closed()


def test_notebook_vanishing_halfway_through_a_frame_just_closes_the_browser(harness):
    """A close frame after half a frame would be read as payload: the connection is closed instead."""
    header, payload = encode_frame(Frame(True, OP_BINARY, b"x" * 100_000), False)
    harness.notebook.send_raw(header + payload[:5000])
    harness.notebook.sock.close()
    assert harness.wait_ended() == "notebook server went away"
    received = b""
    while True:
        data = harness.browser.sock.recv(1 << 20)
        if not data:
            break
        received += data
    assert received == header + payload[:5000]


def test_vanished_browser_closes_the_notebook_with_1001(harness):
    harness.browser.sock.close()
    assert harness.notebook.receive_close().payload[:2] == (1001).to_bytes(2, "big")
    assert harness.wait_ended() == "browser went away"
    assert harness.notebook.is_closed()


def test_too_big_frame_from_the_browser_closes_with_1009():
    harness = Harness(max_payload=1024)
    try:
        harness.browser.send(Frame(True, OP_BINARY, b"x" * 1025))
        assert harness.browser.receive_close().payload[:2] == (1009).to_bytes(2, "big")
        assert harness.notebook.receive_close().payload[:2] == (1001).to_bytes(2, "big")
        assert harness.wait_ended() == "browser broke the protocol"
    finally:
        harness.close()


def test_unmasked_frame_from_the_browser_closes_with_1002(harness):
    harness.browser.send_raw(b"\x81\x02hi")
    assert harness.browser.receive_close().payload[:2] == (1002).to_bytes(2, "big")
    assert harness.notebook.receive_close().payload[:2] == (1001).to_bytes(2, "big")
    assert harness.wait_ended() == "browser broke the protocol"


def test_unanswered_close_ends_the_relay_after_the_close_timeout(harness, monkeypatch):
    monkeypatch.setattr(relay_module, "CLOSE_TIMEOUT", 0.3)
    # The relay reads the timeout when the close passes.
    harness.browser.send(Frame(True, OP_CLOSE, close_payload(1000)))
    harness.notebook.receive_close()
    assert harness.wait_ended() == "close handshake timed out"


def test_silent_browser_is_pinged_and_the_pong_is_kept_back():
    harness = Harness(ping_freq=0.2, pong_tolerance=5)
    try:
        started = time.monotonic()
        assert harness.browser.receive() == Frame(True, OP_PING, KEEPALIVE_PAYLOAD)
        assert time.monotonic() - started >= 0.15
        harness.browser.send(Frame(True, OP_PONG, KEEPALIVE_PAYLOAD))
        # The pong is not passed on: the next thing the notebook sees is this.
        harness.browser.send(Frame(True, OP_TEXT, b"after the pong"))
        assert harness.notebook.receive() == Frame(True, OP_TEXT, b"after the pong")
        # Still alive: pinged again after the next silence.
        assert harness.browser.receive() == Frame(True, OP_PING, KEEPALIVE_PAYLOAD)
        close_handshake(harness)
    finally:
        harness.close()


def test_keepalive_ping_waits_for_the_end_of_a_frame_passing_to_the_browser():
    harness = Harness(ping_freq=0.2, pong_tolerance=5)
    try:
        header, payload = encode_frame(Frame(True, OP_TEXT, b"y" * 1000), False)
        harness.notebook.send_raw(header + payload[:10])
        # Past the ping time, the frame is still cut: no ping may be put in the middle.
        assert not wait_for(lambda: harness.relay.ping_sent_at is not None, 0.6)
        harness.notebook.send_raw(payload[10:])
        assert harness.browser.receive() == Frame(True, OP_TEXT, b"y" * 1000)
        assert harness.browser.receive() == Frame(True, OP_PING, KEEPALIVE_PAYLOAD)
        close_handshake(harness)
    finally:
        harness.close()


def test_browser_that_does_not_answer_pings_is_given_up():
    harness = Harness(ping_freq=0.2, pong_tolerance=0.3)
    try:
        assert harness.browser.receive() == Frame(True, OP_PING, KEEPALIVE_PAYLOAD)
        assert harness.notebook.receive_close().payload[:2] == (1001).to_bytes(2, "big")
        assert harness.wait_ended().startswith("browser did not answer a ping")
    finally:
        harness.close()


def test_busy_notebook_does_not_keep_a_dead_browser_alive():
    """Output flowing to the browser is no sign of life from it; only what it sends is."""
    harness = Harness(ping_freq=0.2, pong_tolerance=0.3)
    try:
        deadline = time.monotonic() + TIMEOUT
        while harness.thread.is_alive() and time.monotonic() < deadline:
            try:
                harness.notebook.send(Frame(True, OP_TEXT, b"output"))
            except OSError:
                break
            harness.thread.join(0.05)
        assert harness.wait_ended().startswith("browser did not answer a ping")
    finally:
        harness.close()


# serve_websocket's checks, before any relaying


@pytest.fixture
def fake_uwsgi(monkeypatch):
    """A stand-in for the module uWSGI gives its Python apps."""
    module = types.ModuleType("uwsgi")
    module.opt = {}
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    return module


def websocket_request(**headers) -> Request:
    handshake = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    return Request.blank("/notebook/api/kernels/abc/channels?session_id=s1", headers={**handshake, **headers})


def refusal(request: Request) -> HTTPException:
    """The HTTP error ``serve_websocket`` raises for ``request`` (for the site's exception views to style)."""
    with pytest.raises(HTTPException) as raised:
        serve_websocket(request, 40000, "secret")
    return raised.value


def test_outside_uwsgi_the_answer_is_501(monkeypatch):
    monkeypatch.setitem(sys.modules, "uwsgi", None)
    assert refusal(websocket_request()).status_code == 501


def test_tls_inside_the_worker_is_refused(fake_uwsgi):
    fake_uwsgi.opt["https-socket"] = b"0.0.0.0:443,cert,key"
    assert refusal(websocket_request()).status_code == 501


def test_not_a_websocket_handshake_is_400(fake_uwsgi):
    assert refusal(websocket_request(**{"Sec-WebSocket-Key": ""})).status_code == 400


def test_old_websocket_version_is_426(fake_uwsgi):
    response = refusal(websocket_request(**{"Sec-WebSocket-Version": "8"}))
    assert response.status_code == 426
    assert response.headers["Sec-WebSocket-Version"] == "13"


def test_handshake_request_gives_a_relay_response_that_hides_the_token(fake_uwsgi):
    request = websocket_request(**{"Sec-WebSocket-Protocol": "v1.kernel.websocket.jupyter.org, other"})
    response = serve_websocket(request, 40001, "secret-token")
    assert isinstance(response, WebsocketProxyResponse)
    assert response.upstream_url == "ws://127.0.0.1:40001/notebook/api/kernels/abc/channels?session_id=s1"
    assert response.protocols == ["v1.kernel.websocket.jupyter.org", "other"]
    assert "secret-token" not in repr(response)
    assert "secret-token" not in response.upstream_url


def test_accept_key_is_the_rfc_example():
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
