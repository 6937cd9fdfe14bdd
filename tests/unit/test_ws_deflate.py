"""permessage-deflate without context takeover, against wsproto's PerMessageDeflate as the
reference: what a client deflates (fragmented or not) our decoder inflates to the same
text; what we deflate once per event a client inflates to the frame's JSON."""
from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, Opcode

from broadcast.events import Event
from broadcast.wsframes import BINARY, TEXT, TOO_LARGE, FrameDecoder, ProtocolError, deflated_text_frame
from realtime.websocket import DEFLATE, deflate_offered, handshake_response

LIMIT = 64 * 1024
AGREED = DEFLATE.decode()


def side(client: bool) -> FrameProtocol:
    ext = PerMessageDeflate(client_no_context_takeover=True, server_no_context_takeover=True)
    ext.finalize(AGREED) if client else ext.accept(AGREED)
    return FrameProtocol(client=client, extensions=[ext])


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=2000)


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(st.lists(_text, min_size=1, max_size=3), min_size=1, max_size=6),
       cuts=st.lists(st.integers(1, 97), max_size=20))
def test_what_a_client_deflates_we_inflate(messages, cuts):
    client, wire = side(True), b""
    for parts in messages:
        for i, part in enumerate(parts):
            wire += client.send_data(part, fin=i == len(parts) - 1)
    decoder, got, pos = FrameDecoder(LIMIT, deflate=True), [], 0
    for cut in cuts + [len(wire)]:
        got += decoder.feed(wire[pos:pos + cut])
        pos += cut
    assert got == [(TEXT, "".join(parts)) for parts in messages]


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(_text, min_size=1, max_size=8))
def test_what_we_deflate_a_client_inflates(texts):
    client = side(True)
    client.receive_bytes(b"".join(deflated_text_frame(t.encode()) for t in texts))
    frames = list(client.received_frames())
    assert all(f.opcode == Opcode.TEXT and f.message_finished for f in frames)
    assert [f.payload for f in frames] == texts


def test_an_event_is_deflated_once_for_every_subscriber():
    ev = Event.build("product:p1", "inventory_update", "1-0:e", 1, {"available_quantity": 5, "note": "x" * 500})
    frame = ev.ws_deflated
    assert ev.ws_deflated is frame and frame[0] == 0xC1 and len(frame) < len(ev.ws_bytes)
    client = side(True)
    client.receive_bytes(frame)
    (got,) = list(client.received_frames())
    assert got.payload == ev.frame


def test_a_bomb_is_too_large_not_inflated_and_the_connection_goes_on():
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = packer.compress(b"a" * (50 * LIMIT)) + packer.flush(zlib.Z_SYNC_FLUSH)
    assert len(body) < LIMIT
    client = FrameProtocol(client=True, extensions=[])
    frame = bytearray(client.send_data(body[:-4], fin=True))
    frame[0] |= 0x40                       # RSV1: this message is deflated
    decoder = FrameDecoder(LIMIT, deflate=True)
    assert decoder.feed(bytes(frame)) == [(TOO_LARGE, None)]
    assert decoder.feed(side(True).send_data("still here", fin=True)) == [(TEXT, "still here")]


def test_rsv1_without_the_extension_agreed_is_a_protocol_error():
    with pytest.raises(ProtocolError) as err:
        FrameDecoder(LIMIT).feed(side(True).send_data("hello", fin=True))
    assert err.value.code == 1002
    assert FrameDecoder(LIMIT, deflate=True).feed(side(True).send_data(b"\x00\x01", fin=True)) == [(BINARY, None)]


def test_negotiation():
    assert deflate_offered("permessage-deflate; client_max_window_bits")          # Chrome's offer
    assert deflate_offered("permessage-deflate; server_max_window_bits=15")
    assert not deflate_offered("permessage-deflate; server_max_window_bits=10")  # a window we cannot share
    assert not deflate_offered("x-webkit-deflate-frame")
    assert b"Sec-WebSocket-Extensions: " + DEFLATE in handshake_response("dGhlIHNhbXBsZSBub25jZQ==", True)
    assert b"Sec-WebSocket-Extensions" not in handshake_response("dGhlIHNhbXBsZSBub25jZQ==")
