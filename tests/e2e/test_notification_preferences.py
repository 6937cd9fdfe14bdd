"""The notification preferences page in Chromium against real web and worker processes:
channels on and off, and browser push subscribe through the real service worker."""
from __future__ import annotations

import json
import uuid

import pytest
import requests
from playwright.sync_api import expect

from providers.webpush import generate_keys
from tests.support.clients import auth, token
from tests.support.peers import WebPushPeer
from tests.support.procs import WebServer, Worker


@pytest.fixture
def push_peer():
    private, public = generate_keys()
    peer = WebPushPeer(public).start()
    peer.vapid_private = private
    yield peer
    peer.release()
    peer.stop()


@pytest.fixture
def env(stack_env, push_peer):
    return {**stack_env, "SB_VAPID_PRIVATE_KEY": push_peer.vapid_private,
            "SB_VAPID_PUBLIC_KEY": push_peer.vapid_public_key}


@pytest.fixture
def web(procs, env):
    return procs.start(WebServer(env, procs.log_dir, name="web"))


@pytest.fixture
def context(browser, web):
    ctx = browser.new_context(permissions=["notifications"])
    yield ctx
    ctx.close()


def open_page(context, web, uid):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{web.url}/notifications/preferences#token={token(uid)}")
    expect(page.locator("#signed-in")).to_have_attribute("data-state", "ready")
    return page, errors


def prefs(web, uid):
    return requests.get(f"{web.url}/api/v1/me/preferences", timeout=10,
                        headers={"Authorization": f"Bearer {token(uid)}"}).json()


def test_channels_on_and_off(context, web):
    uid = f"pref-{uuid.uuid4().hex[:8]}"
    page, errors = open_page(context, web, uid)
    boxes = page.locator("input[name=channel]")
    expect(boxes).to_have_count(4)
    for value in ("websocket", "push", "email", "sms"):
        expect(page.locator(f"input[value={value}]")).to_be_checked()
    page.uncheck("input[value=email]")
    expect(page.locator("#saved")).to_have_attribute("data-status", "saved")
    page.uncheck("input[value=sms]")
    expect(page.locator("#saved")).to_have_attribute("data-status", "saved")
    assert prefs(web, uid)["channels"] == {"push": {"enabled": True}, "email": {"enabled": False},
                                           "sms": {"enabled": False}, "websocket": {"enabled": True}}
    page.check("input[value=sms]")
    expect(page.locator("#saved")).to_have_attribute("data-status", "saved")
    page.reload()
    expect(page.locator("#signed-in")).to_have_attribute("data-state", "ready")
    expect(page.locator("input[value=email]")).not_to_be_checked()
    expect(page.locator("input[value=sms]")).to_be_checked()
    assert not errors


def test_browser_push_subscribe_reaches_the_push_service(context, web, procs, env, push_peer):
    """The page registers /sw.js, asks for the VAPID key, subscribes and posts the
    subscription; a notification then arrives encrypted at that endpoint. Headless
    Chromium has no push service, so pushManager.subscribe() alone is replaced, at the
    browser's edge, by one returning a subscription of the local push peer."""
    procs.start(Worker(env, procs.log_dir, queues="notifications", concurrency=1))
    uid = f"push-{uuid.uuid4().hex[:8]}"
    sub = push_peer.subscription("browser")
    context.add_init_script("""
      (function (sub) {
        PushManager.prototype.subscribe = function (options) {
          window.__applicationServerKey = Array.from(new Uint8Array(options.applicationServerKey));
          window.__subscription = {endpoint: sub.endpoint, toJSON: function () { return sub; },
                                   unsubscribe: function () { window.__subscription = null; return Promise.resolve(true); }};
          return Promise.resolve(window.__subscription);
        };
        PushManager.prototype.getSubscription = function () {
          return Promise.resolve(window.__subscription || null);
        };
      })(%s);""" % json.dumps(sub))
    page, errors = open_page(context, web, uid)
    page.click("#push-subscribe")
    expect(page.locator("#push-status")).to_have_attribute("data-status", "subscribed")
    assert page.evaluate("navigator.serviceWorker.getRegistration('/').then(r => !!(r && r.active))")
    key = bytes(page.evaluate("window.__applicationServerKey"))
    assert len(key) == 65 and key[0] == 4  # the VAPID public key, decoded by the page
    resp = requests.post(f"{web.url}/api/v1/notifications", headers=auth("store", "service"), timeout=10, json={
        "user_id": uid, "type": "promotion_alert", "channels": ["push"],
        "data": {"title": "Weekend sale", "message": "Up to 30% off", "url": "/sale"}})
    assert resp.status_code == 202
    (got,) = push_peer.wait_for(lambda items: len(items) >= 1, timeout=60)
    assert got["payload"]["title"] == "Weekend sale" and got["payload"]["action_url"] == "/sale"
    page.click("#push-unsubscribe")
    expect(page.locator("#push-status")).to_have_attribute("data-status", "unsubscribed")
    again = requests.delete(f"{web.url}/api/v1/me/push-subscriptions", json={"endpoint": sub["endpoint"]},
                            headers={"Authorization": f"Bearer {token(uid)}"}, timeout=10)
    assert again.status_code == 404  # the page removed it
    assert not errors
