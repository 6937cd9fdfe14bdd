"""PROTOCOL.md section 2 at the HTTP edge, for every operation of the OpenAPI document.

Each operation is taken from the document itself, so an endpoint added
later is covered by construction: a JSON body nested too deep or carrying a
lone surrogate is 400 on every operation that takes a body, a body over
1 MiB is 413 on every operation whether or not it reads one, and none of
these refusals changes any row or publishes any event.
"""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from sqlalchemy import select

from models import Base
from tests.support.clients import token

CARRIERS = json.dumps({"acme": {"url": "http://127.0.0.1:9/track", "webhook_secret": "s3cret"}})
STREAMING = {"/ws", "/events", "/poll"}   # held open: judged by the same middleware, tested apart
DEEP = "[" * 5000 + "]" * 5000
LONE_SURROGATE = '{"text": "\\ud83d", "topic": "admin", "event": "x", "status": "online"}'


def _operations() -> list[tuple[str, str, dict]]:
    # The document is the same for every app: build it once, at collection.
    import tempfile
    from app import create_app
    from models.migrate import upgrade
    from settings import Settings
    url = f"sqlite:///{tempfile.mkdtemp()}/ops.db"
    upgrade(url)
    app = create_app(Settings.of(database_url=url), background=False)
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    return [(method.upper(), path, op) for path, ops in spec["paths"].items()
            for method, op in ops.items()]


OPERATIONS = _operations()
WITH_BODY = [(m, p, op) for m, p, op in OPERATIONS
             if "application/json" in op.get("requestBody", {}).get("content", {})]


def _url(path: str) -> str:
    return path.replace("{", "").replace("}", "")   # every path id becomes a valid id (its name)


def _headers(op: dict) -> dict:
    roles = op.get("x-roles")
    return {"Authorization": f"Bearer {token('edge-user', roles[0])}"} if roles else {}


def fingerprint(app) -> str:
    """Every row of every table, and every event the bus holds."""
    services = app.extensions["switchboard"]
    digest = hashlib.sha256()
    with services.session() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                digest.update(repr(tuple(row)).encode())
    digest.update(repr(stored_events(app)).encode())
    return digest.hexdigest()


def stored_events(app) -> list[tuple[str, str]]:
    bus = app.extensions["switchboard"].bus
    return [(topic, ev.frame) for topic, kept in sorted(bus._topics.items()) for ev, _ in kept.events]


@pytest.fixture
def edge_app(make_app):
    app = make_app(carriers_json=CARRIERS)
    client = app.test_client()
    # Rows for the refusals to leave alone, and the callers' own user rows
    # (made on first sight of a token, refused request or not).
    for role in ("customer", "agent", "admin", "service"):
        client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token('edge-user', role)}"})
    svc = {"Authorization": f"Bearer {token('store', 'service')}"}
    assert client.put("/api/v1/products/p1/stock", json={"quantity": 5}, headers=svc).status_code == 200
    assert client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"},
                       headers=svc).status_code == 202
    return app


def _signed(body: bytes) -> dict:
    return {"X-Switchboard-Signature": "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()}


@pytest.mark.parametrize("method,path,op", WITH_BODY, ids=[f"{m} {p}" for m, p, _ in WITH_BODY])
@pytest.mark.parametrize("body,code", [(DEEP, "too_deep"), (LONE_SURROGATE, "invalid_string")],
                         ids=["deep", "lone-surrogate"])
def test_json_bodies_the_contract_refuses_are_400(edge_app, method, path, op, body, code):
    client = edge_app.test_client()
    before = fingerprint(edge_app)
    resp = client.open(_url(path), method=method, data=body, content_type="application/json",
                       headers=_headers(op))
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    assert resp.get_json()["error"]["code"] == code
    assert fingerprint(edge_app) == before


@pytest.mark.parametrize("body,code", [(DEEP, "too_deep"), (LONE_SURROGATE, "invalid_string"),
                                       ("NaN", "invalid_json"), ('{"a": 1e999}', "invalid_json")])
def test_a_webhook_body_is_parsed_as_strictly(edge_app, body, code):
    raw = body.encode()
    resp = edge_app.test_client().post("/api/v1/carriers/acme/webhook", data=raw,
                                       content_type="application/json", headers=_signed(raw))
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == code


@pytest.mark.parametrize("method,path,op", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_a_body_over_1_mib_is_413_on_every_operation(edge_app, method, path, op):
    client = edge_app.test_client()
    before = fingerprint(edge_app)
    big = b'{"x": "' + b"a" * (2 << 20) + b'"}'
    headers = {**_headers(op), **_signed(big)}
    resp = client.open(_url(path), method=method, data=big, content_type="application/json",
                       headers=headers)
    assert resp.status_code == 413, (resp.status_code, resp.get_data(as_text=True)[:200])
    assert resp.get_json()["error"]["code"] == "too_large"
    assert fingerprint(edge_app) == before


def test_a_body_at_the_limit_is_read(edge_app):
    svc = {"Authorization": f"Bearer {token('store', 'service')}"}
    filler = "a" * ((1 << 20) - 60)
    body = json.dumps({"topic": "admin", "event": "x", "data": filler}).encode()
    assert len(body) <= 1 << 20
    resp = edge_app.test_client().post("/api/v1/broadcast", data=body,
                                       content_type="application/json", headers=svc)
    assert resp.status_code == 202, resp.get_data(as_text=True)[:200]


def test_json_at_the_depth_limit_is_accepted_and_one_deeper_is_not(edge_app):
    svc = {"Authorization": f"Bearer {token('store', 'service')}"}
    client = edge_app.test_client()

    def nested(depth):   # the body object itself is the first level
        return '{"topic": "admin", "event": "x", "data": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    assert client.post("/api/v1/broadcast", data=nested(64), content_type="application/json",
                       headers=svc).status_code == 202
    resp = client.post("/api/v1/broadcast", data=nested(65), content_type="application/json",
                       headers=svc)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "too_deep"


def test_surrogate_pairs_are_text_not_refusals(edge_app):
    svc = {"Authorization": f"Bearer {token('store', 'service')}"}
    resp = edge_app.test_client().post(
        "/api/v1/broadcast", data='{"topic": "admin", "event": "x", "data": "\\ud83d\\ude00"}',
        content_type="application/json", headers=svc)
    assert resp.status_code == 202
    admin = [frame for topic, frame in stored_events(edge_app) if topic == "admin"]
    assert json.loads(admin[-1])["data"] == "\U0001F600"
