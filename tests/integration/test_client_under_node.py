"""The JS client's core under Node, as React Native runs it (WebSocket, fetch and timers
passed in the options): it connects, subscribes, sends a photo and reads it back, gets events,
loses the network, resumes without a gap or a duplicate, and renews its token, against a
real web process."""
from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from tests.support.clients import publish
from tests.support.files import PNG
from tests.support.node import NODE_DIR, node_modules
from tests.support.procs import WebServer
from tests.support.proxy import CuttableProxy



@pytest.fixture(scope="module")
def modules() -> Path:
    return node_modules()


class Lines:
    """The node process's JSON lines, waited for with a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.q: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.q.put(json.loads(line))

    def until(self, pred, timeout: float = 20) -> dict:
        while True:
            try:
                item = self.q.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"nothing matching in {timeout}s; saw {self.seen[-8:]}") from None
            self.seen.append(item)
            assert item.get("kind") != "error", item
            if pred(item):
                return item


def test_connect_events_lose_the_network_resume_without_gap_and_refresh(modules, procs, stack_env):
    web = procs.start(WebServer(stack_env, procs.log_dir, "web"))
    proxy = CuttableProxy(web.port)
    topic = f"product:rn-{uuid.uuid4().hex[:8]}"
    node = subprocess.Popen(["node", str(NODE_DIR / "client_as_react_native.js"), proxy.url, topic,
                             f"rn-{uuid.uuid4().hex[:6]}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=NODE_DIR, env={**os.environ, "SB_TEST_PNG": base64.b64encode(PNG).decode()})
    try:
        lines = Lines(node)
        lines.until(lambda x: x["kind"] == "subscribed")
        photo = lines.until(lambda x: x["kind"] == "attachment")
        assert photo == {"kind": "attachment", "content_type": "image/png", "same": True}
        for n in (1, 2, 3):
            publish(web, topic, "x:tick", {"n": n})
        lines.until(lambda x: x["kind"] == "event" and x["n"] == 3)

        proxy.cut()                                     # the phone loses its network
        lines.until(lambda x: x["kind"] == "state" and x["state"] in ("reconnecting", "connecting"))
        for n in (4, 5, 6):                             # published while it is away
            publish(web, topic, "x:tick", {"n": n})
        proxy.mend()
        lines.until(lambda x: x["kind"] == "event" and x["n"] == 6, timeout=30)
        lines.until(lambda x: x["kind"] == "refresh", timeout=30)   # its 8 s token renewed in place
        publish(web, topic, "x:tick", {"n": 7})
        lines.until(lambda x: x["kind"] == "event" and x["n"] == 7)
        got = [x["n"] for x in lines.seen if x["kind"] == "event"]
        assert got == [1, 2, 3, 4, 5, 6, 7]             # no gap, no duplicate
        assert not [x for x in lines.seen if x["kind"] == "reset"]
    finally:
        node.stdin.close()
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
        proxy.close()
