"""The websocket relay: frames between the browser's socket and the notebook's, until both close.

Only sockets and ``poll()`` here, no uWSGI, so the relay runs (and is
tested) between any two connected sockets; the uWSGI adaptor
(:mod:`pyramid_notebook.websocket.uwsgi`) hands it the worker's connection
and the notebook's.

Why frames, and not uWSGI's ``websocket_recv`` / ``websocket_send``:
uWSGI's receive calls return a message's bytes without its opcode, so a proxy
built on them has to guess whether the browser sent text or binary; they
swallow close frames with their code and ping payloads, and they answer pings
themselves.  The relay instead passes each side's frames on byte for byte,
which is valid websocket on the other side too (see
:mod:`pyramid_notebook.websocket.frames`).  So, for every endpoint (kernel
channels with the v1 binary protocol or the legacy JSON one,
``api/events/subscribe``, terminals), text stays text and binary stays binary
with no rule to guess it; fragmented messages stay as they were; close frames
pass with their code and reason; pings and pongs pass both ways.  Nothing is
copied, unmasked or buffered for data frames, whatever their size, and what
arrives in one read leaves in one write.  Frames the proxy makes itself
(keep-alive pings, closes when a side vanishes) go in only between two frames
of the stream they join.

Both sockets get ``TCP_NODELAY``; ``poll()`` waits on both, with no
sleeping.  A browser that sends nothing for ``ping_freq`` seconds is pinged
(and its pong swallowed), so that idle websockets carry traffic through nginx
and NAT; one that does not answer within ``pong_tolerance`` is given up and
the thread freed.
"""
import logging
import select
import socket
import time

from pyramid_notebook.websocket.frames import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    Frame,
    FrameScanner,
    ProtocolError,
    close_code_of,
    close_payload,
    encode_frame,
)

logger = logging.getLogger(__name__)

#: Bytes read from a socket at once, into a buffer kept per side: a 20 MB
#: output passes in some 300 reads, and two buffers per open websocket cost
#: 128 KiB of memory.
READ_SIZE = 64 * 1024

#: Seconds to wait, after a close frame has passed one way, for the close
#: frame that answers it.
CLOSE_TIMEOUT = 5.0

#: Seconds a side may refuse to take any bytes before it is given up.
WRITE_TIMEOUT = 120.0

#: Payload of the proxy's own keep-alive pings; the pong that echoes it is not passed on.
KEEPALIVE_PAYLOAD = b"pyramid_notebook keepalive"

#: Largest frame taken from the notebook.  Data frames stream through without
#: being held, and output is limited by the notebook's own
#: ``iopub_data_rate_limit``: this is only a sanity check on the length field.
UPSTREAM_MAX_FRAME = 1 << 40


class PeerGone(Exception):
    """A side's connection ended or stopped taking bytes."""


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
    """Frames between the browser and the notebook until both have closed, or one is gone.

    :param ping_freq: seconds of silence from the browser before the relay pings it.
    :param pong_tolerance: seconds that ping may go unanswered before the browser is given up.
    :param path: the websocket's URL path, for the log.
    """

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
        """The side across the relay from ``side``."""
        return self.notebook if side is self.browser else self.browser

    def send_between_frames(self, side: Side, frame: Frame) -> None:
        """Send a frame of the proxy's own to ``side``, if that does not cut a frame passing to it in two.

        When a frame is cut (its sender vanished halfway), nothing can be
        added: the connection is just closed.
        """
        if self.other(side).scanner.at_boundary:
            side.try_send(frame)

    def run(self) -> None:
        """Relay until the closing handshake is done, times out, or a side is gone; ``outcome`` says which."""
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
            self.send_between_frames(source, Frame(True, OP_CLOSE, close_payload(error.code, error.reason)))
            self.send_between_frames(
                sink, Frame(True, OP_CLOSE, close_payload(CLOSE_GOING_AWAY, "peer broke the protocol"))
            )
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
                self.send_between_frames(
                    source, Frame(True, OP_CLOSE, close_payload(CLOSE_GOING_AWAY, "peer went away"))
                )
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
            self.send_between_frames(sink, Frame(True, OP_CLOSE, close_payload(code, reason)))
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
                self.send_between_frames(
                    self.notebook, Frame(True, OP_CLOSE, close_payload(CLOSE_GOING_AWAY, "browser went away"))
                )
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
            self.send_between_frames(
                self.notebook, Frame(True, OP_CLOSE, close_payload(CLOSE_GOING_AWAY, "browser went away"))
            )
            return None
        self.ping_sent_at = now
        return self.pong_tolerance
