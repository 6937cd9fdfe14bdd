"""`GET /events` on the wire: served beneath Flask, it answers refusals as the contract's
JSON before the stream starts, and once started is a chunked `text/event-stream`."""
from __future__ import annotations

import socket

import pytest
import requests

from broadcast.events import encode_cursor
from tests.support.clients import SseClient, auth, token
from tests.support.procs import web_server


@pytest.fixture(scope="module")
def server(tmp_path_factory, pg_url):
    with web_server(pg_url, tmp_path_factory.mktemp("sse"), "web-sse") as web:
        yield web


@pytest.mark.parametrize("params, headers, status, code", [
    ({"topics": "product:1"}, {}, 401, "missing_token"),
    ({"topics": "product:1", "token": "not-a-jwt"}, {}, 401, "invalid_token"),
    ({"topics": "", "token": token("sse-c")}, {}, 400, "invalid_topics"),
    ({"topics": "nonsense:1", "token": token("sse-c")}, {}, 400, "invalid_topic"),
    ({"topics": "user:someone-else", "token": token("sse-c")}, {}, 403, "forbidden_topic"),
    ({"topics": "product:1", "token": token("sse-c")}, {"Last-Event-ID": "garbage"}, 400, "invalid_cursor"),
    ({"topics": "product:1", "token": token("sse-c")}, {"Origin": "https://evil.example"}, 403,
     "origin_not_allowed"),
])
def test_a_refused_stream_is_a_json_error(server, params, headers, status, code):
    resp = requests.get(f"{server.url}/events", params=params, headers=headers, timeout=10)
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["code"] == code


def test_a_stream_is_chunked_event_stream_and_resumes_from_last_event_id(server):
    topic = "product:sse-wire"
    first = SseClient(server.url, token("sse-reader"), [topic])
    assert first.response.headers["Content-Type"].startswith("text/event-stream")
    assert first.response.headers["Transfer-Encoding"] == "chunked"
    assert first.response.headers["Cache-Control"] == "no-cache"
    for n in range(3):
        assert requests.post(f"{server.url}/api/v1/broadcast", headers=auth("store", "service"),
                             json={"topic": topic, "event": "tick", "data": {"n": n}}, timeout=10).status_code == 202
    got = [first.until(lambda e: e["event"] == "tick")["frame"]["data"]["n"] for _ in range(3)]
    assert got == [0, 1, 2]
    first.close()
    # The cursor after the first event resumes with the other two, no more.
    after_first = encode_cursor({topic: _ids(server, topic)[0]})
    again = SseClient(server.url, token("sse-reader"), [topic], last_event_id=after_first)
    assert [again.until(lambda e: e["event"] == "tick")["frame"]["data"]["n"] for _ in range(2)] == [1, 2]
    again.close()


def test_http_1_0_gets_a_stream_ended_by_the_connection(server):
    host, port = server.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET /events?topics=product:1&token={token('sse-old')} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while b": open" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head and b"chunked" not in head
    assert body.startswith(b": open\n")


def test_a_head_of_events_is_refused_by_flask(server):
    assert requests.head(f"{server.url}/events", timeout=10).status_code == 400


def _ids(server, topic: str) -> list[str]:
    body = requests.get(f"{server.url}/poll", params={"topics": topic, "token": token("sse-reader"),
                                                      "cursor": encode_cursor({topic: "0-0"})},
                        timeout=10).json()
    return [e["id"] for e in body["events"]]
