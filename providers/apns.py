"""APNs straight to Apple: the `push` channel for iOS devices registered with
`provider: apns` (PROTOCOL.md section 5).

HTTP/2 (httpx with h2) with token-based authentication: an ES256 JWT signed with the
team's `.p8` key (`kid` the key id, `iss` the team, `iat` now), made once and used
until 50 minutes old (Apple refuses one older than an hour, and one renewed more often
than every 20 minutes). One connection per process and base URL, kept open, as Apple
asks. `410 Unregistered` and `400 BadDeviceToken` remove the token.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection
from pathlib import Path

import httpx
import jwt
from sqlalchemy.orm import Session

from providers.base import Content, Gone, Permanent, Target, Transient, device_targets, forget_device
from settings import Settings

TOKEN_LIFETIME = 50 * 60
PRIORITY = {"low": "1", "normal": "5", "high": "10"}
GONE = {"Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic"}
_clients: dict[str, httpx.Client] = {}
_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_lock = threading.Lock()


def _client(base: str, timeout: float) -> httpx.Client:
    """One HTTP/2 connection per base URL and process (prior knowledge over plain http,
    which only a local stand-in speaks)."""
    with _lock:
        client = _clients.get(base)
        if client is None:
            client = httpx.Client(http2=True, http1=not base.startswith("http://"), timeout=timeout)
            _clients[base] = client
        return client


def provider_token(settings: Settings, now: float | None = None) -> str:
    """The JWT Apple authenticates this server by, renewed once 50 minutes old."""
    n = settings.notifications
    now = time.time() if now is None else now
    key = (n.apns_key_file, n.apns_key_id, n.apns_team_id)
    with _lock:
        cached = _tokens.get(key)
        if cached is not None and 0 <= now - cached[1] < TOKEN_LIFETIME:
            return cached[0]
        signing_key = Path(n.apns_key_file).read_text()
        token = jwt.encode({"iss": n.apns_team_id, "iat": int(now)}, signing_key, algorithm="ES256",
                           headers={"kid": n.apns_key_id})
        _tokens[key] = (token, now)
        return token


def _forget_token(settings: Settings) -> None:
    n = settings.notifications
    with _lock:
        _tokens.pop((n.apns_key_file, n.apns_key_id, n.apns_team_id), None)


class ApnsProvider:
    channel = "push"
    name = "apns"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def configured(self) -> bool:
        n = self.settings.notifications
        return bool(n.apns_key_file and n.apns_key_id and n.apns_team_id and n.apns_topic)

    def targets(self, session: Session, user_ids: Collection[str]) -> dict[str, list[Target]]:
        return device_targets(session, user_ids, "apns") if self.configured() else {}

    def payload(self, content: Content) -> dict:
        aps: dict = {"alert": {"title": content.title, "body": content.body}}
        if content.badge_count is not None:
            aps["badge"] = content.badge_count
        if content.sound:
            aps["sound"] = content.sound
        data = {k: v for k, v in content.data.items() if k != "aps"}
        data.update(notification_id=content.notification_id, type=content.type)
        if content.action_url:
            data["action_url"] = content.action_url
        return {"aps": aps, **data}

    def send(self, target: Target, content: Content) -> str | None:
        if not self.configured():
            raise Permanent("apns: not configured (SB_APNS_KEY_FILE, _KEY_ID, _TEAM_ID, _TOPIC)")
        n = self.settings.notifications
        headers = {"authorization": f"bearer {provider_token(self.settings)}", "apns-topic": n.apns_topic,
                   "apns-push-type": "alert", "apns-priority": PRIORITY.get(content.priority, "5"),
                   "apns-expiration": str(int(time.time()) + max(0, content.ttl)),
                   "apns-collapse-id": content.type[:64]}
        url = f"{n.apns_base.rstrip('/')}/3/device/{target.address}"
        try:
            res = _client(n.apns_base, n.provider_timeout_seconds).post(
                url, headers=headers, content=json.dumps(self.payload(content)).encode())
        except httpx.HTTPError as exc:
            raise Transient(f"apns: {exc.__class__.__name__}: {exc}") from None
        if res.status_code == 200:
            return res.headers.get("apns-id")
        try:
            reason = res.json().get("reason", "")
        except ValueError:
            reason = res.text[:200]
        if res.status_code == 410 or reason in GONE:
            raise Gone(f"apns: {res.status_code} {reason}", res.status_code)
        if reason == "ExpiredProviderToken":
            _forget_token(self.settings)   # the next attempt signs a new one
            raise Transient(f"apns: {res.status_code} {reason}", res.status_code)
        if res.status_code == 429 or res.status_code >= 500:
            raise Transient(f"apns: {res.status_code} {reason}", res.status_code)
        raise Permanent(f"apns: {res.status_code} {reason}", res.status_code)

    def forget(self, session: Session, target: Target) -> None:
        forget_device(session, "apns", target.address)
