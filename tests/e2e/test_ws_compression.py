"""Chromium and a web process agree on permessage-deflate (without context takeover) and
events arrive intact, compressed; with compression turned off nothing is agreed."""
from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page

from tests.support.clients import publish, token
from tests.support.procs import WebServer

OPEN_AND_LISTEN = """async ([url, topic]) => {
  const ws = new WebSocket(url);
  window.frames_ = [];
  ws.onmessage = (m) => window.frames_.push(JSON.parse(m.data));
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  ws.send(JSON.stringify({op: 'subscribe', topic, ref: 's1'}));
  window.ws_ = ws;
  return ws.extensions;
}"""


@pytest.mark.parametrize("compression", ["1", "0"])
def test_chromium_agrees_and_events_arrive_whole(page: Page, procs, stack_env, compression):
    web = procs.start(WebServer({**stack_env, "SB_WS_COMPRESSION": compression}, procs.log_dir, "web"))
    page.goto(f"{web.url}/healthz")                       # the web process's own origin
    topic = f"product:deflate-{uuid.uuid4().hex[:8]}"
    url = web.url.replace("http://", "ws://") + f"/ws?token={token('deflate-1')}"
    agreed = page.evaluate(OPEN_AND_LISTEN, [url, topic])
    if compression == "1":
        assert agreed == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    else:
        assert agreed == ""
    page.wait_for_function("() => window.frames_.some(f => f.event === 'ack' && f.ref === 's1' && f.ok)")
    text = "ünïcödé " + "x" * 3000
    publish(web, topic, "x:big", {"text": text})
    page.wait_for_function("() => window.frames_.some(f => f.event === 'x:big')")
    got = page.evaluate("window.frames_.find(f => f.event === 'x:big').data.text")
    assert got == text
    # and what the browser deflates back is inflated: an op the server answers
    page.evaluate("window.ws_.send(JSON.stringify({op: 'ping', ref: 'p1', pad: 'y'.repeat(2000)}))")
    page.wait_for_function("() => window.frames_.some(f => f.ref === 'p1')")
