"""Carry a notebook's websockets through the site under uWSGI.

Enable it with::

    pyramid_notebook.websocket_proxy = pyramid_notebook.uwsgi.serve_websocket

and run the site under uWSGI (see the top-level ``uwsgi.ini``).

How it works, and why
---------------------

:func:`serve_websocket` is called by the site's proxy view once the site has
checked the user's permission and the request's Origin.  It only checks the
request and returns a :class:`WebsocketProxyResponse`; the work happens when
uWSGI calls that response, after Pyramid's tweens have finished.  That way no
database transaction, session or connection from the pool stays open for the
hours a notebook tab may stay open.

When called, the response

1. opens the websocket to the notebook first (websocket-client), with the
   notebook's token in an ``Authorization`` header, the subprotocols the
   browser offered, and ``Host: 127.0.0.1:<port>``.  The browser's Host,
   Origin and cookies are not passed on.  If the notebook refuses, the
   browser gets an HTTP error instead of a websocket;
2. completes the browser's handshake with exactly the subprotocol the
   notebook chose (Jupyter picks ``v1.kernel.websocket.jupyter.org`` when it
   is offered), or with none when it chose none;
3. relays the websocket *frames* between the browser's connection
   (``uwsgi.connection_fd()``) and the notebook's socket, waiting on both
   with ``poll()``.

Why frames, and not uWSGI's ``websocket_recv`` / ``websocket_send``:
uWSGI's receive calls return a message's bytes without its opcode, so a proxy
built on them has to guess whether the browser sent text or binary; they
swallow close frames with their code and ping payloads, and they answer pings
themselves.  The relay instead passes each side's frames on byte for byte,
which is valid websocket on the other side too: the browser's frames are
masked, and the notebook accepts a client's frames with any mask; the
notebook's are not, as the browser expects.  So, for every endpoint (kernel
channels with the v1 binary protocol or the legacy JSON one,
``api/events/subscribe``, terminals), text stays text and binary stays binary
with no rule to guess it; fragmented messages stay as they were; close frames
pass with their code and reason; pings and pongs pass both ways.  A
:class:`FrameScanner` follows the frame boundaries and checks each header on
the way; only control frames (at most 125 bytes) are held until whole.
Nothing is copied, unmasked or buffered for data frames, whatever their size,
and what arrives in one read leaves in one write.  Frames the proxy makes
itself (keep-alive pings, closes when a side vanishes) go in only between two
frames of the stream they join.

The handshake is written with WSGI's ``start_response("101 ...")`` rather
than ``uwsgi.websocket_handshake()``, because the latter echoes the browser's
whole ``Sec-WebSocket-Protocol`` header whenever the notebook chose none,
which would announce a protocol the notebook does not speak.

Limits, from the uWSGI options (``uwsgi.opt``):

* ``websockets-max-size`` (KiB, uWSGI's default 1024): the largest frame
  accepted from the browser.  A larger one closes the websocket with 1009.
* ``websockets-ping-freq`` (seconds, default 30): when the browser has sent
  nothing for that long the proxy pings it itself (and swallows the pong), so
  that idle websockets carry traffic through nginx and NAT, and a browser that
  vanished without closing its TCP connection is noticed;
* ``websockets-pong-tolerance`` (seconds, default 3): how long such a ping may
  go unanswered before the websocket is given up and the thread freed.

TLS must end in front of the worker (nginx, or uWSGI's ``https`` router):
the relay reads and writes the worker's socket itself, so an ``https-socket``
in the worker is refused with a 501 and a log line.

Each open websocket holds one uWSGI worker thread (or core) for as long as
it is open.  The notebook's token never appears in a URL, a log line or an
exception message.
"""
import base64
import hashlib
import logging
import os
import select
import socket
import time
from dataclasses import dataclass
from http import HTTPStatus

import websocket
from pyramid.request import Request
from pyramid.response import Response

logger = logging.getLogger(__name__)

# Opcodes (RFC 6455, section 5.2).
OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
DATA_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY})
CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

# Close codes (RFC 6455, section 7.4.1).
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Bytes read from a socket at once, into a buffer kept per side: a 20 MB
#: output passes in some 300 reads, and two buffers per open websocket cost
#: 128 KiB of memory.
READ_SIZE = 64 * 1024

#: Seconds to wait, after a close frame has passed one way, for the close
#: frame that answers it.
CLOSE_TIMEOUT = 5.0

#: Seconds a side may refuse to take any bytes before it is given up.
WRITE_TIMEOUT = 120.0

#: Seconds to wait for the notebook to accept the websocket.
CONNECT_TIMEOUT = 30.0

#: Payload of the proxy's own keep-alive pings; the pong that echoes it is not passed on.
KEEPALIVE_PAYLOAD = b"pyramid_notebook keepalive"

#: uWSGI's defaults for the options the relay honours.
DEFAULT_MAX_SIZE_KB = 1024
DEFAULT_PING_FREQ = 30
DEFAULT_PONG_TOLERANCE = 3

#: uWSGI options that put TLS inside the worker, where the relay cannot follow.
TLS_SOCKET_OPTIONS = ("https-socket", "ssl-socket")

#: Largest frame taken from the notebook.  Data frames stream through without
#: being held, and output is limited by the notebook's own
#: ``iopub_data_rate_limit``: this is only a sanity check on the length field.
UPSTREAM_MAX_FRAME = 1 << 40


class ProtocolError(Exception):
    """A side broke the websocket protocol; ``code`` is the close code to tell it."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        #: What the side sent before the bad frame, still to be passed on (see FrameScanner.scan).
        self.pieces: list = []


class PeerGone(Exception):
    """A side's connection ended or stopped taking bytes."""


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes


def apply_mask(key: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key``: masks and unmasks alike.

    Done on one big integer, which is fast enough for multi-megabyte frames
    without a C extension.
    """
    length = len(data)
    if not length:
        return data
    repeated = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(length, "little")


def encode_frame(frame: Frame, masked: bool) -> tuple[bytes, bytes]:
    """The frame's header and payload, as they go on the wire.

    ``masked`` is for frames a client sends (the proxy to the notebook): RFC
    6455 requires those to be masked with a fresh random key.
    """
    first = (0x80 if frame.fin else 0) | frame.opcode
    length = len(frame.payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 1 << 16:
        header = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    if not masked:
        return header, frame.payload
    key = os.urandom(4)
    return header + key, apply_mask(key, frame.payload)


def close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a close frame: the code, then the reason in UTF-8 (at most 123 bytes)."""
    return code.to_bytes(2, "big") + reason.encode("utf-8")[:123]


def close_code_of(payload: bytes) -> int | None:
    """The code in a close frame's payload, for the log; None if it has none."""
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


class FrameScanner:
    """Follow the frames in a byte stream as it passes, without holding on to data frames.

    The relay forwards what each side sends byte for byte: a browser's frames
    are masked, and the notebook takes a client's frames with any mask; the
    notebook's are not masked, as the browser expects.  So data frames need
    no copying, unmasking or re-framing, whatever their size.  The scanner
    only has to know where frames begin and end, check each header, and hand
    over each control frame (close, ping, pong) whole, for the relay to act on.

    :param masked: whether the peer must mask its frames (browsers must,
        servers must not); a frame that breaks this is a protocol error.
    :param max_payload: the largest frame accepted, checked on its header.
    """

    def __init__(self, masked: bool, max_payload: int):
        self.masked = masked
        self.max_payload = max_payload
        #: The start of a header whose end has not arrived yet.
        self.header = bytearray()
        #: Payload bytes of the current data frame still to come.
        self.remaining = 0
        #: A control frame being collected: its header, opcode and length.
        self.control: tuple[bytes, int, int] | None = None
        self.control_payload = bytearray()
        #: The peer sent its close frame; anything after it is dropped.
        self.closed = False

    @property
    def at_boundary(self) -> bool:
        """True when what was passed on so far ends with a whole frame.

        Only then may the relay put a frame of its own (a ping, a close) into
        the stream going the same way.  Headers and control frames are passed
        on only once complete, so only a data frame's payload can be cut.
        """
        return self.remaining == 0

    def scan(self, data: memoryview) -> list[tuple[bytes | memoryview, Frame | None]]:
        """Split ``data`` into what to pass on, in order.

        Returns ``(bytes, None)`` for runs of data frames' bytes (headers
        included) and ``(bytes, frame)`` for each complete control frame,
        ``frame`` holding its unmasked payload.  Raises ProtocolError for a
        header that breaks the rules, before any of that frame is passed on.
        """
        pieces = []
        try:
            self._scan(data, pieces)
        except ProtocolError as error:
            # What came before the bad header is still to be passed on.
            error.pieces = pieces
            raise
        return pieces

    def _scan(self, data: memoryview, pieces: list) -> None:
        position, size = 0, len(data)
        #: Where the current run of bytes to pass on as they are began.
        run_start = None
        while position < size and not self.closed:
            if self.remaining:
                if run_start is None:
                    run_start = position
                take = min(self.remaining, size - position)
                position += take
                self.remaining -= take
                continue
            if self.control is not None:
                _header, _opcode, length = self.control
                take = min(length - len(self.control_payload), size - position)
                self.control_payload += data[position : position + take]
                position += take
                if len(self.control_payload) == length:
                    pieces.append(self._control_frame())
                continue
            if not self.header:
                header_size = self._header_size(data[position : position + 2])
                if size - position >= header_size:
                    # The usual case: the whole header is in this read.
                    header = data[position : position + header_size]
                    try:
                        opcode, length = self._check(header)
                    except ProtocolError:
                        if run_start is not None:
                            pieces.append((data[run_start:position], None))
                        raise
                    if opcode in CONTROL_OPCODES:
                        if run_start is not None:
                            pieces.append((data[run_start:position], None))
                            run_start = None
                        self.control = (bytes(header), opcode, length)
                        position += header_size
                        if length == 0:
                            pieces.append(self._control_frame())
                        continue
                    if run_start is None:
                        run_start = position
                    position += header_size
                    self.remaining = length
                    continue
                # A header cut by the end of this read: keep it until it is whole.
                if run_start is not None:
                    pieces.append((data[run_start:position], None))
                    run_start = None
            self.header += data[position : position + 1]
            position += 1
            if len(self.header) < 2 or len(self.header) < self._header_size(self.header):
                continue
            header = bytes(self.header)
            self.header.clear()
            opcode, length = self._check(header)
            if opcode in CONTROL_OPCODES:
                self.control = (header, opcode, length)
                if length == 0:
                    pieces.append(self._control_frame())
            else:
                pieces.append((header, None))
                self.remaining = length
        if run_start is not None:
            pieces.append((data[run_start:position], None))

    @staticmethod
    def _header_size(start: bytes | bytearray | memoryview) -> int:
        """A frame header's length, from its first two bytes; 2 until both have arrived."""
        if len(start) < 2:
            return 2
        length = start[1] & 0x7F
        return 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if start[1] & 0x80 else 0)

    def _check(self, header: bytes | memoryview) -> tuple[int, int]:
        """The opcode and payload length of a complete header; ProtocolError if it breaks a rule."""
        first, second = header[0], header[1]
        opcode = first & 0x0F
        if first & 0x70:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
        if opcode not in DATA_OPCODES and opcode not in CONTROL_OPCODES:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unknown opcode {}".format(opcode))
        if bool(second & 0x80) != self.masked:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "frame masking is wrong for this side")
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(header[2:4], "big")
        elif length == 127:
            length = int.from_bytes(header[2:10], "big")
        if opcode in CONTROL_OPCODES and (length > 125 or not first & 0x80):
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frame too long or fragmented")
        if length > self.max_payload:
            raise ProtocolError(CLOSE_TOO_BIG, "frame of {} bytes is over the limit".format(length))
        return opcode, length

    def _control_frame(self) -> tuple[bytes, Frame]:
        """The collected control frame: its bytes as received, and the frame with its payload unmasked."""
        header, opcode, _length = self.control
        payload = bytes(self.control_payload)
        self.control, self.control_payload = None, bytearray()
        if opcode == OP_CLOSE:
            self.closed = True
        plain = apply_mask(header[-4:], payload) if self.masked else payload
        return header + payload, Frame(True, opcode, plain)


class Side:
    """One end of the relay: a non-blocking socket, what arrives on it, and writes to it.

    :param name: ``"browser"`` or ``"notebook"``, for the log.
    :param peer_masks: whether the peer masks its frames (the browser does).
    :param we_mask: whether frames the proxy makes for this side must be
        masked (the notebook's side, where the proxy is the client).
    :param max_payload: the largest frame accepted from the peer.
    """

    def __init__(self, name: str, sock: socket.socket, peer_masks: bool, we_mask: bool, max_payload: int):
        self.name = name
        self.sock = sock
        self.fd = sock.fileno()
        self.we_mask = we_mask
        self.scanner = FrameScanner(peer_masks, max_payload)
        #: A close frame went to this side.
        self.close_sent = False
        self.last_heard = time.monotonic()
        self._read_buffer = bytearray(READ_SIZE)
        self._read_view = memoryview(self._read_buffer)
        self._writable = select.poll()
        self._writable.register(self.fd, select.POLLOUT)
        sock.setblocking(False)
        set_nodelay(sock)

    @property
    def close_received(self) -> bool:
        """This side sent its close frame."""
        return self.scanner.closed

    def receive(self) -> list[tuple[bytes | memoryview, Frame | None]] | None:
        """What to pass on from the bytes waiting on the socket (see FrameScanner.scan); None once the peer left.

        The pieces may point into the read buffer: pass them on before the next receive.
        """
        try:
            # Into a buffer kept for the connection: a fresh 64 KiB buffer
            # per read would cost an allocation for every small message.
            received = self.sock.recv_into(self._read_buffer)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            return None
        if not received:
            return None
        self.last_heard = time.monotonic()
        return self.scanner.scan(self._read_view[:received])

    def write(self, buffers: list) -> None:
        """Write ``buffers`` whole, in one system call when the peer takes them, else waiting until it does.

        One call for several frames (and for a frame's header and payload):
        with TCP_NODELAY, what arrived together leaves together.
        """
        pending = [memoryview(buffer) for buffer in buffers if len(buffer)]
        while pending:
            try:
                sent = self.sock.sendmsg(pending, (), socket.MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as error:
                raise PeerGone("{} connection failed: {}".format(self.name, error.strerror)) from None
            while sent and pending:
                if sent >= len(pending[0]):
                    sent -= len(pending[0])
                    pending.pop(0)
                else:
                    pending[0] = pending[0][sent:]
                    sent = 0
            if pending and not self._writable.poll(WRITE_TIMEOUT * 1000):
                raise PeerGone("{} took no bytes for {:g} s".format(self.name, WRITE_TIMEOUT))

    def send(self, frame: Frame) -> None:
        """Write a frame the proxy makes itself (a keep-alive ping, a close)."""
        if frame.opcode == OP_CLOSE:
            self.close_sent = True
        self.write(list(encode_frame(frame, self.we_mask)))

    def try_send(self, frame: Frame) -> None:
        """Send a frame if the side is still there; used while ending, when failures no longer matter."""
        if self.close_sent:
            return
        try:
            self.send(frame)
        except PeerGone:
            pass


def set_nodelay(sock: socket.socket) -> None:
    """Send small frames at once instead of waiting for the peer's delayed ACK (Nagle).

    Without it each kernel message after the first of a burst waits about
    40 ms on Linux.  Unix sockets have no such option and need none.
    """
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class Relay:
    """Frames between the browser and the notebook until both have closed, or one is gone."""

    def __init__(self, browser: Side, notebook: Side, ping_freq: float, pong_tolerance: float, path: str):
        self.browser = browser
        self.notebook = notebook
        self.ping_freq = ping_freq
        self.pong_tolerance = pong_tolerance
        self.path = path
        #: When the proxy's own keep-alive ping went out, while it waits for an answer.
        self.ping_sent_at: float | None = None
        #: Why the relay ended, for the log.
        self.outcome = ""

    def other(self, side: Side) -> Side:
        return self.notebook if side is self.browser else self.browser

    def make(self, side: Side, frame: Frame) -> None:
        """Send a frame of the proxy's own to ``side``, if that does not cut a frame passing to it in two.

        When a frame is cut (its sender vanished halfway), nothing can be
        added: the connection is just closed.
        """
        if self.other(side).scanner.at_boundary:
            side.try_send(frame)

    def run(self) -> None:
        poller = select.poll()
        sides = {self.browser.fd: self.browser, self.notebook.fd: self.notebook}
        for fd in sides:
            poller.register(fd, select.POLLIN)
        close_deadline = None
        while True:
            now = time.monotonic()
            if self.browser.close_received and self.notebook.close_received:
                self.outcome = "closed by both sides"
                return
            if close_deadline is None and (self.browser.close_sent or self.notebook.close_sent):
                close_deadline = now + CLOSE_TIMEOUT
            if close_deadline is not None:
                timeout = close_deadline - now
                if timeout <= 0:
                    self.outcome = "close handshake timed out"
                    return
            else:
                timeout = self.keepalive(now)
                if timeout is None:
                    return
            for fd, _events in poller.poll(timeout * 1000):
                if not self.pump(sides[fd]):
                    return

    def pump(self, source: Side) -> bool:
        """Pass on what ``source`` sent; False when the relay is over."""
        sink = self.other(source)
        try:
            pieces = source.receive()
        except ProtocolError as error:
            logger.warning("Websocket %s: %s broke the protocol: %s", self.path, source.name, error.reason)
            if error.pieces:
                try:
                    sink.write([data for data, _frame in error.pieces])
                except PeerGone:
                    pass
            self.make(source, Frame(True, OP_CLOSE, close_payload(error.code, error.reason)))
            self.make(sink, Frame(True, OP_CLOSE, close_payload(CLOSE_GOING_AWAY, "peer broke the protocol")))
            self.outcome = "{} broke the protocol".format(source.name)
            return False
        if pieces is None:
            return self.peer_gone(source)
        buffers = []
        for data, frame in pieces:
            if frame is not None:
                if frame.opcode == OP_CLOSE:
                    logger.debug(
                        "Websocket %s: %s closed with %s", self.path, source.name, close_code_of(frame.payload)
                    )
                elif source is self.browser and frame.opcode == OP_PONG and frame.payload == KEEPALIVE_PAYLOAD:
                    # The answer to the proxy's own ping: hearing it was what counted.
                    continue
            buffers.append(data)
        if buffers and not sink.close_sent:
            try:
                sink.write(buffers)
            except PeerGone as error:
                self.outcome = str(error)
                self.make(source, Frame(True, OP_CLOSE, close_payload(CLOSE_GOING_AWAY, "peer went away")))
                return False
            if source.close_received:
                sink.close_sent = True
        return True

    def peer_gone(self, source: Side) -> bool:
        """``source``'s connection ended: close the other side too, unless the closing handshake is done."""
        sink = self.other(source)
        if source.close_received:
            self.outcome = "{} closed its connection".format(source.name)
        else:
            if source is self.browser:
                code, reason = CLOSE_GOING_AWAY, "browser went away"
            else:
                code, reason = CLOSE_INTERNAL_ERROR, "notebook server went away"
            self.make(sink, Frame(True, OP_CLOSE, close_payload(code, reason)))
            self.outcome = reason
        return False

    def keepalive(self, now: float) -> float | None:
        """Ping a silent browser; give it up if it does not answer.

        Returns the seconds until the next check, or None when the browser is given up.
        """
        if self.ping_sent_at is not None:
            if self.browser.last_heard >= self.ping_sent_at:
                self.ping_sent_at = None
            elif now - self.ping_sent_at >= self.pong_tolerance:
                self.outcome = "browser did not answer a ping within {:g} s".format(self.pong_tolerance)
                self.make(self.notebook, Frame(True, OP_CLOSE, close_payload(CLOSE_GOING_AWAY, "browser went away")))
                return None
            else:
                return self.ping_sent_at + self.pong_tolerance - now
        if now - self.browser.last_heard < self.ping_freq:
            return self.browser.last_heard + self.ping_freq - now
        if not self.notebook.scanner.at_boundary:
            # A frame from the notebook is halfway through: ping once it has passed.
            return min(1.0, self.ping_freq)
        try:
            self.browser.send(Frame(True, OP_PING, KEEPALIVE_PAYLOAD))
        except PeerGone as error:
            self.outcome = str(error)
            self.make(self.notebook, Frame(True, OP_CLOSE, close_payload(CLOSE_GOING_AWAY, "browser went away")))
            return None
        self.ping_sent_at = now
        return self.pong_tolerance


def _uwsgi_option(uwsgi_module, name: str, default: int) -> int:
    """A numeric uWSGI option as the server was started with it (the last one given wins)."""
    value = uwsgi_module.opt.get(name)
    if isinstance(value, list):
        value = value[-1] if value else None
    if value in (None, b"", "", True):
        return default
    try:
        return int(value.decode() if isinstance(value, bytes) else value)
    except ValueError:
        logger.warning("uWSGI option %s=%r is not a number; using %d", name, value, default)
        return default


def _offered_protocols(request: Request) -> list[str]:
    """The subprotocols the browser offered, in its order of preference."""
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [name.strip() for name in header.split(",") if name.strip()]


def _plain_response(start_response, status: str, text: str, extra_headers=()) -> list[bytes]:
    body = text.encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra_headers]
    start_response(status, headers)
    return [body]


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the browser's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key + WEBSOCKET_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


class WebsocketProxyResponse(Response):
    """A response that, when the WSGI server calls it, becomes the websocket relay.

    Pyramid's tweens (and so any database transaction) have finished by then.
    Its WSGI call writes nothing after the websocket ends, as uWSGI expects.
    ``Set-Cookie`` headers that the site added on the way out are sent with the
    101 handshake; other headers belong to ordinary responses and are dropped.
    """

    def __init__(self, upstream_url: str, token: str, protocols: list[str], key: str, path: str):
        super().__init__(status=101)
        self.upstream_url = upstream_url
        self.token = token
        self.protocols = protocols
        self.key = key
        self.log_path = path

    def __repr__(self):
        # The default repr would show the token.
        return "<WebsocketProxyResponse for {}>".format(self.log_path)

    def open_upstream(self) -> websocket.WebSocket:
        """Open the notebook's websocket with the token, offering what the browser offered."""
        header = ["Authorization: token " + self.token]
        if self.protocols:
            # Passed as a plain header, not as websocket-client's
            # ``subprotocols``, which refuses a server that chooses none.
            header.append("Sec-WebSocket-Protocol: " + ", ".join(self.protocols))
        return websocket.create_connection(
            self.upstream_url,
            header=header,
            suppress_origin=True,
            # A redirect from the notebook (to its login page, say) is a failure, not a place to go.
            redirect_limit=0,
            timeout=CONNECT_TIMEOUT,
            enable_multithread=False,
            skip_utf8_validation=True,
        )

    def __call__(self, environ, start_response):
        import uwsgi

        started = time.monotonic()
        try:
            upstream = self.open_upstream()
        except websocket.WebSocketBadStatusException as error:
            logger.warning("Websocket %s: the notebook answered %s", self.log_path, error.status_code)
            # Its own 4xx (say, 404 for a kernel that is gone) is the browser's
            # business; a refused token or a server error is the site's fault.
            if 400 <= error.status_code < 500 and error.status_code not in (401, 403, 407):
                try:
                    status = "{} {}".format(error.status_code, HTTPStatus(error.status_code).phrase)
                except ValueError:
                    status = "{} Refused".format(error.status_code)
                return _plain_response(start_response, status, "Refused by the notebook.")
            return _plain_response(start_response, "502 Bad Gateway", "The notebook refused the websocket.")
        except (OSError, websocket.WebSocketException) as error:
            logger.warning("Websocket %s: cannot reach the notebook: %s", self.log_path, type(error).__name__)
            return _plain_response(start_response, "502 Bad Gateway", "The notebook server does not answer.")

        upstream_sock = upstream.sock
        browser_sock = None
        try:
            chosen = (upstream.getheaders() or {}).get("sec-websocket-protocol")
            if chosen is not None and chosen not in self.protocols:
                logger.warning("Websocket %s: the notebook chose a subprotocol nobody offered", self.log_path)
                return _plain_response(start_response, "502 Bad Gateway", "Bad subprotocol from the notebook.")
            headers = [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept_key(self.key)),
            ]
            if chosen:
                headers.append(("Sec-WebSocket-Protocol", chosen))
            headers += [(name, value) for name, value in self.headerlist if name.lower() == "set-cookie"]
            write = start_response("101 Switching Protocols", headers)
            # An empty write makes uWSGI send the headers now.
            write(b"")

            # A duplicate of the worker's descriptor: closing it leaves uWSGI's own alone.
            browser_sock = socket.socket(fileno=os.dup(uwsgi.connection_fd()))
            max_size = _uwsgi_option(uwsgi, "websockets-max-size", DEFAULT_MAX_SIZE_KB) * 1024
            browser = Side("browser", browser_sock, peer_masks=True, we_mask=False, max_payload=max_size)
            notebook = Side("notebook", upstream_sock, peer_masks=False, we_mask=True, max_payload=UPSTREAM_MAX_FRAME)
            relay = Relay(
                browser,
                notebook,
                ping_freq=_uwsgi_option(uwsgi, "websockets-ping-freq", DEFAULT_PING_FREQ),
                pong_tolerance=_uwsgi_option(uwsgi, "websockets-pong-tolerance", DEFAULT_PONG_TOLERANCE),
                path=self.log_path,
            )
            logger.debug("Websocket %s open (subprotocol %s)", self.log_path, chosen)
            relay.run()
            logger.debug(
                "Websocket %s ended after %.1f s: %s", self.log_path, time.monotonic() - started, relay.outcome
            )
        except OSError as error:
            # The browser left while its handshake was being written.
            logger.debug("Websocket %s: browser connection failed: %s", self.log_path, type(error).__name__)
        finally:
            if browser_sock is not None:
                browser_sock.close()
            upstream.shutdown()
        return []


def serve_websocket(request: Request, port: int, token: str) -> Response:
    """Proxy this websocket request to the notebook at 127.0.0.1:``port`` under uWSGI.

    The caller has checked the user's permission and the request's Origin.
    The notebook's URL path is the request's own (the site's ``/notebook/...``
    is the notebook's ``base_url``); ``token`` authenticates to the notebook.
    Returns the response to give back from the view: an error for a request
    that cannot become a websocket here, otherwise a response that runs the
    relay when uWSGI calls it.
    """
    try:
        import uwsgi
    except ImportError:
        logger.error("pyramid_notebook.uwsgi.serve_websocket works only when the site runs under uWSGI")
        return Response(status=501, content_type="text/plain", text="Websockets need uWSGI on this site.")
    if any(name in uwsgi.opt for name in TLS_SOCKET_OPTIONS):
        logger.error(
            "pyramid_notebook.uwsgi.serve_websocket cannot relay on a TLS socket of the worker (%s): "
            "end TLS in nginx or uWSGI's https router instead",
            ", ".join(name for name in TLS_SOCKET_OPTIONS if name in uwsgi.opt),
        )
        return Response(status=501, content_type="text/plain", text="Websockets are not available on this socket.")
    key = request.headers.get("Sec-WebSocket-Key", "").strip()
    if request.method != "GET" or request.headers.get("Upgrade", "").lower() != "websocket" or not key:
        return Response(status=400, content_type="text/plain", text="Not a websocket handshake.")
    if request.headers.get("Sec-WebSocket-Version", "").strip() != "13":
        return Response(
            status=426,
            content_type="text/plain",
            text="Websocket version 13 is needed.",
            headers={"Sec-WebSocket-Version": "13"},
        )
    upstream_url = "ws://127.0.0.1:{}{}".format(int(port), request.path_qs)
    return WebsocketProxyResponse(upstream_url, token, _offered_protocols(request), key, request.path)
