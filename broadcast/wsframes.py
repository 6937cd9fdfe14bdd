"""RFC 6455 frames, server side: a decoder for what clients send, encoders for what we send.

Our own, not wsproto's, for one reason measured (BENCHMARKS.md, issue 11):
memory per idle connection. A wsproto `WSConnection` holds 4.6 KiB per
connection after its handshake (its h11 handshake state, buffers, event
queue); this decoder holds four slots and a buffer only while a frame is
incomplete. wsproto stays the reference: tests/unit/test_wsframes.py feeds
both the same random frame sequences and compares what comes out.

The decoder yields plain tuples, no event objects: (TEXT, str), (BINARY,
None), (TOO_LARGE, None), (PING, payload), (PONG, payload), (CLOSE, (code,
reason)), or raises `ProtocolError` with the close code the connection should
end with. A message over the size limit is not buffered: its bytes are
dropped as they arrive and it comes out as TOO_LARGE, so the connection can
answer it and stay open (PROTOCOL.md section 3).

permessage-deflate (RFC 7692), when the handshake agreed it, is always without
context takeover either way: each message is deflated on its own, so an event's
compressed frame is the same bytes for every subscriber (built once, as the plain
one is) and a connection keeps no zlib state between messages.
"""
from __future__ import annotations

import codecs
import struct
import zlib

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
TOO_LARGE = -1
_CONTINUATION = 0x0
_CONTROL = (CLOSE, PING, PONG)
_VALID_CLOSE = set(range(1000, 1004)) | set(range(1007, 1012)) | set(range(3000, 5000))

PING_FRAME = b"\x89\x00"


class ProtocolError(Exception):
    """The client broke the protocol; close with `code` (1002, 1007 or 1009)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def text_header(length: int, first: int = 0x81) -> bytes:
    """Header of an unmasked, final text frame (server to client); `first` 0xC1 marks
    its payload deflated (RSV1)."""
    if length < 126:
        return struct.pack("!BB", first, length)
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


_TAIL = b"\x00\x00\xff\xff"


def deflated_text_frame(payload: bytes, level: int = 6) -> bytes:
    """A final text frame whose payload is deflated on its own (RFC 7692 7.2.1)."""
    packer = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = packer.compress(payload) + packer.flush(zlib.Z_SYNC_FLUSH)
    if body.endswith(_TAIL):
        body = body[:-4]
    return text_header(len(body), 0xC1) + body


def inflate_message(body: bytes, limit: int) -> bytes | None:
    """A deflated message's bytes, or None past `limit` (never inflated further)."""
    unpacker = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = unpacker.decompress(body + _TAIL, limit + 1)
    except zlib.error:
        raise ProtocolError(1007, "a compressed message does not inflate") from None
    return None if len(out) > limit or unpacker.unconsumed_tail else out


def control_frame(opcode: int, payload: bytes = b"") -> bytes:
    return bytes([0x80 | opcode, len(payload)]) + payload[:125]


def close_frame(code: int, reason: str = "") -> bytes:
    return control_frame(CLOSE, code.to_bytes(2, "big") + reason.encode()[:123])


def _unmask(payload: bytes, mask: bytes) -> bytes:
    # XOR with the 4-byte mask repeated, as one big-integer operation (C speed).
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class FrameDecoder:
    """Incremental: `feed(data)` returns the messages completed by `data`.

    Text messages are returned whole (fragments joined), decoded as UTF-8 and
    refused (1007) when they are not. Control frames may come between
    fragments, as the RFC allows.
    """

    __slots__ = ("max_message", "deflate", "_buf", "_parts", "_size", "_utf8", "_opcode", "_skip",
                 "_skip_fin", "_oversized", "_deflated")

    def __init__(self, max_message: int, deflate: bool = False) -> None:
        self.max_message = max_message
        self.deflate = deflate      # permessage-deflate agreed: RSV1 marks a deflated message
        self._deflated = False      # the message in progress is deflated
        self._buf = b""             # bytes of an incomplete frame
        self._parts: list[str] | None = None   # a fragmented text message so far
        self._size = 0
        self._utf8: codecs.IncrementalDecoder | None = None   # decoder of the fragmented message
        self._opcode = 0            # opcode of the fragmented message (0: none)
        self._skip = 0              # payload bytes of an oversized frame still to drop
        self._skip_fin = False      # whether that frame ends its message
        self._oversized = False     # the message in progress is over the limit

    def feed(self, data: bytes) -> list[tuple[int, object]]:
        """(kind, value) for each message `data` completed: (TEXT, str), (BINARY, None),
        (TOO_LARGE, None), (PING or PONG, the payload's bytes), (CLOSE, (code, reason))."""
        out: list[tuple[int, object]] = []
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
            if self._skip:
                return out
            self._end_skipped(out)
        buf = self._buf + data if self._buf else data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b0 & 0x70 and (b0 & 0x70 != 0x40 or not self.deflate or b0 & 0x0F not in (TEXT, BINARY)):
                raise ProtocolError(1002, "reserved bits set that no agreed extension uses")
            if not b1 & 0x80:
                raise ProtocolError(1002, "client frames must be masked")
            fin, opcode, length = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            if opcode in _CONTROL:
                if length > 125 or not fin:
                    raise ProtocolError(1002, "control frames are short and not fragmented")
            elif opcode not in (TEXT, BINARY, _CONTINUATION):
                raise ProtocolError(1002, f"unknown opcode {opcode:#x}")
            elif self._oversized or self._size + length > self.max_message:
                self._check_order(opcode)
                # Dropped as it arrives, never buffered: the message is answered
                # as too large once it ends, and the connection goes on.
                if end - pos < head + 4:
                    break
                pos += head + 4
                dropped = min(length, end - pos)
                pos += dropped
                self._skip, self._skip_fin, self._oversized = length - dropped, bool(fin), True
                if opcode != _CONTINUATION:
                    self._opcode = opcode
                self._parts, self._utf8, self._size, self._deflated = None, None, 0, False
                if self._skip:
                    break
                self._end_skipped(out)
                continue
            if end - pos < head + 4 + length:
                break
            mask = buf[pos + head:pos + head + 4]
            start = pos + head + 4
            payload = _unmask(buf[start:start + length], mask)
            pos = start + length
            message = self._frame(fin, opcode, payload, bool(b0 & 0x40))
            if message is not None:
                out.append(message)
                if message[0] == CLOSE:
                    pos = end   # nothing after a close frame counts
        self._buf = buf[pos:] if pos < end else b""
        return out

    def _check_order(self, opcode: int) -> None:
        if opcode == _CONTINUATION:
            if not self._opcode:
                raise ProtocolError(1002, "a continuation with no message to continue")
        elif self._opcode:
            raise ProtocolError(1002, "a new message before the last one ended")

    def _end_skipped(self, out: list) -> bool:
        """The oversized frame was dropped; True (and TOO_LARGE out) if it ended its message."""
        if not self._skip_fin:
            return False
        self._oversized, self._opcode, self._skip_fin = False, 0, False
        out.append((TOO_LARGE, None))
        return True

    def _frame(self, fin: int, opcode: int, payload: bytes, rsv1: bool = False) -> tuple[int, object] | None:
        if opcode in _CONTROL:
            if opcode != CLOSE:
                return opcode, payload
            if len(payload) == 1:
                raise ProtocolError(1002, "a close frame's payload is a code and a reason")
            code = int.from_bytes(payload[:2], "big") if payload else 1005
            if payload and code not in _VALID_CLOSE:
                raise ProtocolError(1002, f"close code {code} may not be sent")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError(1007, "a close reason must be UTF-8") from None
            return CLOSE, (code, reason)
        self._check_order(opcode)
        if rsv1 or (opcode == _CONTINUATION and self._deflated):
            return self._deflated_frame(fin, opcode, payload)
        if opcode == _CONTINUATION:
            pass
        elif fin:   # the common case: a whole message in one frame
            if opcode == BINARY:
                return BINARY, None
            try:
                return TEXT, payload.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError(1007, "text frames must be UTF-8") from None
        else:
            self._parts, self._size, self._opcode = [], 0, opcode
            self._utf8 = codecs.getincrementaldecoder("utf-8")()
        # A continuation got past `_check_order`, so a message is in progress, and its
        # first frame (the branch above) set both.
        assert self._parts is not None and self._utf8 is not None
        self._size += len(payload)
        try:
            if self._opcode == TEXT:
                self._parts.append(self._utf8.decode(payload, final=bool(fin)))
        except UnicodeDecodeError:
            raise ProtocolError(1007, "text frames must be UTF-8") from None
        if not fin:
            return None
        kind, text = self._opcode, "".join(self._parts)
        self._parts, self._utf8, self._size, self._opcode = None, None, 0, 0
        return (TEXT, text) if kind == TEXT else (BINARY, None)

    def _deflated_frame(self, fin: int, opcode: int, payload: bytes) -> tuple[int, object] | None:
        """A frame of a deflated message: its bytes gathered, inflated once it ends."""
        if opcode != _CONTINUATION:
            self._parts, self._size, self._opcode, self._deflated = [], 0, opcode, True
        assert self._parts is not None
        self._size += len(payload)
        self._parts.append(payload)   # type: ignore[arg-type]
        if not fin:
            return None
        kind, body = self._opcode, b"".join(self._parts)   # type: ignore[arg-type]
        self._parts, self._size, self._opcode, self._deflated = None, 0, 0, False
        inflated = inflate_message(body, self.max_message)
        if inflated is None:
            return TOO_LARGE, None
        if kind == BINARY:
            return BINARY, None
        try:
            return TEXT, inflated.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(1007, "text frames must be UTF-8") from None
