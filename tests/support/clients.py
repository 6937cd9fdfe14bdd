"""Test clients for the real-time endpoints: WebSocket and SSE, waiting on events with deadlines;
tokens, auth headers, and `publish` (an event through POST /api/v1/broadcast)."""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from queue import Empty, Queue

import requests
import websocket

from api.auth import issue_token
from settings import DEV_JWT_SECRET


def token(sub: str, role: str = "customer", secret: str = DEV_JWT_SECRET, ttl: int = 3600) -> str:
    return issue_token(secret, sub, role, ttl=ttl)


def auth(sub: str, role: str = "service") -> dict[str, str]:
    return {"Authorization": "Bearer " + token(sub, role)}


def publish(server, topic: str, event: str, data) -> str:
    """POST /api/v1/broadcast to `server` (anything with a `url`) as an admin; returns the event's id."""
    res = requests.post(f"{server.url}/api/v1/broadcast", json={"topic": topic, "event": event, "data": data},
                        headers=auth("e2e-admin", "admin"), timeout=10)
    assert res.status_code == 202, res.text
    return res.json()["id"]


class WsClient:
    def __init__(self, base_url: str, tok: str, timeout: float = 10) -> None:
        url = base_url.replace("http://", "ws://") + f"/ws?token={tok}"
        self.ws = websocket.create_connection(url, timeout=timeout)
        self.frames: list[dict] = []
        self._ref = 0

    def send(self, obj: dict) -> None:
        self.ws.send(json.dumps(obj))

    def recv(self, timeout: float = 10) -> dict:
        # Frame by frame, control frames included: websocket-client's recv() answers a ping
        # and reads on with a fresh socket timeout, so server pings could hold it forever.
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame in {timeout:.1f}s; last: {self.frames[-3:]}")
            self.ws.settimeout(left)
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"no frame in {timeout:.1f}s; last: {self.frames[-3:]}") from None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise websocket.WebSocketConnectionClosedException("closed by the server")
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                break
        frame = json.loads(data)
        self.frames.append(frame)
        return frame

    def until(self, pred: Callable[[dict], bool], timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching frame in {timeout}s; got {self.frames[-5:]}")
            frame = self.recv(left)
            if pred(frame):
                return frame

    def request(self, op: dict, timeout: float = 10) -> dict:
        self._ref += 1
        ref = f"r{self._ref}"
        self.send({**op, "ref": ref})
        return self.until(lambda f: f.get("event") == "ack" and f.get("ref") == ref, timeout)

    def subscribe(self, topic: str, since: str | None = None) -> dict:
        op = {"op": "subscribe", "topic": topic}
        if since is not None:
            op["since"] = since
        ack = self.request(op)
        assert ack["ok"], ack
        return ack["data"]

    def events(self, name: str, count: int, timeout: float = 10) -> list[dict]:
        got: list[dict] = []
        while len(got) < count:
            got.append(self.until(lambda f: f.get("event") == name, timeout))
        return got

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass


class SseClient:
    """Reads an SSE stream on a thread; parsed events arrive on a queue."""

    def __init__(self, base_url: str, tok: str, topics: list[str], last_event_id: str | None = None) -> None:
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.response = requests.get(f"{base_url}/events", params={"topics": ",".join(topics), "token": tok},
                                     headers=headers, stream=True, timeout=(5, 60))
        self.response.raise_for_status()
        self.queue: Queue = Queue()
        self.last_id: str | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event: dict = {}
        try:
            for raw in self.response.iter_lines(decode_unicode=True):
                if raw is None:
                    continue
                if raw == "":
                    if "data" in event:
                        self.queue.put(event)
                    event = {}
                elif raw.startswith(":"):
                    continue
                else:
                    key, _, value = raw.partition(":")
                    event[key] = value[1:] if value.startswith(" ") else value
        except Exception:  # noqa: BLE001 - closed by the test
            pass
        self.queue.put(None)

    def next(self, timeout: float = 10) -> dict:
        try:
            item = self.queue.get(timeout=timeout)
        except Empty:
            raise TimeoutError(f"no SSE event in {timeout}s") from None
        if item is None:
            raise ConnectionError("SSE stream ended")
        if "id" in item:
            self.last_id = item["id"]
        item["frame"] = json.loads(item["data"])
        return item

    def until(self, pred: Callable[[dict], bool], timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            item = self.next(max(0.01, deadline - time.monotonic()))
            if pred(item):
                return item

    def close(self) -> None:
        # Shut the socket first: closing the response alone waits for the
        # reader thread's next chunk (up to a heartbeat away).
        conn = getattr(self.response.raw, "_connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.response.close()
