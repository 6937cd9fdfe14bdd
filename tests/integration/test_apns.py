"""APNs straight to Apple, against a local HTTP/2 stand-in that verifies the provider JWT
with the test's public key: the alert, the headers, tokens Apple reports gone removed, the
JWT renewed before it is an hour old."""
from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from actions import notifications_pipeline as pipeline
from models import DeviceToken, NotificationDelivery, User
from providers import apns
from settings import Settings
from tests.support.apns_peer import ApnsPeer
from tests.support.clients import auth

KEY_ID, TEAM, TOPIC = "ABC123DEFG", "TEAM123456", "com.example.shop"


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path_factory.mktemp("apns") / f"AuthKey_{KEY_ID}.p8"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return path, public


@pytest.fixture
def peer(signing_key):
    p = ApnsPeer(signing_key[1], KEY_ID, TEAM, TOPIC).start()
    yield p
    p.stop()


@pytest.fixture
def app(make_app, peer, signing_key):
    return make_app(apns_key_file=str(signing_key[0]), apns_key_id=KEY_ID, apns_team_id=TEAM,
                    apns_topic=TOPIC, apns_base=peer.url, provider_timeout_seconds=5.0)


def test_an_alert_over_http2_and_tokens_apple_reports_gone_removed(client, services, peer):
    with services.session() as s:
        s.merge(User(id="i1", role="customer", name="Ada"))
    for token, provider in (("a" * 64, "apns"), ("b" * 64, "apns"), ("c" * 64, "apns"), ("fcm-token-1", "fcm")):
        r = client.post("/api/v1/me/devices", headers=auth("i1", "customer"),
                        json={"token": token, "platform": "ios", "provider": provider})
        assert r.status_code == 201 and r.get_json()["provider"] == provider
    peer.gone.add("b" * 64)
    peer.bad.add("c" * 64)
    sent = client.post("/api/v1/notifications", headers=auth("store", "service"), json={
        "user_id": "i1", "type": "order_status_update", "channels": ["push"],
        "data": {"order_id": "o-5", "current_status": "shipped"}})
    nid = sent.get_json()["id"]
    pipeline.deliver(services.session, services.settings, nid, "push")
    (got,) = peer.wait_for(lambda items: len(items) >= 1)
    assert got["device"] == "a" * 64
    assert got["payload"]["aps"]["alert"] == {"title": "Order o-5: shipped",
                                              "body": "Your order o-5 is now shipped."}
    assert got["payload"]["notification_id"] == nid and got["payload"]["action_url"] == "/shop/orders/o-5"
    assert got["headers"]["apns-topic"] == TOPIC and got["headers"]["apns-push-type"] == "alert"
    assert got["headers"]["apns-priority"] == "5"
    with services.session() as s:
        rows = {r.target: r.status for r in s.query(NotificationDelivery).filter_by(notification_id=nid)}
        tokens = sorted((d.token, d.provider) for d in s.query(DeviceToken).filter_by(user_id="i1"))
    assert rows["apns:" + "a" * 64] == "sent"
    assert rows["apns:" + "b" * 64] == "failed" and rows["apns:" + "c" * 64] == "failed"
    assert tokens == [("a" * 64, "apns"), ("fcm-token-1", "fcm")]   # 410 and BadDeviceToken removed


def test_the_provider_token_is_signed_once_and_renewed_before_an_hour(signing_key):
    settings = Settings.of(apns_key_file=str(signing_key[0]), apns_key_id=KEY_ID, apns_team_id=TEAM,
                           apns_topic=TOPIC)
    start = 2_000_000_000.0
    first = apns.provider_token(settings, now=start)
    assert apns.provider_token(settings, now=start + 49 * 60) == first
    renewed = apns.provider_token(settings, now=start + 51 * 60)
    assert renewed != first
    for token, iat in ((first, start), (renewed, start + 51 * 60)):
        assert jwt.get_unverified_header(token)["kid"] == KEY_ID
        assert jwt.decode(token, signing_key[1], algorithms=["ES256"],
                          options={"verify_iat": False}) == {"iss": TEAM, "iat": int(iat)}
