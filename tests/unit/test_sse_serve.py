"""An SSE stream on a socket it owns: its records, its end, and nothing after the end."""
from __future__ import annotations

import gevent
import pytest

from broadcast.events import Event, decode_cursor, reset_event
from broadcast.sse import SseConnection, head
from tests.support.sockets import owned_pair, read_to_eof


def _stream(chunked: bool = True, limit: int = 16):
    raw, peer = owned_pair()
    closed: list = []
    conn = SseConnection(None, raw, outbox_limit=limit, chunked=chunked, on_close=closed.append)
    return conn, peer, closed


def _dechunk(body: bytes) -> tuple[bytes, bool]:
    """The payload of a chunked body, and whether it ended with the zero-length chunk."""
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return out, rest == b"\r\n"
        out, body = out + rest[:n], rest[n + 2:]
    return out, False


def _tick(n: int, topic: str = "product:1") -> Event:
    return Event.build(topic, "tick", f"{1000 + n}-0:ep", 1, {"n": n})


def test_records_carry_the_stream_cursor_and_an_ephemeral_event_none():
    conn, peer, _ = _stream()
    conn.start(head(chunked=True))
    conn.send_event(_tick(1))
    conn.send_event(Event.build("product:1", "user:typing", None, 1, {}))
    conn.send_events([_tick(2), _tick(3, "product:2")])
    conn.send_event(reset_event("product:1", "2000-0:new", 1))
    conn.expire()
    raw = read_to_eof(peer)
    response, _, body = raw.partition(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 OK") and b"Content-Type: text/event-stream" in response
    assert b"Transfer-Encoding: chunked" in response
    text, ended = _dechunk(body)
    assert ended
    records = text.decode().split("\n\n")
    assert records[0] == ": open\nretry: 2000"
    ids = [decode_cursor(r.split("\n")[0][4:]) for r in records if r.startswith("id: ")]
    assert ids == [{"product:1": "1001-0:ep"}, {"product:1": "1002-0:ep"},
                   {"product:1": "1002-0:ep", "product:2": "1003-0:ep"},
                   {"product:1": "2000-0:new", "product:2": "1003-0:ep"}]
    typing = [r for r in records if "event: user:typing" in r]
    assert typing and not typing[0].startswith("id: ")
    assert records[-2] == ": token expired" and records[-1] == ""


def test_what_was_sent_before_the_head_follows_it():
    conn, peer, _ = _stream()
    conn.send_event(_tick(1))                 # a replayed event while the topics are joined
    conn.start(head(chunked=True))
    conn.expire()
    text, _ = _dechunk(read_to_eof(peer).partition(b"\r\n\r\n")[2])
    assert text.startswith(b": open\n") and b"event: tick" in text


def test_a_stream_that_falls_behind_is_ended_and_nothing_follows():
    conn, peer, closed = _stream(limit=4)
    conn.start(head(chunked=True))
    big = Event.build("product:1", "tick", "1-0:ep", 1, {"pad": "x" * 200_000})
    for _ in range(50):                        # the peer reads nothing meanwhile
        conn.send_event(big)
    assert conn.closed
    conn.send_event(_tick(9))
    text, ended = _dechunk(read_to_eof(peer).partition(b"\r\n\r\n")[2])
    assert ended and b'"n":9' not in text
    with gevent.Timeout(5):
        while not closed:
            gevent.sleep(0.01)
    assert closed == [conn]


def test_http_1_0_gets_no_chunks_and_ends_with_the_connection():
    conn, peer, _ = _stream(chunked=False)
    conn.start(head(chunked=False))
    conn.send_event(_tick(1))
    conn.expire()
    response, _, body = read_to_eof(peer).partition(b"\r\n\r\n")
    assert b"Connection: close" in response and b"chunked" not in response
    assert body.startswith(b": open\n") and body.endswith(b": token expired\n\n")


@pytest.mark.parametrize("how", ["eof", "reset"])
def test_a_client_that_goes_away_ends_the_stream(how):
    conn, peer, closed = _stream()
    conn.start(head(chunked=True))
    if how == "reset":
        peer.sendall(b"something a stream's client never sends")
    peer.close()
    with gevent.Timeout(5):
        while not closed:
            gevent.sleep(0.01)
    assert closed == [conn] and conn.closed


def test_a_stream_whose_setup_failed_leaves_no_replay_waiting():
    """A replay paced while the topics are joined waits for the client to read; if a later
    join fails the stream never starts, and `discard` lets the replay go."""
    conn, peer, closed = _stream()

    class Replay:
        topic = "product:1"
        steps = 0

        def step(self) -> bool:
            self.steps += 1
            conn.send_replayed([_tick(self.steps)])
            return True   # always more: only the connection's end stops it

    replay = Replay()
    pacing = gevent.spawn(conn._pace, replay)
    gevent.sleep(0)   # let it write its first page and wait for the client to read it
    assert replay.steps == 1 and conn._outbox
    conn.discard()
    assert pacing.join(timeout=5) is None and pacing.dead
    assert replay.steps == 1 and not closed
    peer.close()
    conn.sock.close()
