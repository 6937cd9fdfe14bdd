"""Each channel's provider against its real protocol peer on this machine (SMTP, web push
with VAPID + aes128gcm, FCM through firebase-admin, Twilio-shaped SMS). The pipeline's
actions run in the test process; the providers talk real SMTP and HTTP."""
from __future__ import annotations

import pytest

from actions import notifications_pipeline as pipeline
from models import Customer, DeviceToken, NotificationDelivery, User, WebPushSubscription
from providers.webpush import generate_keys
from tests.support.clients import auth
from tests.support.peers import FcmPeer, SmsPeer, SmtpPeer, WebPushPeer


@pytest.fixture(scope="module")
def vapid():
    return generate_keys()


@pytest.fixture
def peers(tmp_path, vapid):
    smtp, push, fcm, sms = SmtpPeer().start(), WebPushPeer(vapid[1]).start(), FcmPeer(tmp_path).start(), SmsPeer().start()
    yield {"smtp": smtp, "push": push, "fcm": fcm, "sms": sms}
    push.release()
    for p in (smtp, push, fcm, sms):
        p.stop()


@pytest.fixture
def app(make_app, peers, vapid):
    return make_app(smtp_host="127.0.0.1", smtp_port=peers["smtp"].port,
                    sms_base_url=peers["sms"].url, sms_account_sid=peers["sms"].sid,
                    sms_auth_token=peers["sms"].token, sms_from="+15550001111",
                    fcm_credentials_file=str(peers["fcm"].credentials_file), fcm_base_url=peers["fcm"].url,
                    vapid_private_key=vapid[0], vapid_public_key=vapid[1], provider_timeout_seconds=5.0)


def make_user(services, uid, email=None, phone=None):
    with services.session() as s:
        s.merge(User(id=uid, role="customer", name="Ada"))
        s.flush()
        s.merge(Customer(user_id=uid, email=email, phone=phone))


def send(client, uid, channels, type="order_status_update", data=None):
    resp = client.post("/api/v1/notifications", headers=auth("store", "service"), json={
        "user_id": uid, "type": type, "channels": channels,
        "data": data or {"order_id": "o-9", "current_status": "shipped", "tracking_number": "TN1"}})
    assert resp.status_code == 202
    return resp.get_json()["id"]


def status(services, nid):
    with services.session() as s:
        return {(r.channel, r.target): (r.status, r.attempts, r.error)
                for r in s.query(NotificationDelivery).filter_by(notification_id=nid)}


def test_email_over_smtp_with_text_and_html(client, services, peers):
    make_user(services, "m1", email="ada@example.com")
    nid = send(client, "m1", ["email"])
    pipeline.dispatch(services.session, [nid])
    pipeline.deliver(services.session, services.settings, nid, "email")
    pipeline.deliver(services.session, services.settings, nid, "email")  # a duplicate task
    (mail,) = peers["smtp"].wait_for(lambda items: len(items) >= 1)
    assert mail["rcpt_tos"] == ["ada@example.com"]
    msg = mail["message"]
    assert msg["Subject"] == "Order o-9: shipped" and msg["X-Switchboard-Notification"] == nid
    assert "Your order o-9 is now shipped." in msg.get_body(("plain",)).get_content()
    assert "<b>shipped</b>" in msg.get_body(("html",)).get_content()
    assert status(services, nid)[("email", "ada@example.com")][:2] == ("sent", 1)
    assert len(peers["smtp"].items) == 1


def test_email_refused_recipient_is_failed_with_the_reply(client, services, peers):
    make_user(services, "m2", email="bounce@example.com")
    nid = send(client, "m2", ["email"])
    pipeline.deliver(services.session, services.settings, nid, "email")
    st, attempts, error = status(services, nid)[("email", "bounce@example.com")]
    assert (st, attempts) == ("failed", 1) and "550" in error


def test_web_push_vapid_and_aes128gcm_and_gone_endpoints_removed(client, services, peers, vapid):
    push = peers["push"]
    h = auth("w1", "customer")
    ok = push.subscription("ok")
    gone = push.subscription("gone", "gone")
    missing = push.subscription("missing", "missing")
    for sub in (ok, gone, missing):
        assert client.post("/api/v1/me/push-subscriptions", json=sub, headers=h).status_code == 201
    tpl = client.put("/api/v1/notification-templates/promotion_alert", headers=auth("boss", "admin"), json={
        "title_template": "{{ title }}", "body_template": "{{ message }}", "action_url": "{{ url }}",
        "icon_url": "/static/icon.png", "priority": "high", "ttl": 1200})
    assert tpl.status_code == 200
    nid = send(client, "w1", ["push"], "promotion_alert",
               {"title": "Sale", "message": "Everything -20%", "url": "/sale"})
    pipeline.deliver(services.session, services.settings, nid, "push")
    (got,) = push.wait_for(lambda items: len(items) >= 1)
    assert got["payload"]["title"] == "Sale" and got["payload"]["body"] == "Everything -20%"
    assert got["payload"]["action_url"] == "/sale" and got["payload"]["id"] == nid
    assert got["claims"]["sub"].startswith("mailto:") and got["urgency"] == "high"
    assert 0 < int(got["ttl"]) <= 1200
    rows = status(services, nid)
    assert sorted(s for s, _, _ in rows.values()) == ["failed", "failed", "sent"]
    assert all("removed" in e for s, _, e in rows.values() if s == "failed")
    with services.session() as s:
        left = [w.endpoint for w in s.query(WebPushSubscription).filter_by(user_id="w1")]
    assert left == [ok["endpoint"]]


def test_a_batch_on_one_channel_sends_each_target_once_even_run_twice(client, services, peers):
    """`deliver_many`: several notifications to several users' targets in one task, a target
    refused for good among them; run again (a duplicate task) it sends nothing more."""
    push = peers["push"]
    subs = {}
    for uid in ("b1", "b2"):
        subs[uid] = push.subscription(f"ok-{uid}")
        assert client.post("/api/v1/me/push-subscriptions", json=subs[uid], headers=auth(uid, "customer")) \
            .status_code == 201
    flaky = push.subscription("flaky", "missing")   # 404 from the push service: failed for good
    assert client.post("/api/v1/me/push-subscriptions", json=flaky, headers=auth("b2", "customer")).status_code == 201
    ids = [send(client, uid, ["push"], "promotion_alert", {"title": f"T{i}"})
           for i, uid in enumerate(["b1", "b2", "b1"])]
    outcome = pipeline.deliver_many(services.session, services.settings, ids, "push")
    assert sorted(outcome) == sorted(ids)
    again = pipeline.deliver_many(services.session, services.settings, ids, "push")   # a duplicate task
    assert again == {nid: {} for nid in ids}
    got = push.wait_for(lambda items: len(items) >= 3)
    assert sorted(g["subscription"].split("-")[1] for g in got) == ["b1", "b1", "b2"]
    rows = [status(services, nid) for nid in ids]
    assert [sorted(s for s, _, _ in r.values()) for r in rows] == [["sent"], ["failed", "sent"], ["sent"]]
    assert all(attempts == 1 for r in rows for _, attempts, _ in r.values())


def test_fcm_through_firebase_admin_and_unregistered_tokens_removed(client, services, peers):
    fcm = peers["fcm"]
    with services.session() as s:
        s.add_all([DeviceToken(user_id="f1", token="device-android-1", platform="android"),
                   DeviceToken(user_id="f1", token="unregistered-ios-1", platform="ios"),
                   DeviceToken(user_id="f1", token="bad-token-1", platform="web")])
    nid = send(client, "f1", ["push"], "payment_confirmation",
               {"amount": "12.50", "currency": "EUR", "order_id": "o-7"})
    pipeline.deliver(services.session, services.settings, nid, "push")
    (msg,) = fcm.wait_for(lambda items: len(items) >= 1)
    assert msg["token"] == "device-android-1"
    assert msg["notification"] == {"title": "Payment received",
                                   "body": "We received your payment of 12.50 EUR for order o-7."}
    assert msg["android"]["priority"] == "high" and msg["android"]["ttl"].endswith("s")
    assert msg["apns"]["headers"]["apns-priority"] == "10"
    assert msg["webpush"]["headers"]["Urgency"] == "high"
    assert msg["data"]["notification_id"] == nid and msg["data"]["order_id"] == "o-7"
    rows = status(services, nid)
    assert rows[("push", "fcm:device-android-1")][0] == "sent"
    assert rows[("push", "fcm:unregistered-ios-1")][0] == "failed"
    assert "UnregisteredError" in rows[("push", "fcm:unregistered-ios-1")][2]
    assert rows[("push", "fcm:bad-token-1")][0] == "failed"
    with services.session() as s:
        tokens = sorted(d.token for d in s.query(DeviceToken).filter_by(user_id="f1"))
    assert tokens == ["bad-token-1", "device-android-1"]  # only the unregistered one is removed


def test_sms_in_twilio_shape(client, services, peers):
    make_user(services, "s1", phone="+15551234567")
    make_user(services, "s2", phone="+15005550001")
    ok = send(client, "s1", ["sms"])
    bad = send(client, "s2", ["sms"])
    pipeline.deliver(services.session, services.settings, ok, "sms")
    pipeline.deliver(services.session, services.settings, bad, "sms")
    (form,) = peers["sms"].wait_for(lambda items: len(items) >= 1)
    assert form["To"] == "+15551234567" and form["From"] == "+15550001111"
    assert form["Body"].startswith("Order o-9: shipped: Your order o-9 is now shipped.")
    st, _, _ = status(services, ok)[("sms", "+15551234567")]
    assert st == "sent"
    st, _, error = status(services, bad)[("sms", "+15005550001")]
    assert st == "failed" and "21211" in error


def test_transient_failure_is_retried_and_then_sent_once(client, services, peers, make_app):
    make_user(services, "r1", email="r1@example.com")
    nid = send(client, "r1", ["email"])
    down = make_app(smtp_host="127.0.0.1", smtp_port=1)  # nothing listens there
    with pytest.raises(pipeline.RetryLater):
        pipeline.deliver(services.session, down.extensions["switchboard"].settings, nid, "email")
    st, attempts, error = status(services, nid)[("email", "r1@example.com")]
    assert (st, attempts) == ("queued", 1) and "Connection" in error
    pipeline.deliver(services.session, services.settings, nid, "email")
    pipeline.deliver(services.session, services.settings, nid, "email")
    peers["smtp"].wait_for(lambda items: len(items) >= 1)
    assert status(services, nid)[("email", "r1@example.com")][:2] == ("sent", 2)
    assert len(peers["smtp"].items) == 1
