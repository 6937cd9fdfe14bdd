"""The shop pages in Chromium against real web processes (PostgreSQL + Redis).

Each test changes state through the HTTP API (as the store's backend would)
and waits, with a deadline, for the page to show it without a reload.
"""
from __future__ import annotations

import uuid

import requests
from playwright.sync_api import Page, expect

from tests.support.clients import auth
from tests.support.procs import WebServer

SVC = auth("store", "service")


def call(server, method, path, **kw):
    res = requests.request(method, server.url + path, headers=SVC, timeout=10, **kw)
    assert res.status_code < 300, res.text
    return res.json()


def test_product_page_shows_live_stock_and_a_reservation_countdown(page: Page, procs, stack_env):
    # A short hold: the countdown runs out during the test and the units come back.
    web = procs.start(WebServer({**stack_env, "RESERVATION_TTL_SECONDS": "10"}, procs.log_dir, "web"))
    pid = f"tee-{uuid.uuid4().hex[:8]}"
    call(web, "PUT", f"/api/v1/products/{pid}/stock", json={"quantity": 5})
    page.goto(f"{web.url}/shop/products/{pid}?sub=shopper-1")
    stock = page.locator("#stock")
    expect(stock).to_have_attribute("data-available", "5")
    expect(page.locator("body")).to_have_attribute("data-live", "yes")

    call(web, "POST", f"/api/v1/products/{pid}/stock/adjust", json={"delta": -2, "change_type": "sale"})
    expect(stock).to_have_attribute("data-available", "3")  # pushed, no reload

    page.fill("#quantity", "2")
    page.click("#reserve")
    expect(page.locator("#held")).to_be_visible()
    expect(page.locator("#countdown")).to_contain_text("Held for you: 0:0")
    expect(stock).to_have_attribute("data-available", "1")
    assert 0 < int(page.locator("#countdown").get_attribute("data-seconds")) <= 10

    # Another shopper's refused hold is broadcast as out_of_stock. Four units are more than
    # the three on hand, so it is refused even if the first hold has run out by now.
    res = requests.post(f"{web.url}/api/v1/reservations", json={"product_id": pid, "quantity": 4},
                        headers=auth("shopper-2", "customer"), timeout=10)
    assert res.status_code == 409
    expect(stock).to_have_attribute("data-out-of-stock-events", "1")

    expect(page.locator("#message")).to_have_attribute("data-kind", "expired", timeout=20_000)
    expect(stock).to_have_attribute("data-available", "3")


def test_product_page_buy_now_commits_the_hold(page: Page, web_a):
    pid = f"mug-{uuid.uuid4().hex[:8]}"
    call(web_a, "PUT", f"/api/v1/products/{pid}/stock", json={"quantity": 2})
    page.goto(f"{web_a.url}/shop/products/{pid}?sub=shopper-3")
    expect(page.locator("#stock")).to_have_attribute("data-available", "2")
    page.click("#reserve")
    expect(page.locator("#held")).to_be_visible()
    page.click("#buy")
    expect(page.locator("#message")).to_have_attribute("data-kind", "bought")
    expect(page.locator("#stock")).to_have_attribute("data-available", "1")


def test_order_page_timeline_moves_live(page: Page, web_a, web_b):
    oid = f"ord-{uuid.uuid4().hex[:8]}"
    call(web_a, "PUT", f"/api/v1/orders/{oid}", json={"customer_id": "cust-7", "status": "confirmed"})
    page.goto(f"{web_a.url}/shop/orders/{oid}?sub=cust-7")
    status = page.locator("#status")
    expect(status).to_have_attribute("data-status", "confirmed")
    expect(page.locator("body")).to_have_attribute("data-live", "yes")
    for s in ("processing", "shipped", "in_transit"):
        call(web_b, "POST", f"/api/v1/orders/{oid}/status",  # through the other process
             json={"status": s, "location": {"address": f"at {s}"}})
        expect(status).to_have_attribute("data-status", s)
    items = page.locator("#timeline li")
    expect(items).to_have_count(4)
    assert [items.nth(i).get_attribute("data-status") for i in range(4)] == [
        "confirmed", "processing", "shipped", "in_transit"]
    expect(items.nth(3)).to_contain_text("at in_transit")


def test_admin_dashboard_shows_orders_alerts_and_figures_live(page: Page, web_a, web_b):
    page.goto(f"{web_a.url}/shop/admin?sub=ops-admin")
    expect(page.locator("body")).to_have_attribute("data-live", "yes")
    oid = f"ord-{uuid.uuid4().hex[:8]}"
    call(web_b, "PUT", f"/api/v1/orders/{oid}", json={"customer_id": "c", "status": "pending"})
    call(web_b, "POST", f"/api/v1/orders/{oid}/status", json={"status": "confirmed"})
    expect(page.locator(f'#feed li[data-order="{oid}"][data-status="confirmed"]')).to_have_count(1)
    call(web_b, "POST", f"/api/v1/orders/{oid}/status", json={"status": "shipped"})
    expect(page.locator(f'#feed li[data-order="{oid}"]').first).to_have_attribute("data-status", "shipped")

    pid = f"cap-{uuid.uuid4().hex[:8]}"
    call(web_b, "PUT", f"/api/v1/products/{pid}/stock", json={"quantity": 4})
    expect(page.locator(f'#alerts li[data-product="{pid}"]')).to_have_count(1)
    call(web_b, "POST", f"/api/v1/products/{pid}/stock/adjust", json={"delta": -1, "change_type": "sale"})
    expect(page.locator(f'#alerts li[data-product="{pid}"]').first).to_have_attribute("data-change", "sale")
    expect(page.locator('[data-figure="in_flight"]')).not_to_have_attribute("data-value", "")
    expect(page.locator('[data-figure="agents_online"]')).to_have_attribute("data-value", "0")
