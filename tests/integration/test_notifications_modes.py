"""Notifications in the embedded mode (`make run`) and the digest window on a real worker."""
from __future__ import annotations

import uuid

import requests

from tests.support.clients import WsClient, auth, token
from tests.support.procs import EmbeddedServer, WebServer, Worker


def test_embedded_mode_delivers_a_notification_with_no_other_service(procs, tmp_path):
    server = procs.start(EmbeddedServer({"DATABASE_URL": f"sqlite:///{tmp_path}/embedded.db"}, procs.log_dir))
    ws = WsClient(server.url, token("emb-user"))
    resp = requests.post(f"{server.url}/api/v1/notifications", headers=auth("store"), timeout=10, json={
        "user_id": "emb-user", "type": "payment_confirmation",
        "data": {"amount": "5.00", "currency": "EUR", "order_id": "o-1"}})
    assert resp.status_code == 202
    frame = ws.until(lambda f: f.get("event") == "notification", timeout=30)
    assert frame["data"]["title"] == "Payment received" and frame["data"]["id"] == resp.json()["id"]
    page = requests.get(f"{server.url}/notifications/preferences", timeout=10)
    assert page.status_code == 200 and "preferences.js" in page.text
    key = requests.get(f"{server.url}/api/v1/webpush/vapid-public-key", timeout=10,
                       headers={"Authorization": f"Bearer {token('emb-user')}"})
    assert key.status_code == 200 and len(key.json()["public_key"]) == 87  # dev keys made once
    ws.close()


def test_digest_window_sends_one_notification_that_counts_them(procs, stack_env):
    web = procs.start(WebServer(stack_env, procs.log_dir))
    procs.start(Worker(stack_env, procs.log_dir, queues="notifications", concurrency=2))
    admin = auth("ops", "admin")
    tpl = requests.get(f"{web.url}/api/v1/notification-templates/chat_message", headers=admin, timeout=10).json()
    assert tpl["digest_seconds"] == 60  # on by default for chat messages
    tpl.pop("type")
    tpl["digest_seconds"] = 3
    assert requests.put(f"{web.url}/api/v1/notification-templates/chat_message", json=tpl,
                        headers=admin, timeout=10).status_code == 200
    uid = f"dg-{uuid.uuid4().hex[:8]}"
    ws = WsClient(web.url, token(uid))
    for i in range(4):
        assert requests.post(f"{web.url}/api/v1/notifications", headers=auth("store"), timeout=10, json={
            "user_id": uid, "type": "chat_message", "channels": ["websocket"],
            "data": {"conversation_id": "c9", "text": f"message {i}", "sender_name": "Agent"}}).status_code == 202
    got, counted = [], 0
    while counted < 4:  # four messages, counted by fewer notifications (a window edge may split them)
        frame = ws.until(lambda f: f.get("event") == "notification", timeout=30)
        got.append(frame["data"])
        counted += frame["data"]["data"].get("count", 1)
    assert counted == 4 and len(got) <= 2, got
    assert any(g["title"].endswith("new messages") for g in got), got
    inbox = requests.get(f"{web.url}/api/v1/notifications", timeout=10,
                         headers={"Authorization": f"Bearer {token(uid)}"}).json()
    assert inbox["unread_count"] == 4  # each message stays in the inbox; the digest is read
    ws.close()
