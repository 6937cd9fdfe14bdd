"""Web push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291), via pywebpush.

Keys: `SB_VAPID_PRIVATE_KEY` (PEM text, a PEM file's path, or base64url raw)
and `SB_VAPID_PUBLIC_KEY`. `python -m providers.webpush` prints a fresh pair
as environment lines. Outside production, with no keys set, a pair is made
once and kept in var/vapid.json so `make run` works as it is.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies

import urllib3
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from py_vapid.utils import b64urlencode
from pywebpush import WebPusher
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models import WebPushSubscription
from providers.base import Content, Gone, Permanent, Target, Transient
from settings import ROOT, Settings

URGENCY = {"low": "low", "normal": "normal", "high": "high"}
_keys_lock = threading.Lock()
# A VAPID token lives 12 hours (RFC 8292 allows 24) and is used for 11: one signature per
# push service every 11 hours, not one per push.
VAPID_LIFETIME, VAPID_REUSE = 12 * 3600, 11 * 3600


def generate_keys() -> tuple[str, str]:
    """(private PEM, public base64url uncompressed point)."""
    v = Vapid02()
    v.generate_keys()
    return v.private_pem().decode(), public_key_b64(v)


def public_key_b64(v: Vapid02) -> str:
    raw = v.public_key.public_bytes(serialization.Encoding.X962,
                                    serialization.PublicFormat.UncompressedPoint)
    return b64urlencode(raw)


def load_vapid(settings: Settings) -> Vapid02 | None:
    # A PEM in one environment line has its newlines written as \n (as this module prints it).
    key = settings.notifications.vapid_private_key.strip().strip('"').replace("\\n", "\n")
    if not key:
        if settings.production:
            return None
        return _dev_keys()
    if key.startswith("-----BEGIN"):
        return Vapid02.from_pem(key.encode())
    if os.path.isfile(key):
        return Vapid02.from_file(key)
    return Vapid02.from_string(key)


def _dev_keys() -> Vapid02:
    path = ROOT / "var" / "vapid.json"
    with _keys_lock:
        if not path.exists():
            private, public = generate_keys()
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"private_pem": private, "public": public}))
            try:
                os.link(tmp, path)  # first writer wins across processes
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return Vapid02.from_pem(json.loads(path.read_text())["private_pem"].encode())


def vapid_public_key(settings: Settings) -> str | None:
    if settings.notifications.vapid_public_key:
        return settings.notifications.vapid_public_key
    v = load_vapid(settings)
    return public_key_b64(v) if v else None


class _Response:
    __slots__ = ("status_code", "headers", "text")

    def __init__(self, status: int, headers: Any, text: str) -> None:
        self.status_code, self.headers, self.text = status, headers, text


class _Http:
    """What pywebpush calls its requests session (`post(url, data=, headers=, timeout=)`), on
    urllib3's pool: requests' own per-call work was 0.6 of the 1.1 ms of CPU a send took
    (bench/webpush_send_cpu.py). Connections are kept alive per push service; the proxy
    variables are read once (NO_PROXY is not applied: push services are public hosts)."""

    def __init__(self) -> None:
        proxies = getproxies()
        proxy = proxies.get("https") or proxies.get("http")
        self.pool = (urllib3.ProxyManager(proxy, maxsize=8) if proxy else urllib3.PoolManager(maxsize=8))

    def post(self, url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
             timeout: float | None = None) -> _Response:
        resp = self.pool.request("POST", url, body=data, headers=headers, timeout=timeout,
                                 retries=False, redirect=False)
        return _Response(resp.status, resp.headers, resp.data.decode("utf-8", "replace"))


class WebPushProvider:
    channel = "push"
    name = "webpush"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = _Http()
        self._vapid: Vapid02 | None = None
        self._tokens: dict[str, tuple[dict[str, str], float]] = {}   # audience -> headers, reuse until

    def configured(self) -> bool:
        if self._vapid is None:
            self._vapid = load_vapid(self.settings)
        return self._vapid is not None

    def targets(self, session: Session, user_ids: Collection[str]) -> dict[str, list[Target]]:
        s = WebPushSubscription
        found: dict[str, list[Target]] = {}
        for row in session.execute(select(s.user_id, s.endpoint_hash, s.endpoint, s.p256dh, s.auth).where(
                s.user_id.in_(list(user_ids))).order_by(s.user_id, s.endpoint_hash)):
            found.setdefault(row.user_id, []).append(Target(
                "webpush:" + row.endpoint_hash, row.endpoint, {"keys": {"p256dh": row.p256dh, "auth": row.auth}}))
        return found

    def payload(self, content: Content) -> bytes:
        return json.dumps({
            "id": content.notification_id, "type": content.type, "title": content.title,
            "body": content.body, "action_url": content.action_url, "icon": content.icon_url,
            "badge": content.badge_count, "data": content.data,
        }, separators=(",", ":"), default=str).encode()

    def send(self, target: Target, content: Content) -> str | None:
        if not self.configured():
            raise Permanent("web push: no VAPID key configured")
        assert self._vapid is not None
        parts = urlsplit(target.address)
        headers = {**self._authorization(f"{parts.scheme}://{parts.netloc}")}
        headers["Urgency"] = URGENCY.get(content.priority, "normal")
        pusher = WebPusher({"endpoint": target.address, **target.extra}, requests_session=self.http)
        try:
            resp = pusher.send(self.payload(content), headers=headers, ttl=max(0, content.ttl),
                               content_encoding="aes128gcm",
                               timeout=self.settings.notifications.provider_timeout_seconds)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Transient(f"web push: {exc.__class__.__name__}: {exc}") from None
        status = resp.status_code
        if status in (200, 201, 202):
            return resp.headers.get("Location")
        message = f"web push {status}: {resp.text[:200]}"
        if status in (404, 410):
            raise Gone(message, status)
        if status == 429 or status >= 500:
            raise Transient(message, status)
        raise Permanent(message, status)

    def _authorization(self, audience: str) -> dict[str, str]:
        now = time.time()
        known = self._tokens.get(audience)
        if known is not None and now < known[1]:
            return known[0]
        assert self._vapid is not None
        headers = dict(self._vapid.sign({"sub": self.settings.notifications.vapid_subject, "aud": audience,
                                         "exp": int(now) + VAPID_LIFETIME}))
        self._tokens[audience] = (headers, now + VAPID_REUSE)
        return headers

    def forget(self, session: Session, target: Target) -> None:
        session.execute(delete(WebPushSubscription).where(
            WebPushSubscription.endpoint_hash == target.key.removeprefix("webpush:")))


if __name__ == "__main__":
    private, public = generate_keys()
    print("SB_VAPID_PRIVATE_KEY=" + json.dumps(private))
    print("SB_VAPID_PUBLIC_KEY=" + public)
