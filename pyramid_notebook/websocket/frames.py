"""Websocket frames (RFC 6455) as bytes: encoding, masking, and following them in a stream.

No sockets and no uWSGI here, only bytes in and bytes out, so that the rules
of the protocol can be tested on their own, fast, and the relay
(:mod:`pyramid_notebook.websocket.relay`) only has to move what this module
has checked.

The relay passes each side's frames on byte for byte: a browser's frames are
masked, and the notebook takes a client's frames with any mask; the
notebook's are not masked, as the browser expects.  So data frames need no
copying, unmasking or re-framing, whatever their size.  A
:class:`FrameScanner` follows the frame boundaries and checks each header on
the way; only control frames (at most 125 bytes) are held until whole.
"""
import os
from dataclasses import dataclass

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


class ProtocolError(Exception):
    """A side broke the websocket protocol; ``code`` is the close code to tell it."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        #: What the side sent before the bad frame, still to be passed on (see FrameScanner.scan).
        self.pieces: list = []


@dataclass(frozen=True)
class Frame:
    """One websocket frame, its payload unmasked."""

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

    The relay forwards what each side sends byte for byte, so the scanner
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
            header_start = position
            header, position = self._take_header(data, position)
            if header is None:
                # Cut by the end of this read: its part is kept until the header is
                # whole, and the run to pass on now ends where the header began.
                position = header_start
                break
            try:
                opcode, length = self._check(header)
            except ProtocolError:
                if run_start is not None:
                    pieces.append((data[run_start:header_start], None))
                raise
            if opcode in CONTROL_OPCODES:
                if run_start is not None:
                    pieces.append((data[run_start:header_start], None))
                    run_start = None
                self.control = (bytes(header), opcode, length)
                if length == 0:
                    pieces.append(self._control_frame())
                continue
            if position - header_start == len(header):
                # The usual case: the whole header came in this read, and joins the run.
                if run_start is None:
                    run_start = header_start
            else:
                # Put together across reads (nothing of this read went before it).
                pieces.append((header, None))
            self.remaining = length
        if run_start is not None:
            pieces.append((data[run_start:position], None))

    def _take_header(self, data: memoryview, position: int) -> tuple[bytes | memoryview | None, int]:
        """The next frame header, whole, and the position after it; None if this read ends inside it.

        A header that lies whole in ``data`` is returned in place, without a
        copy; one cut by a read boundary is collected in ``self.header``.
        """
        if not self.header:
            header_size = self._header_size(data[position : position + 2])
            if len(data) - position >= header_size:
                return data[position : position + header_size], position + header_size
        while len(self.header) < self._header_size(self.header):
            if position == len(data):
                return None, position
            missing = self._header_size(self.header) - len(self.header)
            piece = data[position : position + missing]
            self.header += piece
            position += len(piece)
        header = bytes(self.header)
        self.header.clear()
        return header, position

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
