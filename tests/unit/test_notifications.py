"""The notification pipeline on the embedded engines: actions called directly, no worker."""
from __future__ import annotations

from datetime import timedelta

from actions import notifications_pipeline as pipeline
from broadcast.events import BEFORE_FIRST
from models import Customer, DeviceToken, Notification, NotificationDelivery, User, utcnow
from providers.base import contacts_of, device_targets
from tests.support.clients import auth


def events(services, user_id):
    evs, _ = services.bus.history(f"user:{user_id}", BEFORE_FIRST)
    return [e for e in evs if e.name == "notification"]


def rows(services, nid):
    with services.session() as s:
        return {(r.channel, r.target): (r.status, r.attempts, r.error) for r in
                s.query(NotificationDelivery).filter_by(notification_id=nid)}


def post(client, user_id="u1", type="order_status_update", data=None, channels=None):
    body = {"user_id": user_id, "type": type,
            "data": data if data is not None else {"order_id": "o-1", "current_status": "in_transit"}}
    if channels is not None:
        body["channels"] = channels
    resp = client.post("/api/v1/notifications", json=body, headers=auth("store", "service"))
    assert resp.status_code == 202, resp.get_data(as_text=True)
    return resp.get_json()["id"]


def test_websocket_channel_and_inbox(client, services):
    nid = post(client, channels=["websocket"])
    pipeline.dispatch(services.session, [nid])
    (ev,) = events(services, "u1")
    item = ev.data
    assert item["id"] == nid and item["type"] == "order_status_update"
    assert item["title"] == "Order o-1: in transit"
    assert item["body"] == "Your order o-1 is now in transit."
    assert item["action_url"] == "/shop/orders/o-1" and item["read_at"] is None
    assert set(item) == {"id", "type", "title", "body", "action_url", "icon_url", "data",
                         "created_at", "read_at"}
    assert rows(services, nid) == {("websocket", ""): ("sent", 1, None)}

    inbox = client.get("/api/v1/notifications", headers=auth("u1", "customer")).get_json()
    assert inbox["unread_count"] == 1 and inbox["notifications"][0] == item
    assert client.get("/api/v1/notifications?unread=false",
                      headers=auth("u1", "customer")).get_json()["notifications"] == []
    other = client.post(f"/api/v1/notifications/{nid}/read", headers=auth("u2", "customer"))
    assert other.status_code == 404
    read = client.post(f"/api/v1/notifications/{nid}/read", headers=auth("u1", "customer"))
    assert read.status_code == 200 and read.get_json()["read_at"]
    inbox = client.get("/api/v1/notifications?unread=true", headers=auth("u1", "customer")).get_json()
    assert inbox == {"notifications": [], "unread_count": 0}


def test_dispatch_twice_sends_once(client, services):
    nid = post(client, channels=["websocket"])
    pipeline.dispatch(services.session, [nid])
    pipeline.dispatch(services.session, [nid])
    assert len(events(services, "u1")) == 1
    assert rows(services, nid) == {("websocket", ""): ("sent", 1, None)}


def test_preferences_per_channel_and_type(client, services):
    h = auth("u3", "customer")
    assert client.get("/api/v1/me/preferences", headers=h).get_json()["channels"]["push"] == {"enabled": True}
    resp = client.put("/api/v1/me/preferences", headers=h, json={
        "channels": {"websocket": {"enabled": False}},
        "types": {"promotion_alert": {"channels": {"websocket": {"enabled": True}}}}})
    assert resp.status_code == 200 and resp.get_json()["channels"]["websocket"] == {"enabled": False}
    skipped = post(client, "u3", channels=["websocket"])
    promo = post(client, "u3", "promotion_alert", {"title": "Sale", "message": "-20%"}, ["websocket"])
    critical = post(client, "u3", "payment_confirmation", {"amount": "10.00", "currency": "EUR"},
                    ["websocket"])
    pipeline.dispatch(services.session, [skipped, promo, critical])
    assert rows(services, skipped) == {("websocket", ""): ("skipped", 0, "disabled by the user's preferences")}
    assert rows(services, promo)[("websocket", "")][0] == "sent"
    assert rows(services, critical)[("websocket", "")][0] == "sent"  # critical ignores preferences
    assert sorted(e.data["type"] for e in events(services, "u3")) == ["payment_confirmation",
                                                                       "promotion_alert"]


def test_template_errors_are_422_when_saved_and_never_crash_a_send(client, services):
    admin = auth("boss", "admin")
    bad = client.put("/api/v1/notification-templates/order_status_update", headers=admin,
                     json={"title_template": "{% if %}", "body_template": "x"})
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "invalid_template"
    assert "title_template" in bad.get_json()["error"]["message"]
    assert client.put("/api/v1/notification-templates/order_status_update", headers=auth("c", "customer"),
                      json={"title_template": "x", "body_template": "y"}).status_code == 403
    # Compiles, but fails at run time or breaks out of the sandbox: the send goes on.
    ok = client.put("/api/v1/notification-templates/promo2", headers=admin, json={
        "title_template": "{{ 1 / 0 }}", "body_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "priority": "low", "ttl": 60})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert client.get("/api/v1/notification-templates/promo2", headers=admin).get_json()["ttl"] == 60
    nid = post(client, "u4", "promo2", {}, ["websocket"])
    pipeline.dispatch(services.session, [nid])
    (ev,) = events(services, "u4")
    assert ev.data["title"] == "Promo2" and ev.data["body"] == ""


def test_unknown_type_is_422_and_bad_input_400(client):
    resp = client.post("/api/v1/notifications", headers=auth("store", "service"),
                       json={"user_id": "u1", "type": "nope", "data": {}})
    assert resp.status_code == 422
    resp = client.post("/api/v1/notifications", headers=auth("store", "service"),
                       json={"user_id": "u1", "type": "chat_message", "channels": ["pigeon"]})
    assert resp.status_code == 400
    assert client.post("/api/v1/notifications", headers=auth("u1", "customer"),
                       json={"user_id": "u1", "type": "chat_message"}).status_code == 403


def test_old_notification_expires(client, services):
    nid = post(client, "u5", channels=["websocket", "push"])
    with services.session() as s:
        s.get(Notification, nid).created_at = utcnow() - timedelta(days=2)
    pipeline.dispatch(services.session, [nid])
    assert {k: v[0] for k, v in rows(services, nid).items()} == {("websocket", ""): "expired",
                                                                 ("push", ""): "expired"}
    assert events(services, "u5") == []


def test_channel_without_target_is_logged_as_skipped(client, services):
    nid = post(client, "u6", channels=["email", "sms"])
    pipeline.dispatch(services.session, [nid])
    pipeline.deliver(services.session, services.settings, nid, "email")
    pipeline.deliver(services.session, services.settings, nid, "sms")
    got = rows(services, nid)
    assert got[("email", "")][:2] == ("skipped", 0) and "no target" in got[("email", "")][2]
    assert got[("sms", "")][0] == "skipped" and "not configured" in got[("sms", "")][2]
    deliveries = client.get(f"/api/v1/notifications/{nid}/deliveries", headers=auth("boss", "admin"))
    assert {d["channel"] for d in deliveries.get_json()["deliveries"]} == {"email", "sms"}
    assert client.get(f"/api/v1/notifications/{nid}/deliveries",
                      headers=auth("u6", "customer")).status_code == 403


def test_bulk_in_batches(client, services):
    items = [{"user_id": f"b{i % 7}", "type": "promotion_alert", "data": {"title": f"P{i}"},
              "channels": ["websocket"]} for i in range(250)]
    resp = client.post("/api/v1/notifications/bulk", json={"notifications": items},
                       headers=auth("store", "service"))
    assert resp.status_code == 202
    ids = resp.get_json()["ids"]
    assert len(ids) == 250 and len(set(ids)) == 250
    for i in range(0, 250, 100):
        pipeline.dispatch(services.session, ids[i:i + 100])
    assert sum(len(events(services, f"b{u}")) for u in range(7)) == 250
    stats = client.get("/api/v1/stats", headers=auth("boss", "admin")).get_json()["notifications"]
    assert stats["deliveries_by_channel"]["websocket"]["sent"] == 250


def test_digest_counts_what_arrived_in_the_window(client, services):
    ids = [post(client, "u7", "chat_message", {"conversation_id": "c1", "text": f"hi {i}",
                                                "sender_name": "Ann"}, ["websocket"]) for i in range(3)]
    counts = pipeline.dispatch(services.session, ids)
    assert counts["digested"] == 3 and events(services, "u7") == []
    with services.session() as s:
        key = s.get(Notification, ids[0]).digest_key
    digest_id = pipeline.flush_digest(services.session, key)
    assert pipeline.flush_digest(services.session, key) == digest_id  # a second flush: same digest
    pipeline.dispatch(services.session, [digest_id], bypass_digest=True)
    pipeline.dispatch(services.session, [digest_id], bypass_digest=True)
    (ev,) = events(services, "u7")
    assert ev.data["title"] == "3 new messages" and ev.data["data"]["count"] == 3
    assert ev.data["action_url"] == "/shop/?chat=c1"


def test_single_message_in_a_window_goes_out_as_itself(client, services):
    nid = post(client, "u8", "chat_message", {"conversation_id": "c2", "text": "hello",
                                               "sender_name": "Bo"}, ["websocket"])
    pipeline.dispatch(services.session, [nid])
    with services.session() as s:
        key = s.get(Notification, nid).digest_key
    assert pipeline.flush_digest(services.session, key) == nid
    pipeline.dispatch(services.session, [nid], bypass_digest=True)
    (ev,) = events(services, "u8")
    assert ev.data["id"] == nid and ev.data["title"] == "New message from Bo" and ev.data["body"] == "hello"


def test_push_subscriptions_devices_and_vapid_key(client):
    h = auth("u9", "customer")
    key = client.get("/api/v1/webpush/vapid-public-key", headers=h)
    assert key.status_code == 200 and len(key.get_json()["public_key"]) == 87
    sub = {"endpoint": "https://push.example/abc", "keys": {"p256dh": "B" * 87, "auth": "a" * 22}}
    assert client.post("/api/v1/me/push-subscriptions", json=sub, headers=h).status_code == 201
    assert client.post("/api/v1/me/push-subscriptions", json=sub, headers=h).status_code == 200
    assert client.delete("/api/v1/me/push-subscriptions", json={"endpoint": sub["endpoint"]},
                         headers=auth("u10", "customer")).status_code == 404
    assert client.delete("/api/v1/me/push-subscriptions", json={"endpoint": sub["endpoint"]},
                         headers=h).status_code == 204
    dev = {"token": "fcm-token-123456", "platform": "android"}
    assert client.post("/api/v1/me/devices", json=dev, headers=h).status_code == 201
    assert client.post("/api/v1/me/devices", json={**dev, "platform": "fax"}, headers=h).status_code == 400
    assert client.delete("/api/v1/me/devices", json={"token": dev["token"]}, headers=h).status_code == 204


def test_notify_keeps_its_signature(app, services):
    from actions.notify import notify
    with services.session() as s:
        nid = notify(s, "u11", "inventory_alert", {"product_id": "p1", "current_quantity": 2})
    with services.session() as s:
        n = s.get(Notification, nid)
        assert n.channels == ["push", "websocket"] and n.title == ""
    pipeline.dispatch(services.session, [nid])
    (ev,) = events(services, "u11")
    assert ev.data["title"] == "Low stock: p1"


def test_resubscribing_with_new_keys_or_a_new_owner_updates_the_subscription(client):
    sub = {"endpoint": "https://push.example/re", "keys": {"p256dh": "B" * 87, "auth": "a" * 22}}
    assert client.post("/api/v1/me/push-subscriptions", json=sub, headers=auth("r1", "customer")).status_code == 201
    sub["keys"] = {"p256dh": "C" * 87, "auth": "b" * 22}
    assert client.post("/api/v1/me/push-subscriptions", json=sub, headers=auth("r2", "customer")).status_code == 200
    assert client.delete("/api/v1/me/push-subscriptions", json={"endpoint": sub["endpoint"]},
                         headers=auth("r1", "customer")).status_code == 404
    assert client.delete("/api/v1/me/push-subscriptions", json={"endpoint": sub["endpoint"]},
                         headers=auth("r2", "customer")).status_code == 204


def test_deliveries_left_queued_are_found_by_the_sweep(client, services):
    nid = post(client, "u12", channels=["email"])
    with services.session() as s:
        s.add(NotificationDelivery(notification_id=nid, channel="email", target="x@example.com",
                                   status="queued", updated_at=utcnow() - timedelta(hours=1)))
    with services.session() as s:
        assert pipeline.stuck_deliveries(s, 600) == [(nid, "email")]
        assert pipeline.stuck_deliveries(s, 7200) == []


def test_an_item_is_listed_only_once_rendered(client, services):
    nid = post(client, user_id="u7", channels=["websocket"])
    # Stored, its dispatch not yet run: nobody sees it untitled.
    assert client.get("/api/v1/notifications", headers=auth("u7", "customer")).get_json() == {
        "notifications": [], "unread_count": 0}
    pipeline.dispatch(services.session, [nid])
    inbox = client.get("/api/v1/notifications", headers=auth("u7", "customer")).get_json()
    assert inbox["unread_count"] == 1
    (item,) = inbox["notifications"]
    assert item["id"] == nid and item["title"] == "Order o-1: in transit" and item["body"]


def test_a_template_rendering_an_empty_title_falls_back_to_the_type(client, services):
    admin = auth("boss", "admin")
    resp = client.put("/api/v1/notification-templates/promotion_alert", headers=admin,
                      json={"title_template": "{{ nothing }}", "body_template": "b", "priority": "normal",
                            "ttl": 3600})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    nid = post(client, user_id="u8", type="promotion_alert", data={}, channels=["websocket"])
    pipeline.dispatch(services.session, [nid])
    (item,) = client.get("/api/v1/notifications", headers=auth("u8", "customer")).get_json()["notifications"]
    assert item["title"] == "Promotion alert"


def test_a_vapid_token_is_signed_once_per_push_service_and_renewed_before_it_expires(monkeypatch):
    import jwt

    from providers import webpush
    from settings import Settings
    private, public = webpush.generate_keys()
    provider = webpush.WebPushProvider(Settings.of(database_url="sqlite://", vapid_private_key=private,
                                                   vapid_public_key=public))
    assert provider.configured()
    clock = [1_900_000_000.0]
    monkeypatch.setattr(webpush.time, "time", lambda: clock[0])

    def claims(headers):
        fields = dict(p.split("=", 1) for p in headers["Authorization"].removeprefix("vapid ").split(","))
        return jwt.decode(fields["t"], options={"verify_signature": False})

    first = provider._authorization("https://push.example")
    assert claims(first) == {"aud": "https://push.example", "sub": provider.settings.notifications.vapid_subject,
                             "exp": 1_900_000_000 + 12 * 3600}
    clock[0] += 11 * 3600 - 1
    assert provider._authorization("https://push.example") == first
    assert claims(provider._authorization("https://other.example"))["aud"] == "https://other.example"
    clock[0] += 2    # an hour before the token would expire: a new one
    renewed = provider._authorization("https://push.example")
    assert renewed != first and claims(renewed)["exp"] == int(clock[0]) + 12 * 3600


def test_targets_of_a_batch_of_users_come_in_one_call_with_the_customer_record_first(services):
    with services.session() as s:
        s.add_all([User(id="c1", role="customer", email="user@x.test", phone="+1"),
                   User(id="c2", role="customer", email="plain@x.test"),
                   User(id="c3", role="customer")])
        s.flush()
        s.add_all([Customer(user_id="c1", email="shop@x.test"), Customer(user_id="c3", phone="+3"),
                   DeviceToken(user_id="c1", provider="fcm", token="t-b", platform="android"),
                   DeviceToken(user_id="c1", provider="fcm", token="t-a", platform="android"),
                   DeviceToken(user_id="c2", provider="apns", token="t-c", platform="ios")])
    with services.session() as s:
        assert contacts_of(s, ["c1", "c2", "c3", "nobody"]) == {
            "c1": ("shop@x.test", "+1"), "c2": ("plain@x.test", None), "c3": (None, "+3")}
        fcm = device_targets(s, {"c1", "c2"}, "fcm")
        assert list(fcm) == ["c1"] and [t.key for t in fcm["c1"]] == ["fcm:t-a", "fcm:t-b"]
