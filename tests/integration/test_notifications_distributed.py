"""The whole pipeline in the distributed mode: gunicorn web, a Celery worker on the
`notifications` queue, PostgreSQL, Redis and the local provider peers."""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from models.notifications import endpoint_hash
from providers.webpush import generate_keys
from settings import normalise_database_url
from tests.support.clients import WsClient, auth, token
from tests.support.peers import FcmPeer, SmsPeer, SmtpPeer, WebPushPeer
from tests.support.procs import WebServer, Worker


@pytest.fixture
def peers(tmp_path):
    private, public = generate_keys()
    smtp, push, fcm, sms = SmtpPeer().start(), WebPushPeer(public).start(), FcmPeer(tmp_path).start(), SmsPeer().start()
    yield {"smtp": smtp, "push": push, "fcm": fcm, "sms": sms, "vapid": (private, public)}
    push.release()
    for p in (smtp, push, fcm, sms):
        p.stop()


@pytest.fixture
def env(stack_env, peers):
    return {**stack_env, "SB_SMTP_HOST": "127.0.0.1", "SB_SMTP_PORT": str(peers["smtp"].port),
            "SB_SMS_BASE_URL": peers["sms"].url, "SB_SMS_ACCOUNT_SID": peers["sms"].sid,
            "SB_SMS_AUTH_TOKEN": peers["sms"].token, "SB_SMS_FROM": "+15550001111",
            "SB_FCM_CREDENTIALS_FILE": str(peers["fcm"].credentials_file),
            "SB_FCM_BASE_URL": peers["fcm"].url, "SB_VAPID_PRIVATE_KEY": peers["vapid"][0],
            "SB_VAPID_PUBLIC_KEY": peers["vapid"][1], "SB_PROVIDER_TIMEOUT_SECONDS": "60"}


def sql(pg_url, statement, **params):
    engine = create_engine(normalise_database_url(pg_url))
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
        rows = result.fetchall() if result.returns_rows else None
    engine.dispose()
    return rows


def deliveries(web, nid):
    resp = requests.get(f"{web.url}/api/v1/notifications/{nid}/deliveries",
                        headers=auth("ops", "admin"), timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["deliveries"]


def wait_deliveries(web, nid, pred, timeout=60):
    deadline = time.monotonic() + timeout
    rows = deliveries(web, nid)
    while not pred(rows):
        if time.monotonic() > deadline:
            raise TimeoutError(f"deliveries of {nid}: {rows}")
        time.sleep(0.1)  # polling the API for a state that has no event to wait on
        rows = deliveries(web, nid)
    return rows


def test_every_channel_end_to_end(procs, env, peers):
    pg_url = env["DATABASE_URL"]
    web = procs.start(WebServer(env, procs.log_dir))
    procs.start(Worker(env, procs.log_dir, queues="notifications", concurrency=2))
    uid = f"cust-{uuid.uuid4().hex[:8]}"
    ws = WsClient(web.url, token(uid))
    h = {"Authorization": f"Bearer {token(uid)}"}
    sub = peers["push"].subscription("ok")
    assert requests.post(f"{web.url}/api/v1/me/push-subscriptions", json=sub, headers=h, timeout=10).status_code == 201
    assert requests.post(f"{web.url}/api/v1/me/devices", json={"token": f"dev-{uid}", "platform": "ios"},
                         headers=h, timeout=10).status_code == 201
    sql(pg_url, "INSERT INTO customers (user_id, email, phone, is_vip, lifetime_value, updated_at) "
                "VALUES (:u, :e, :p, false, 0, now())", u=uid, e=f"{uid}@example.com", p="+15557654321")
    resp = requests.post(f"{web.url}/api/v1/notifications", headers=auth("store", "service"), timeout=10, json={
        "user_id": uid, "type": "order_status_update", "channels": ["websocket", "push", "email", "sms"],
        "data": {"order_id": "o-42", "current_status": "out_for_delivery"}})
    assert resp.status_code == 202
    nid = resp.json()["id"]
    frame = ws.until(lambda f: f.get("event") == "notification", timeout=30)
    assert frame["topic"] == f"user:{uid}" and frame["data"]["id"] == nid
    assert frame["data"]["title"] == "Order o-42: out for delivery"
    peers["smtp"].wait_for(lambda items: any(uid in m["rcpt_tos"][0] for m in items))
    peers["sms"].wait_for(lambda items: any(f["To"] == "+15557654321" for f in items))
    peers["fcm"].wait_for(lambda items: any(m["token"] == f"dev-{uid}" for m in items))
    peers["push"].wait_for(lambda items: any(r["payload"]["id"] == nid for r in items))
    rows = wait_deliveries(web, nid, lambda rs: len(rs) == 5 and all(r["status"] == "sent" for r in rs))
    assert sorted((r["channel"], r["attempts"]) for r in rows) == [
        ("email", 1), ("push", 1), ("push", 1), ("sms", 1), ("websocket", 1)]
    inbox = requests.get(f"{web.url}/api/v1/notifications", headers=h, timeout=10).json()
    assert inbox["unread_count"] == 1 and inbox["notifications"][0]["id"] == nid
    stats = requests.get(f"{web.url}/api/v1/stats", headers=auth("ops", "admin"), timeout=10).json()
    assert stats["notifications"]["deliveries_by_channel"]["sms"]["sent"] >= 1
    ws.close()


def pool_children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return children


def test_worker_killed_mid_send_never_sends_twice(procs, env, broker_env, peers):
    """Two web push targets: the first is sent, the worker process is SIGKILLed while the
    second hangs; the redelivered task sends the second once and leaves the first alone."""
    push = peers["push"]
    env = {**env, **broker_env}   # on Redis, then RabbitMQ: the redelivery is the broker's
    web = procs.start(WebServer(env, procs.log_dir))
    worker = procs.start(Worker(env, procs.log_dir, queues="notifications", concurrency=1))
    uid = f"kill-{uuid.uuid4().hex[:8]}"
    h = {"Authorization": f"Bearer {token(uid)}"}
    while True:  # targets are sent in endpoint-hash order: the hanging one must come second
        first, second = push.subscription("ok"), push.subscription("hang", "hang-once")
        if endpoint_hash(first["endpoint"]) < endpoint_hash(second["endpoint"]):
            break
    for sub in (first, second):
        assert requests.post(f"{web.url}/api/v1/me/push-subscriptions", json=sub, headers=h,
                             timeout=10).status_code == 201
    resp = requests.post(f"{web.url}/api/v1/notifications", headers=auth("store", "service"), timeout=10,
                         json={"user_id": uid, "type": "promotion_alert", "channels": ["push"],
                               "data": {"title": "Flash sale", "message": "now"}})
    nid = resp.json()["id"]
    assert push.held.wait(60), worker.tail()
    rows = deliveries(web, nid)
    assert sorted(r["status"] for r in rows) == ["queued", "sent"]
    (child,) = pool_children(worker.pid)
    os.kill(child, signal.SIGKILL)  # the process executing the send dies mid-request
    rows = wait_deliveries(web, nid, lambda rs: all(r["status"] == "sent" for r in rs))
    push.release()
    got = push.wait_for(lambda items: len(items) >= 2)
    by_sub = sorted(r["subscription"].split("-")[0] for r in got)
    assert by_sub == ["hang", "ok"], got  # each target received it exactly once
    first_row = next(r for r in rows if r["target"] == "webpush:" + endpoint_hash(first["endpoint"]))
    assert first_row["attempts"] == 1
    assert pool_children(worker.pid) and pool_children(worker.pid) != [child]
