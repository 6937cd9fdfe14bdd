"""The HTTP edge on a real gunicorn: bodies however framed, oversized request lines and headers.

What the test client cannot show: a chunked body (no Content-Length) is
judged like any other, and the errors gunicorn itself answers before the app
runs (a request line or a header too long) are JSON as well.
"""
from __future__ import annotations

import http.client
import json

import pytest
import requests

from tests.support.clients import auth, token
from tests.support.procs import web_server


@pytest.fixture(scope="module")
def server(tmp_path_factory, pg_url):
    with web_server(pg_url, tmp_path_factory.mktemp("edges"), "web-edges") as web:
        yield web


def _chunks(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b"a" * n
        sent += n


def _send_chunked(server, method: str, path: str, body, headers: dict) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={**headers, "Content-Type": "application/json"},
                     encode_chunked=True)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _operations(server) -> list[tuple[str, str, dict]]:
    spec = requests.get(f"{server.url}/api/v1/openapi.json", timeout=10).json()
    return [(m.upper(), p.replace("{", "").replace("}", ""), op)
            for p, ops in spec["paths"].items() for m, op in ops.items()]


def test_a_chunked_body_over_1_mib_is_413_on_every_operation(server):
    ops = _operations(server)
    assert len(ops) > 50
    for method, path, op in ops:
        roles = op.get("x-roles")
        headers = {"Authorization": f"Bearer {token('edge', roles[0])}"} if roles else {}
        status, resp_headers, body = _send_chunked(server, method, path, _chunks(2 << 20), headers)
        assert status == 413, (method, path, status, body[:200])
        assert resp_headers["Content-Type"].startswith("application/json")
        assert json.loads(body)["error"]["code"] == "too_large"


def test_a_chunked_body_within_the_limit_is_read(server):
    body = json.dumps({"topic": "admin", "event": "chunked", "data": {"n": 1}}).encode()
    status, _, raw = _send_chunked(server, "POST", "/api/v1/broadcast",
                                   iter([body[:10], body[10:]]), auth("store", "service"))
    assert status == 202, raw
    assert json.loads(raw)["id"]


def test_a_chunked_deep_body_is_400(server):
    deep = ("[" * 5000 + "]" * 5000).encode()
    status, _, raw = _send_chunked(server, "POST", "/api/v1/broadcast", iter([deep]),
                                   auth("store", "service"))
    assert status == 400 and json.loads(raw)["error"]["code"] == "too_deep"


def test_a_huge_token_is_json_in_the_header_and_in_the_query(server):
    huge = "a" * 100_000
    resp = requests.get(f"{server.url}/api/v1/notifications",
                        headers={"Authorization": f"Bearer {huge}"}, timeout=10)
    assert resp.status_code == 431
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["code"] == "headers_too_large"
    resp = requests.get(f"{server.url}/poll?topics=admin&token={huge}", timeout=10)
    assert resp.status_code == 414
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["code"] == "uri_too_long"
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
