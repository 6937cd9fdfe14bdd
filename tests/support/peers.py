"""Local stand-ins for the notification providers, speaking their real protocols.

- `SmtpPeer`: a real SMTP server (aiosmtpd) keeping what it receives.
- `WebPushPeer`: a push service: checks the VAPID JWT (ES256, aud, exp, sub,
  the key in `k=`) and decrypts the aes128gcm body with the subscription's
  private key, as a browser would.
- `FcmPeer`: Google's OAuth token endpoint (checks the service account's
  signed assertion) and FCM v1 `messages:send`, answering FCM's real success
  and error bodies.
- `SmsPeer`: Twilio's Messages resource (basic auth, form body, its JSON
  success and error shapes).

Waiting is on a condition with a deadline, never a sleep.
"""
from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import http_ece
import jwt
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.procs import free_port


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Recorder:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.cond = threading.Condition()

    def add(self, item: Any) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait_for(self, pred, timeout: float = 30) -> list[Any]:
        """Wait until pred(items) is true; returns the items."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.items):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met in {timeout}s; got {self.items!r:.2000}")
                self.cond.wait(left)
            return list(self.items)


class SmtpPeer(_Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        peer = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
                if address.startswith("bounce@"):
                    return "550 5.1.1 No such user here"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                msg = message_from_bytes(envelope.content, policy=policy.default)
                peer.add({"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos), "message": msg})
                return "250 Message accepted for delivery"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> "SmtpPeer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


class _HttpPeer(_Recorder):
    """A threaded HTTP server; subclasses implement handle(method, path, headers, body)."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, out = peer.handle(self.command, self.path, self.headers, body)
                data = out if isinstance(out, bytes) else json.dumps(out).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PUT = _any  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict, Any]:
        raise NotImplementedError


class WebPushPeer(_HttpPeer):
    """Endpoints `/push/<name>`; behaviour per name: `ok` (201), `gone` (410), `missing` (404),
    `hang-once` (the first request is held until `release()` and never answered)."""

    def __init__(self, vapid_public_key: str, decrypt: bool = True) -> None:
        super().__init__()
        self.vapid_public_key = vapid_public_key
        # A real push service only forwards the encrypted body; decrypting (the browser's part)
        # is for tests that read the payload, and off for a benchmark that shares the machine.
        self.decrypt = decrypt
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.held = threading.Event()
        self.release_event = threading.Event()
        self._seen_hang: set[str] = set()

    def subscription(self, name: str, behaviour: str = "ok") -> dict[str, Any]:
        """A browser's PushSubscription JSON for a new endpoint (its private key kept here)."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        endpoint = f"{self.url}/push/{name}-{uuid.uuid4().hex[:8]}"
        p256dh = b64u(key.public_key().public_bytes(serialization.Encoding.X962,
                                                    serialization.PublicFormat.UncompressedPoint))
        self.subscriptions[endpoint.rsplit("/", 1)[1]] = {"key": key, "auth": auth, "behaviour": behaviour}
        return {"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": p256dh, "auth": b64u(auth)}}

    def handle(self, method, path, headers, body):
        name = path.rsplit("/", 1)[1]
        sub = self.subscriptions.get(name)
        if sub is None:
            return 404, {}, b""
        scheme, _, params = (headers.get("Authorization") or "").partition(" ")
        fields = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if scheme.lower() != "vapid" or fields.get("k") != self.vapid_public_key:
            return 401, {}, {"reason": "bad vapid scheme or key"}
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(fields["k"]))
        try:
            claims = jwt.decode(fields["t"], pub, algorithms=["ES256"], audience=self.url,
                                options={"require": ["exp", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            return 403, {}, {"reason": f"vapid: {exc}"}
        if headers.get("Content-Encoding") != "aes128gcm":
            return 400, {}, {"reason": "not aes128gcm"}
        payload = json.loads(http_ece.decrypt(body, private_key=sub["key"], auth_secret=sub["auth"],
                                              version="aes128gcm")) if self.decrypt else None
        record = {"subscription": name, "payload": payload, "claims": claims,
                  "ttl": headers.get("TTL"), "urgency": headers.get("Urgency")}
        if sub["behaviour"] == "hang-once" and name not in self._seen_hang:
            self._seen_hang.add(name)
            self.held.set()
            self.release_event.wait(120)
            return 503, {}, b""  # nobody is listening any more
        if sub["behaviour"] == "gone":
            return 410, {}, b"push subscription has unsubscribed or expired."
        if sub["behaviour"] == "missing":
            return 404, {}, b""
        self.add(record)
        return 201, {"Location": f"{self.url}/m/{uuid.uuid4().hex}"}, b""

    def release(self) -> None:
        self.release_event.set()


class FcmPeer(_HttpPeer):
    """OAuth token endpoint at /token and FCM v1 at /v1/projects/<id>/messages:send.
    Tokens starting with `unregistered` get FCM's UNREGISTERED error, `bad` INVALID_ARGUMENT."""

    PROJECT = "switchboard-test"

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_email = f"fcm@{self.PROJECT}.iam.gserviceaccount.com"
        self.access_token = "ya29." + uuid.uuid4().hex
        self.credentials_file = tmp / "service-account.json"
        self.credentials_file.write_text(json.dumps({
            "type": "service_account", "project_id": self.PROJECT, "private_key_id": uuid.uuid4().hex,
            "private_key": self.key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()).decode(),
            "client_email": self.client_email, "client_id": "1234567890",
            "token_uri": f"{self.url}/token"}))

    def handle(self, method, path, headers, body):
        if path == "/token":
            form = parse_qs(body.decode())
            try:
                claims = jwt.decode(form["assertion"][0], self.key.public_key(), algorithms=["RS256"],
                                    audience="https://oauth2.googleapis.com/token")
            except (KeyError, jwt.PyJWTError) as exc:
                return 400, {}, {"error": "invalid_grant", "error_description": str(exc)}
            assert claims["iss"] == self.client_email
            return 200, {"Content-Type": "application/json"}, {
                "access_token": self.access_token, "expires_in": 3600, "token_type": "Bearer"}
        if path != f"/v1/projects/{self.PROJECT}/messages:send":
            return 404, {}, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
        if headers.get("Authorization") != f"Bearer {self.access_token}":
            return 401, {}, {"error": {"code": 401, "message": "Request had invalid authentication "
                                       "credentials.", "status": "UNAUTHENTICATED"}}
        message = json.loads(body)["message"]
        token = message["token"]
        if token.startswith("unregistered"):
            return 404, {"Content-Type": "application/json"}, {"error": {
                "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                             "errorCode": "UNREGISTERED"}]}}
        if token.startswith("bad"):
            return 400, {"Content-Type": "application/json"}, {"error": {
                "code": 400, "message": "The registration token is not a valid FCM registration token",
                "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                             "errorCode": "INVALID_ARGUMENT"}]}}
        self.add(message)
        return 200, {"Content-Type": "application/json"}, {
            "name": f"projects/{self.PROJECT}/messages/0:{uuid.uuid4().int % 10**16}"}


class SmsPeer(_HttpPeer):
    """Twilio's POST /2010-04-01/Accounts/<sid>/Messages.json. The magic number
    +15005550001 is refused as invalid (code 21211), as Twilio's test credentials do."""

    def __init__(self, sid: str = "AC" + "0" * 32, token: str = "secret-token") -> None:
        super().__init__()
        self.sid, self.token = sid, token

    def handle(self, method, path, headers, body):
        if method != "POST" or path != f"/2010-04-01/Accounts/{self.sid}/Messages.json":
            return 404, {}, {"code": 20404, "message": "The requested resource was not found",
                             "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}
        expected = "Basic " + base64.b64encode(f"{self.sid}:{self.token}".encode()).decode()
        if headers.get("Authorization") != expected:
            return 401, {}, {"code": 20003, "message": "Authenticate",
                             "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("To") == "+15005550001":
            return 400, {}, {"code": 21211, "message": f"The 'To' number {form['To']} is not a valid "
                             "phone number.", "more_info": "https://www.twilio.com/docs/errors/21211",
                             "status": 400}
        sid = "SM" + uuid.uuid4().hex
        self.add(form)
        return 201, {"Content-Type": "application/json"}, {
            "sid": sid, "account_sid": self.sid, "to": form.get("To"), "from": form.get("From"),
            "body": form.get("Body"), "status": "queued", "num_segments": "1",
            "uri": f"/2010-04-01/Accounts/{self.sid}/Messages/{sid}.json"}


class LinePeer(_HttpPeer):
    """LINE's push API (POST /v2/bot/message/push): the channel access token as bearer,
    `to` a user id and 1-5 messages; answers LINE's error bodies. A user id listed in
    `refuse` is answered 400 as LINE answers an unknown user; `fail_next` answers 500 that
    many times first."""

    def __init__(self, token: str = "line-token") -> None:
        super().__init__()
        self.token, self.refuse, self.fail_next = token, set(), 0
        self.contents: dict[str, bytes] = {}   # what users sent, by message id (the content API)

    def handle(self, method, path, headers, body):
        if method == "GET" and path.startswith("/v2/bot/message/") and path.endswith("/content"):
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 401, {}, {"message": "Authentication failed."}
            found = self.contents.get(path.split("/")[4])
            if found is None:
                return 404, {}, {"message": "Not found"}
            return 200, {"Content-Type": "application/octet-stream"}, found
        if method != "POST" or path != "/v2/bot/message/push":
            return 404, {}, {"message": "Not found"}
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, {"message": "Authentication failed. Confirm that the access token in the "
                             "authorization header is valid."}
        data = json.loads(body or b"{}")
        messages = data.get("messages")
        if not isinstance(data.get("to"), str) or not isinstance(messages, list) or not 1 <= len(messages) <= 5 \
                or any(m.get("type") != "text" or not m.get("text") for m in messages):
            return 400, {}, {"message": "The request body has 1 error(s)"}
        if self.fail_next:
            self.fail_next -= 1
            return 500, {}, {"message": "An error occurred in the server"}
        if data["to"] in self.refuse:
            return 400, {}, {"message": "Failed to send messages"}
        self.add(data)
        return 200, {"Content-Type": "application/json", "x-line-request-id": uuid.uuid4().hex}, {"sentMessages": [
            {"id": str(uuid.uuid4().int)[:18], "quoteToken": uuid.uuid4().hex}]}


class MessengerPeer(_HttpPeer):
    """Messenger's Send API (POST /v19.0/me/messages?access_token=): the page token, a
    recipient id, a text message; answers Graph API's error bodies (an unknown recipient
    is code 100, subcode 2018001)."""

    def __init__(self, token: str = "page-token") -> None:
        super().__init__()
        self.token, self.refuse = token, set()
        self.files: dict[str, bytes] = {}   # what users sent, as Meta's CDN serves it (/cdn/{name})

    def handle(self, method, path, headers, body):
        route, _, query = path.partition("?")
        if method == "GET" and route.startswith("/cdn/"):
            found = self.files.get(route[len("/cdn/"):])
            return (200, {"Content-Type": "image/jpeg"}, found) if found is not None else \
                (404, {}, {"error": {"message": "URL signature expired"}})
        if method != "POST" or route != "/v19.0/me/messages":
            return 404, {}, {"error": {"message": "Unknown path components", "type": "OAuthException", "code": 2500}}
        if parse_qs(query).get("access_token") != [self.token]:
            return 401, {}, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException",
                                       "code": 190}}
        data = json.loads(body or b"{}")
        recipient = (data.get("recipient") or {}).get("id")
        if not recipient or not (data.get("message") or {}).get("text"):
            return 400, {}, {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}}
        if recipient in self.refuse:
            return 400, {}, {"error": {"message": "(#100) No matching user found", "type": "OAuthException",
                                       "code": 100, "error_subcode": 2018001}}
        self.add(data)
        return 200, {"Content-Type": "application/json"}, {"recipient_id": recipient,
                                                           "message_id": "m_" + uuid.uuid4().hex}
