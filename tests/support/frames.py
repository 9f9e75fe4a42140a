"""Websocket frames read back from a byte stream by the tests' own parser, not the relay's scanner."""
from pyramid_notebook.websocket.frames import Frame, apply_mask


class FrameParser:
    """Whole frames out of a byte stream, as a browser or the notebook reads them (for the test peers)."""

    def __init__(self, masked: bool):
        self.masked = masked
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``; a partial frame waits for the next call."""
        self.buffer += data
        frames = []
        while len(self.buffer) >= 2:
            first, second = self.buffer[0], self.buffer[1]
            assert bool(second & 0x80) == self.masked, "frame masking is wrong"
            length, position = second & 0x7F, 2
            if length == 126:
                length, position = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                length, position = int.from_bytes(self.buffer[2:10], "big"), 10
            key = bytes(self.buffer[position : position + 4]) if self.masked else None
            position += 4 if self.masked else 0
            if len(self.buffer) < position + length:
                break
            payload = bytes(self.buffer[position : position + length])
            del self.buffer[: position + length]
            frames.append(Frame(bool(first & 0x80), first & 0x0F, apply_mask(key, payload) if key else payload))
        return frames
