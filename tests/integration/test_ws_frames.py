"""Every wrong shape of every WebSocket op gets its own error code, and the connection stays.

PROTOCOL.md section 3: a failed ack when the frame carried a `ref`, else an
error frame; never `internal_error` for what a client sent, and never a dead
connection. The table pins the codes; the fuzzer throws frames of any shape
and checks, after each one, that the connection still answers a ping.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.clients import WsClient, token
from tests.support.procs import WebServer


@pytest.fixture(scope="module")
def server(tmp_path_factory, pg_url):
    import uuid
    from tests.support.procs import Proc
    log_dir = tmp_path_factory.mktemp("frames")
    env = {"DATABASE_URL": pg_url, "REDIS_URL": "redis://127.0.0.1:6379/0",
           "REDIS_PREFIX": f"sbt{uuid.uuid4().hex[:8]}:",
           # The fuzzer sends thousands of frames: not a flood for this test.
           "SB_CLIENT_RATE": "100000", "SB_CLIENT_BURST": "100000"}
    web = WebServer(env, log_dir, "web-frames").start()
    yield web
    Proc.stop(web)


def _answer(ws: WsClient, frame: str) -> dict:
    ws.ws.send(frame)
    return ws.until(lambda f: f.get("event") in ("ack", "error"))


@pytest.mark.parametrize("frame,code", [
    ('{"op": "subscribe"}', "invalid_topic"),
    ('{"op": "subscribe", "topic": 7}', "invalid_topic"),
    ('{"op": "subscribe", "topic": null}', "invalid_topic"),
    ('{"op": "subscribe", "topic": ["product:1"]}', "invalid_topic"),
    ('{"op": "subscribe", "topic": "product:1", "since": 5}', "invalid_cursor"),
    ('{"op": "subscribe", "topic": "product:1", "since": {"a": 1}}', "invalid_cursor"),
    ('{"op": "subscribe", "topic": "product:1", "since": "yesterday"}', "invalid_cursor"),
    ('{"op": "unsubscribe"}', "invalid_topic"),
    ('{"op": "unsubscribe", "topic": true}', "invalid_topic"),
    ('{"op": "emit"}', "invalid_event"),
    ('{"op": "emit", "event": 3}', "invalid_event"),
    ('{"op": "emit", "event": "user:typing", "data": "x"}', "invalid_data"),
    ('{"op": "emit", "event": "user:typing", "data": [1]}', "invalid_data"),
    ('{"op": "emit", "event": "nope", "data": {}}', "unknown_event"),
    ('{"op": "refresh"}', "invalid_token"),
    ('{"op": "refresh", "token": 12}', "invalid_token"),
    ('{"op": "refresh", "token": "not.a.jwt"}', "invalid_token"),
    ('{"op": 5}', "invalid_op"),
    ('{"topic": "x"}', "invalid_op"),
    ('{"op": "dance"}', "unknown_op"),
])
def test_each_wrong_shape_has_its_code_with_and_without_ref(server, frame, code):
    ws = WsClient(server.url, token("shapes"))
    plain = _answer(ws, frame)
    assert plain["event"] == "error" and plain["error"]["code"] == code, plain
    with_ref = json.loads(frame)
    with_ref["ref"] = "r-1"
    ack = _answer(ws, json.dumps(with_ref))
    assert ack == {"event": "ack", "ref": "r-1", "ok": False, "error": ack["error"]}
    assert ack["error"]["code"] == code
    assert ws.request({"op": "ping"})["ok"] is True
    ws.close()


@pytest.mark.parametrize("frame,code", [
    ('{"op": "ping", "ref": "\\ud83d"}', "invalid_string"),
    ('{"op": "subscribe", "topic": "product:\\udc00", "ref": 1}', "invalid_string"),
    ('{"op": "ping", "ref": true}', "invalid_ref"),
    ('{"op": "ping", "ref": 1.5}', "invalid_ref"),
    ('{"op": "ping", "ref": {"a": 1}}', "invalid_ref"),
    ('{"op": "ping", "ref": "' + "r" * 200 + '"}', "invalid_ref"),
    ('{"op": "ping", "ref": 9007199254740993}', "invalid_ref"),
    ('[' * 5000 + ']' * 5000, "too_deep"),
    ('{"op": "emit", "event": "user:typing", "data": ' + '[' * 70 + ']' * 70 + '}', "too_deep"),
    ('{"op": "ping", "ref": NaN}', "invalid_json"),
    ('[1, 2]', "invalid_frame"),
    ('"ping"', "invalid_frame"),
])
def test_frames_whose_ref_cannot_be_echoed_get_an_error_frame(server, frame, code):
    ws = WsClient(server.url, token("refs"))
    answer = _answer(ws, frame)
    assert answer["event"] == "error" and answer["error"]["code"] == code, answer
    assert ws.request({"op": "ping"})["ok"] is True
    ws.close()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
_field = _json | st.sampled_from(["product:1", "user:fuzz", "admin", "agents", "conversation:c1",
                                  "order:o1", "0-0", "1-0", "message:send", "user:typing",
                                  "agent:available", "message:read", "conversation:join"])
_frames = st.fixed_dictionaries({}, optional={
    "op": st.sampled_from(["subscribe", "unsubscribe", "emit", "ping", "refresh", "x"]) | _json,
    "ref": _json, "topic": _field, "since": _field, "event": _field, "data": _json | _field,
    "token": _field}).map(json.dumps)
_texts = _frames | st.text(max_size=40) | st.sampled_from([
    '{"op": "ping", "ref": "\\ud800"}', '{"op":"subscribe","topic":"\\udfff"}', "[" * 3000, "{}",
    '{"op": "emit", "event": "message:send", "data": {"conversation_id": "\\ud83d"}}'])


def test_fuzzed_frames_never_get_internal_error_nor_end_the_connection(server):
    ws = WsClient(server.url, token("fuzz"))
    count = [0]

    @given(text=_texts)
    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(text):
        count[0] += 1
        ws.ws.send(text)
        ref = f"alive-{count[0]}"
        ws.send({"op": "ping", "ref": ref})
        frames = []
        while True:
            frame = ws.recv(timeout=10)
            frames.append(frame)
            if frame.get("event") == "ack" and frame.get("ref") == ref:
                break
        for frame in frames:
            error = frame.get("error") or {}
            assert error.get("code") != "internal_error", (text, frame)

    fuzz()
    assert count[0] >= 100
    ws.close()
