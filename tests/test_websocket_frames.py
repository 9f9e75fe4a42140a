"""Websocket frames as bytes (pyramid_notebook.websocket.frames): no sockets, no processes.

The bytes are read back by a parser of the tests' own (tests.support.frames),
so that encoding is checked against something other than the scanner that
follows it.
"""
import pytest

from pyramid_notebook.websocket.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    FrameScanner,
    ProtocolError,
    apply_mask,
    close_payload,
    encode_frame,
)
from tests.support.frames import FrameParser


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 3 * 1024 * 1024])
def test_frames_encode_and_parse_back(size):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for masked in (False, True):
        header, body = encode_frame(Frame(True, OP_BINARY, payload), masked)
        assert FrameParser(masked).feed(header + body) == [Frame(True, OP_BINARY, payload)]


def scan_in_chunks(scanner: FrameScanner, data: bytes, chunk: int) -> tuple[bytes, list[Frame]]:
    """Feed ``data`` in chunks; return the bytes passed on and the control frames seen."""
    passed, controls = bytearray(), []
    for start in range(0, len(data), chunk):
        for piece, frame in scanner.scan(memoryview(data[start : start + chunk])):
            passed += piece
            if frame is not None:
                controls.append(frame)
    return bytes(passed), controls


STREAM_FRAMES = [
    Frame(True, OP_TEXT, b"hello"),
    Frame(True, OP_PING, b"ping payload"),
    Frame(True, OP_BINARY, bytes(range(256)) * 300),
    Frame(False, OP_TEXT, b"one "),
    Frame(True, OP_PONG, b""),
    Frame(True, OP_CONTINUATION, b"two"),
    Frame(True, OP_BINARY, b"x" * 70000),
    Frame(True, OP_CLOSE, close_payload(4001, "bye")),
    Frame(True, OP_TEXT, b"after the close: dropped"),
]


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 13, 1000, 1 << 20])
def test_scanner_passes_bytes_unchanged_and_finds_control_frames(masked, chunk):
    encoded = [b"".join(encode_frame(frame, masked)) for frame in STREAM_FRAMES]
    passed, controls = scan_in_chunks(FrameScanner(masked, 1 << 20), b"".join(encoded), chunk)
    assert passed == b"".join(encoded[:-1])
    assert controls == [frame for frame in STREAM_FRAMES[:-1] if frame.opcode >= OP_CLOSE]


def test_scanner_knows_when_a_frame_is_cut():
    scanner = FrameScanner(False, 1 << 20)
    header, payload = encode_frame(Frame(True, OP_BINARY, b"x" * 1000), False)
    scanner.scan(memoryview(header + payload[:10]))
    assert not scanner.at_boundary
    scanner.scan(memoryview(payload[10:]))
    assert scanner.at_boundary


def test_masking_is_its_own_inverse():
    key = b"\x01\x80\xff\x33"
    data = bytes(range(256)) * 7 + b"xyz"
    assert apply_mask(key, data) != data
    assert apply_mask(key, apply_mask(key, data)) == data


@pytest.mark.parametrize(
    "data, code",
    [
        (b"\x81\x05hello", 1002),  # unmasked frame from a browser
        (b"\xc1\x80\x00\x00\x00\x00", 1002),  # reserved bit set
        (b"\x83\x80\x00\x00\x00\x00", 1002),  # unknown opcode
        (b"\x09\x80\x00\x00\x00\x00", 1002),  # fragmented control frame
        (b"\x82\xfe\x10\x00\x00\x00\x00\x00", 1009),  # 4096 bytes announced, limit 1024
    ],
)
def test_scanner_refuses_broken_frames(data, code):
    good = b"".join(encode_frame(Frame(True, OP_TEXT, b"fine"), True))
    with pytest.raises(ProtocolError) as error:
        FrameScanner(True, 1024).scan(memoryview(good + data))
    assert error.value.code == code
    # What came before the bad frame is still there to pass on.
    assert b"".join(bytes(piece) for piece, _frame in error.value.pieces) == good


def test_scanner_refuses_a_broken_header_cut_across_reads():
    """A header collected over two reads is checked like one that came whole."""
    good = b"".join(encode_frame(Frame(True, OP_TEXT, b"fine"), True))
    scanner = FrameScanner(True, 1024)
    # 4096 bytes announced, limit 1024; the read ends inside the length field.
    bad = b"\x82\xfe\x10\x00\x00\x00\x00\x00"
    assert b"".join(bytes(piece) for piece, _frame in scanner.scan(memoryview(good + bad[:3]))) == good
    with pytest.raises(ProtocolError) as error:
        scanner.scan(memoryview(bad[3:]))
    assert error.value.code == 1009
    assert error.value.pieces == []
