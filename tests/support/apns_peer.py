"""A local stand-in for APNs: HTTP/2 (hypercorn, prior knowledge over plain TCP), checking
what Apple checks (the provider JWT's signature with the test's public key, its kid, iss
and age; the topic; the payload), answering Apple's status codes and reasons."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import jwt
from hypercorn.asyncio import serve
from hypercorn.config import Config

from tests.support.peers import _Recorder
from tests.support.procs import free_port


class ApnsPeer(_Recorder):
    def __init__(self, public_key_pem: str, key_id: str, team_id: str, topic: str) -> None:
        super().__init__()
        self.public_key, self.key_id, self.team_id, self.topic = public_key_pem, key_id, team_id, topic
        self.port = free_port()
        self.gone: set[str] = set()        # answered 410 Unregistered
        self.bad: set[str] = set()         # answered 400 BadDeviceToken
        self.tokens_seen: set[str] = set()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, scope: dict, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        if scope["method"] != "POST" or not scope["path"].startswith("/3/device/"):
            return 404, {"reason": "BadPath"}
        if scope.get("http_version") != "2":
            return 505, {"reason": "HTTP/2 only"}
        bearer = headers.get("authorization", "")
        if not bearer.startswith("bearer "):
            return 403, {"reason": "MissingProviderToken"}
        token = bearer[7:]
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.public_key, algorithms=["ES256"], options={"verify_exp": False})
        except jwt.PyJWTError:
            return 403, {"reason": "InvalidProviderToken"}
        if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            return 403, {"reason": "InvalidProviderToken"}
        if time.time() - claims.get("iat", 0) > 3600:
            return 403, {"reason": "ExpiredProviderToken"}
        if headers.get("apns-topic") != self.topic:
            return 400, {"reason": "TopicDisallowed"}
        payload = json.loads(body or b"{}")
        if not isinstance(payload.get("aps"), dict):
            return 400, {"reason": "PayloadEmpty"}
        device = scope["path"][len("/3/device/"):]
        if device in self.gone:
            return 410, {"reason": "Unregistered", "timestamp": int(time.time() * 1000)}
        if device in self.bad:
            return 400, {"reason": "BadDeviceToken"}
        self.tokens_seen.add(token)
        self.add({"device": device, "headers": headers, "payload": payload})
        return 200, {}

    async def app(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, out = self.answer(scope, headers, body)
        data = json.dumps(out).encode() if out else b""
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"apns-id", b"00000000-0000-0000-0000-000000000001"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    def start(self) -> ApnsPeer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._stop = asyncio.Event()
            config = Config()
            config.bind = [f"127.0.0.1:{self.port}"]
            config.loglevel = "WARNING"
            self._loop.call_soon(ready.set)
            self._loop.run_until_complete(serve(self.app, config, shutdown_trigger=self._stop.wait))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        # The loop runs before hypercorn has bound: wait for the port itself.
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the APNs peer did not listen on {self.port}") from None
                time.sleep(0.05)  # waiting for a port to open: there is no event to block on

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
