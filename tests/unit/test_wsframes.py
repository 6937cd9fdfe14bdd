"""Our frame decoder against wsproto's, the reference: the same bytes, the same messages.

Random sequences of client frames (text and binary messages, fragmented or
not, pings and pongs between fragments, a close at the end) are encoded by
wsproto's client side, cut into random chunks, and decoded by both; then the
cases wsproto refuses, which ours must refuse with the RFC's close code.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode

from broadcast.wsframes import BINARY, CLOSE, PING, PONG, TEXT, TOO_LARGE, FrameDecoder, ProtocolError

LIMIT = 4096

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
_message = st.one_of(
    st.tuples(st.just("text"), st.lists(_text, min_size=1, max_size=4)),
    st.tuples(st.just("binary"), st.lists(st.binary(max_size=200), min_size=1, max_size=3)),
    st.tuples(st.just("ping"), st.binary(max_size=125).map(lambda b: [b])),
    st.tuples(st.just("pong"), st.binary(max_size=125).map(lambda b: [b])),
)


def encode(messages) -> bytes:
    client = FrameProtocol(client=True, extensions=[])
    out = b""
    for kind, parts in messages:
        if kind in ("text", "binary"):
            for i, part in enumerate(parts):
                out += client.send_data(part, fin=i == len(parts) - 1)
        elif kind == "ping":
            out += client.ping(parts[0])
        else:
            out += client.pong(parts[0])
    return out + client.close(1000, "done")


def reference(data: bytes) -> list[tuple[int, object]]:
    """What wsproto's server side makes of `data`, in our decoder's terms."""
    server = FrameProtocol(client=False, extensions=[])
    server.receive_bytes(data)
    out, parts, size = [], [], 0
    for frame in server.received_frames():
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
            parts.append(frame.payload)
            size += len(frame.payload.encode() if isinstance(frame.payload, str) else frame.payload)
            if frame.message_finished:
                if size > LIMIT:
                    out.append((TOO_LARGE, None))
                elif isinstance(parts[0], str):
                    out.append((TEXT, "".join(parts)))
                else:
                    out.append((BINARY, None))
                parts, size = [], 0
        elif frame.opcode == Opcode.CLOSE:
            code, reason = frame.payload
            out.append((CLOSE, (int(code), reason)))
            break
        else:
            out.append((PING if frame.opcode == Opcode.PING else PONG, bytes(frame.payload)))
    return out


def chunks(data: bytes, cuts: list[int]):
    points = sorted({c % (len(data) + 1) for c in cuts})
    prev = 0
    for p in points + [len(data)]:
        yield data[prev:p]
        prev = p


@settings(max_examples=300, deadline=None, database=None)
@given(messages=st.lists(_message, max_size=8), cuts=st.lists(st.integers(0, 10_000), max_size=12),
       big=st.booleans())
def test_the_same_messages_as_wsproto_however_the_bytes_arrive(messages, cuts, big):
    if big:   # one message over the limit, in the middle: answered, and the rest goes on
        messages = messages[:1] + [("text", ["x" * 3000, "y" * 3000])] + messages[1:]
    data = encode(messages)
    decoder = FrameDecoder(LIMIT)
    got = []
    for piece in chunks(data, cuts):
        got += decoder.feed(piece)
    assert got == reference(data)


def masked(first: int, payload: bytes, length_byte: int | None = None) -> bytes:
    mask = os.urandom(4)
    n = len(payload) if length_byte is None else length_byte
    return bytes([first, 0x80 | n]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("data,code", [
    (bytes([0x81, 0x02]) + b"hi", 1002),                 # not masked
    (masked(0xC1, b"x"), 1002),                          # a reserved bit (no extension agreed)
    (masked(0x83, b"x"), 1002),                          # an unknown opcode
    (masked(0x09, b"x"), 1002),                          # a fragmented ping
    (masked(0x89, b"x" * 126, length_byte=126)[:8] + b"\x00" * 126, 1002),   # a long ping
    (masked(0x80, b"x"), 1002),                          # a continuation of nothing
    (masked(0x01, b"a") + masked(0x81, b"b"), 1002),     # a new message inside a fragmented one
    (masked(0x81, b"\xff\xfe"), 1007),                   # text that is not UTF-8
    (masked(0x88, b"\x03"), 1002),                       # a one-byte close payload
    (masked(0x88, (999).to_bytes(2, "big")), 1002),      # a close code nobody may send
])
def test_what_wsproto_refuses_is_refused_with_the_rfcs_code(data, code):
    with pytest.raises(ProtocolError) as err:
        FrameDecoder(LIMIT).feed(data)
    assert err.value.code == code
    with pytest.raises(Exception):
        server = FrameProtocol(client=False, extensions=[])
        server.receive_bytes(data)
        list(server.received_frames())


def test_an_oversized_message_is_dropped_as_it_arrives_not_buffered():
    client = FrameProtocol(client=True, extensions=[])
    decoder = FrameDecoder(LIMIT)
    frame = client.send_data("z" * 1_000_000, fin=True)
    got = []
    for i in range(0, len(frame), 65536):
        got += decoder.feed(frame[i:i + 65536])
        assert len(decoder._buf) < 16     # never the payload
    assert got == [(TOO_LARGE, None)]
    assert decoder.feed(client.send_data("after", fin=True)) == [(TEXT, "after")]
