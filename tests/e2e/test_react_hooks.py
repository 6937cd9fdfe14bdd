"""static/switchboard-react.js in a page built with React (18, from npm) in Chromium, served
from an origin of its own as a shop's app would be: a component's feed is live while
mounted, and unmounting it unsubscribes the topic."""
from __future__ import annotations

import functools
import shutil
import threading
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from tests.support.clients import publish
from tests.support.node import NODE_DIR, node_modules
from tests.support.procs import ROOT, WebServer, free_port


@pytest.fixture(scope="module")
def app_origin(tmp_path_factory):
    """The React app's files on a static server of their own: its origin."""
    modules, root = node_modules(), tmp_path_factory.mktemp("react-app")
    for src, name in ((NODE_DIR / "react_page" / "index.html", "index.html"),
                      (NODE_DIR / "react_page" / "app.js", "app.js"),
                      (modules / "react" / "umd" / "react.development.js", "react.js"),
                      (modules / "react-dom" / "umd" / "react-dom.development.js", "react-dom.js"),
                      (ROOT / "static" / "switchboard.js", "switchboard.js"),
                      (ROOT / "static" / "switchboard-react.js", "switchboard-react.js"),
                      (ROOT / "static" / "favicon.svg", "favicon.ico")):
        shutil.copy(src, root / name)
    server = ThreadingHTTPServer(("127.0.0.1", free_port()),
                                 functools.partial(SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_react_component_follows_a_topic_while_mounted(page: Page, procs, stack_env, app_origin):
    web = procs.start(WebServer({**stack_env, "ALLOWED_ORIGINS": app_origin}, procs.log_dir, "web"))
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    topic = f"product:react-{uuid.uuid4().hex[:8]}"
    page.goto(f"{app_origin}/index.html?topic={topic}&api={web.url}")
    expect(page.locator("#state")).to_have_attribute("data-state", "open")
    expect(page.locator("#state")).to_contain_text("websocket")
    page.wait_for_function("t => window.client._topics.indexOf(t) >= 0", arg=topic)
    for n in (1, 2, 3):
        publish(web, topic, "x:tick", {"n": n})
    expect(page.locator("#feed li")).to_have_count(3)
    assert page.locator("#feed li").evaluate_all("els => els.map(e => +e.dataset.n)") == [1, 2, 3]

    page.click("#toggle")                                  # unmount the feed
    expect(page.locator("#unmounted")).to_be_visible()
    page.wait_for_function("t => window.client._topics.indexOf(t) < 0", arg=topic)
    page.click("#toggle")                                  # mount it again: subscribed anew
    page.wait_for_function("t => window.client._topics.indexOf(t) >= 0", arg=topic)
    publish(web, topic, "x:tick", {"n": 4})
    expect(page.locator("#feed li")).to_have_count(1)
    expect(page.locator("#feed li")).to_have_attribute("data-n", "4")
    assert not problems, problems
