"""Browser fixtures: one headless Chromium per session, a fresh page per test, web processes."""
from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.support.procs import WebServer, Worker

CHROMIUM = "/usr/bin/chromium"
expect.set_options(timeout=15_000)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser() -> Browser:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, procs):
    """A page in a fresh context; uncaught page errors fail the test.

    Depends on `procs` so the page closes (and its connections with it) before
    the web processes are stopped, which then need not wait for them.
    """
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def web_a(stack_env, procs) -> WebServer:
    return procs.start(WebServer(stack_env, procs.log_dir, name="web-a"))


@pytest.fixture
def web_b(stack_env, procs) -> WebServer:
    return procs.start(WebServer(stack_env, procs.log_dir, name="web-b"))


@pytest.fixture
def topic() -> str:
    return f"product:demo-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def chat_server(procs, stack_env):
    """A web process and a routing + notifications worker, routing without its hold."""
    env = {**stack_env, "SB_ROUTING_HOLD": "0"}
    web = procs.start(WebServer(env, procs.log_dir, "web"))
    procs.start(Worker(env, procs.log_dir, queues="routing,notifications", concurrency=2))
    return web
