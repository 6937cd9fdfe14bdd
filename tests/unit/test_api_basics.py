"""Identity, the error shape, validation, OpenAPI, CORS and rate limits over HTTP."""
from __future__ import annotations

import time

import jwt
import pytest

from api.auth import issue_token
from settings import DEV_JWT_SECRET, Settings


def bearer(sub="svc", role="service", secret=DEV_JWT_SECRET, **claims):
    if claims:
        tok = jwt.encode({"sub": sub, "role": role, **claims}, secret, algorithm="HS256")
    else:
        tok = issue_token(secret, sub, role)
    return {"Authorization": f"Bearer {tok}"}


def assert_error(resp, status, code=None):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.is_json
    body = resp.get_json()
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str)
    if code:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.mark.parametrize("headers,code", [
    ({}, "missing_token"),
    ({"Authorization": "Bearer not.a.jwt"}, "invalid_token"),
    (bearer(secret="another-secret"), "invalid_token"),
    (bearer(exp=int(time.time()) - 10), "token_expired"),
    (bearer(role="overlord", exp=int(time.time()) + 86400), "invalid_token"),
    ({"Authorization": "Bearer " + jwt.encode({"sub": "x", "role": "admin"}, DEV_JWT_SECRET)},
     "invalid_token"),  # exp is required
])
def test_bad_tokens_are_401(client, headers, code):
    assert_error(client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"},
                             headers=headers), 401, code)


def test_a_token_accepted_once_is_refused_once_expired(client, monkeypatch):
    # Verified signatures are cached per token; its times are checked on every use.
    import api.auth
    headers = bearer(exp=int(time.time()) + 60)
    ok = client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"}, headers=headers)
    assert ok.status_code == 202, ok.get_data(as_text=True)
    later = time.time() + 61
    monkeypatch.setattr(api.auth.time, "time", lambda: later)
    assert_error(client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"},
                             headers=headers), 401, "token_expired")


def test_a_token_not_yet_valid_is_401(client):
    assert_error(client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"},
                             headers=bearer(exp=int(time.time()) + 600, nbf=int(time.time()) + 300)),
                 401, "invalid_token")


def test_wrong_role_is_403(client):
    assert_error(client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"},
                             headers=bearer("c1", "customer")), 403, "forbidden")


def test_user_row_created_on_first_sight(app, client):
    from models import User
    client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"},
                headers=bearer("first-seen", "admin"))
    with app.extensions["switchboard"].session() as session:
        assert session.get(User, "first-seen").role == "admin"


@pytest.mark.parametrize("body,status,code", [
    ("not json", 400, "invalid_json"),
    ("[1,2]", 400, "invalid_json"),
    ('{"topic": "admin"}', 400, "validation_error"),
    ('{"topic": "nowhere:1", "event": "x"}', 400, "invalid_topic"),
    ('{"topic": "admin", "event": "bad event name"}', 400, "validation_error"),
])
def test_bad_bodies_are_clear_json_errors(client, body, status, code):
    resp = client.post("/api/v1/broadcast", data=body, content_type="application/json",
                       headers=bearer())
    err = assert_error(resp, status, code)
    assert "Traceback" not in err["message"]


def test_oversized_body_is_413(client):
    big = '{"topic": "admin", "event": "x", "data": "' + "a" * (1 << 20) + '"}'
    assert_error(client.post("/api/v1/broadcast", data=big, content_type="application/json",
                             headers=bearer()), 413, "too_large")


def test_unknown_path_and_method_are_json(client):
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/api/v1/broadcast", headers=bearer()), 405, "method_not_allowed")


def test_broadcast_publishes_and_is_idempotent(app, client):
    bus = app.extensions["switchboard"].bus
    body = {"topic": "product:9", "event": "inventory_update", "data": {"q": 3},
            "idempotency_key": "k-1"}
    first = client.post("/api/v1/broadcast", json=body, headers=bearer())
    second = client.post("/api/v1/broadcast", json=body, headers=bearer())
    assert first.status_code == 202 and first.get_json() == second.get_json()
    events, _ = bus.history("product:9", "0-0")
    assert len(events) == 1 and events[0].data == {"q": 3}


def test_openapi_describes_the_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    op = spec["paths"]["/api/v1/broadcast"]["post"]
    assert "202" in op["responses"] and op["requestBody"]
    body_schema = spec["components"]["schemas"]["BroadcastIn"]
    assert set(body_schema["required"]) == {"topic", "event"}
    for path in ("/healthz", "/readyz", "/metrics", "/ws", "/events", "/poll"):
        assert path in spec["paths"]
    assert "Switchboard API" in client.get("/docs").get_data(as_text=True)


def test_poll_without_cursor_answers_at_once_with_a_cursor(client):
    from broadcast.events import cursor_key
    from broadcast.events import decode_cursor
    resp = client.get("/poll?topics=product:1&token=" + bearer("c1", "customer")["Authorization"][7:])
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["events"] == [] and body["reset"] == []
    assert cursor_key(decode_cursor(body["cursor"])["product:1"]) == (0, 0)


def test_poll_refuses_topics_the_caller_may_not_read(client):
    tok = bearer("c1", "customer")["Authorization"][7:]
    assert_error(client.get(f"/poll?topics=admin&token={tok}"), 403, "forbidden_topic")
    assert_error(client.get(f"/poll?topics=user:someone-else&token={tok}"), 403, "forbidden_topic")
    assert_error(client.get(f"/poll?topics=product:1&cursor=%%%&token={tok}"), 400, "invalid_cursor")
    assert_error(client.get(f"/poll?token={tok}"), 400, "invalid_topics")


def test_realtime_origin_check(client):
    tok = bearer("c1", "customer")["Authorization"][7:]
    resp = client.get(f"/poll?topics=product:1&token={tok}", headers={"Origin": "https://evil.example"})
    assert_error(resp, 403, "origin_not_allowed")
    ok = client.get(f"/poll?topics=product:1&token={tok}", headers={"Origin": "http://localhost:3000"})
    assert ok.status_code == 200


def test_cors_allows_configured_origins_only(client):
    resp = client.options("/api/v1/broadcast", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
    assert resp.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000"
    resp = client.options("/api/v1/broadcast", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_rate_limit_is_429_with_retry_after(make_app):
    client = make_app(rate_limit_user="3/minute").test_client()
    headers = bearer("a1", "admin")
    statuses = [client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"},
                            headers=headers).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    resp = client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"}, headers=headers)
    assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) > 0


def test_health_and_metrics(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    text = client.get("/metrics").get_data(as_text=True)
    for name in ("switchboard_connections", "switchboard_events_published_total",
                 "switchboard_events_delivered_total", "switchboard_delivery_latency_seconds",
                 "switchboard_http_request_seconds", "switchboard_tasks_total"):
        assert name in text


def test_readyz_names_what_failed(tmp_path):
    from app import create_app
    app = create_app(Settings.of(database_url=f"sqlite:///{tmp_path}/missing/dir/x.db"), background=False)
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["failed"] == ["database"]


def test_production_refuses_the_dev_secret():
    with pytest.raises(RuntimeError):
        Settings.from_env(env="production")
    assert Settings.from_env(database_url="postgresql://u@h/db").database_url.startswith(
        "postgresql+psycopg://")


def test_rate_limit_per_address_covers_every_user_behind_it(make_app):
    client = make_app(rate_limit_user="100/minute", rate_limit_address="4/minute").test_client()
    statuses = [client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"},
                            headers=bearer(f"a{i}", "admin")).status_code for i in range(5)]
    assert statuses == [202, 202, 202, 202, 429]


def test_openapi_types_parameters_as_the_server_checks_them(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    get_conv = spec["paths"]["/api/v1/conversations/{cid}"]["get"]
    (cid,) = get_conv["parameters"]
    assert cid["schema"]["pattern"] == "^[A-Za-z0-9_.:-]{1,64}$" and cid["schema"]["maxLength"] == 64
    listing = {p["name"]: p for p in spec["paths"]["/api/v1/conversations"]["get"]["parameters"]}
    assert listing["limit"]["schema"]["type"] == "integer"
    assert listing["status"]["schema"]["enum"] == ["active", "waiting", "resolved", "archived"]
    # Both status bodies are in the document, under their own names.
    schemas = spec["components"]["schemas"]
    assert "AgentStatusIn" in schemas and "OrderStatusIn" in schemas
    for code in ("400", "401", "403", "404", "413", "414", "429", "503"):
        assert code in get_conv["responses"]
    assert {"200", "201"} <= set(spec["paths"]["/api/v1/agents/{aid}"]["put"]["responses"])


def test_a_path_id_outside_its_pattern_is_400_before_the_view(client):
    assert_error(client.get("/api/v1/conversations/" + "x" * 65, headers=bearer()), 400, "invalid_id")
    assert_error(client.get("/api/v1/notification-templates/Not-A-Type", headers=bearer("a", "admin")),
                 400, "invalid_type")


def test_two_models_of_one_name_cannot_both_be_documented(app):
    from pydantic import BaseModel

    from api.openapi import body, build_spec

    class BroadcastIn(BaseModel):   # the name of the real body of POST /api/v1/broadcast
        x: int

    @body(BroadcastIn)
    def clash(payload):
        """A view whose body model reuses a documented name."""

    app.add_url_rule("/clash", view_func=clash, methods=["POST"])
    with pytest.raises(ValueError, match="two models are named BroadcastIn"):
        build_spec(app)


def test_bodies_are_validated_strictly(client):
    body = {"topic": "admin", "event": "x", "ephemeral": "yes"}
    assert_error(client.post("/api/v1/broadcast", json=body, headers=bearer()), 400, "validation_error")
    ok = client.put("/api/v1/products/p1/stock", json={"quantity": 5.0}, headers=bearer())
    assert ok.status_code == 200   # 5.0 is the integer 5 in JSON
    assert_error(client.put("/api/v1/products/p1/stock", json={"quantity": False}, headers=bearer()),
                 400, "validation_error")


@pytest.mark.parametrize("blank", [" \t", "\ufeff", "\x1c\x1f", "\x85", "\u3000\u2028"])
def test_a_message_of_white_space_alone_is_400_first_or_later(client, blank):
    # Each is white space to one reading of `\s` at least (ECMA's, pydantic's or str.strip()'s),
    # so the schema refuses it as the server does, and a client of the schema can tell.
    me = bearer("blank-cust", "customer")
    assert_error(client.post("/api/v1/conversations", json={"text": blank}, headers=me),
                 400, "validation_error")
    assert client.get("/api/v1/conversations", headers=me).get_json()["conversations"] == []
    opened = client.post("/api/v1/conversations", json={"text": blank + "hi"}, headers=me)
    assert opened.status_code == 201
    # and a later message of it alone is refused the same way, by the domain
    assert_error(client.post(f"/api/v1/conversations/{opened.get_json()['id']}/messages",
                             json={"content": {"text": blank}}, headers=me), 400, "empty_message")
