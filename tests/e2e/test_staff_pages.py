"""The pages as a shop owner and their staff use them, in Chromium against real processes
(web + worker on PostgreSQL and Redis): one shell everywhere, the catalogue, the inbox,
the agent console with its customer panel, the operations dashboard."""
from __future__ import annotations

import uuid

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.support.clients import auth
from tests.support.browser import new_page

SVC = auth("store", "service")
PAGES = ["/", "/shop/", "/shop/orders", "/shop/admin", "/chat/console", "/notifications/preferences"]


@pytest.fixture
def server(chat_server):
    return chat_server


def call(server, method, path, headers=SVC, **kw):
    res = requests.request(method, server.url + path, headers=headers, timeout=10, **kw)
    assert res.status_code < 300, res.text
    return res.json() if res.content else None


def watch_console(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return problems


def test_every_page_has_the_shell_its_icon_and_holds_on_a_phone(browser: Browser, server):
    page = new_page(browser, viewport={"width": 390, "height": 844})
    problems = watch_console(page)
    for path in PAGES:
        page.goto(server.url + path)
        nav = page.locator("header.topbar nav a")
        expect(nav).to_have_text(["Shop", "Orders", "Chat", "Operations", "Notifications", "API"])
        expect(page.locator("header.topbar .brand")).to_contain_text("Switchboard Demo Shop")
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than a phone"
    assert requests.get(server.url + "/favicon.ico", timeout=10).headers["Content-Type"].startswith("image/svg")
    assert not problems, problems
    assert not page.errors, page.errors
    page.context.close()


def test_the_catalogue_shows_live_stock_badges(browser: Browser, server):
    pid = f"lamp-{uuid.uuid4().hex[:6]}"
    call(server, "PUT", f"/api/v1/products/{pid}/stock", json={"quantity": 9})
    page = new_page(browser)
    page.goto(f"{server.url}/shop/?sub=shopper-{uuid.uuid4().hex[:6]}")
    badge = page.locator(f'.product-card[data-product-id="{pid}"] .stock-badge')
    expect(badge).to_have_text("In stock")
    expect(page.locator("body")).to_have_attribute("data-live", "yes")
    call(server, "POST", f"/api/v1/products/{pid}/stock/adjust", json={"delta": -7, "change_type": "sale"})
    expect(badge).to_have_text("Only 2 left")       # pushed, no reload
    page.locator(f'.product-card[data-product-id="{pid}"]').click()
    expect(page.locator("#stock")).to_have_attribute("data-available", "2")
    expect(page.locator("#sb-widget")).to_have_count(1)   # the chat widget on product pages
    assert not page.errors, page.errors
    page.context.close()


def test_the_inbox_signs_in_shows_notifications_live_and_marks_them_read(browser: Browser, server):
    who = f"reader-{uuid.uuid4().hex[:6]}"
    oid = f"ord-{uuid.uuid4().hex[:6]}"
    call(server, "PUT", f"/api/v1/orders/{oid}", json={"customer_id": who, "status": "confirmed"})
    page = new_page(browser)
    page.goto(f"{server.url}/notifications/preferences?sub={who}")   # no token in the URL
    expect(page.locator("#signed-in")).to_have_attribute("data-state", "ready")
    expect(page.locator("body")).to_have_attribute("data-live", "yes")
    items = page.locator("#inbox li")
    expect(items).to_have_count(1)                         # the order's confirmation
    expect(items.first.locator(".title")).to_contain_text("confirmed")
    call(server, "POST", "/api/v1/orders/" + oid + "/status", json={"status": "shipped"})
    expect(items).to_have_count(2)                         # live, no reload
    item = items.first
    expect(item).to_have_class("unread")
    expect(item.locator(".title")).to_contain_text("shipped")
    expect(item.locator("time")).to_have_text("just now")
    expect(page.locator("#unread")).to_have_attribute("data-count", "2")
    item.locator(".mark-read").click()
    expect(item).to_have_class("read")
    expect(page.locator("#unread")).to_have_attribute("data-count", "1")
    page.reload()
    expect(page.locator("#inbox li").first).to_have_class("read")  # stored, not only shown
    expect(page.locator("#unread")).to_have_attribute("data-count", "1")
    page.locator("#inbox li a.open").first.click()
    expect(page).to_have_url(f"{server.url}/shop/orders/{oid}")
    expect(page.locator("#status")).to_have_attribute("data-status", "shipped")
    assert not page.errors, page.errors
    page.context.close()


def test_the_console_takes_a_waiting_chat_shows_the_customer_and_the_rating(browser: Browser, server):
    agent_id, cust = f"ag-{uuid.uuid4().hex[:6]}", f"cu-{uuid.uuid4().hex[:6]}"
    call(server, "PUT", f"/api/v1/agents/{agent_id}", headers=auth("adm", "admin"),
         json={"name": "Grace Agent", "skills": ["en"], "concurrent_limit": 2})
    call(server, "PUT", f"/api/v1/customers/{cust}",
         json={"name": "Ada Lovelace", "is_vip": True, "language": "th", "lifetime_value": 1234.5})
    oid = f"ord-{uuid.uuid4().hex[:6]}"
    call(server, "PUT", f"/api/v1/orders/{oid}", json={"customer_id": cust, "status": "confirmed"})
    conv = call(server, "POST", "/api/v1/conversations", headers=auth(cust, "customer"),
                json={"text": "Is my order on its way?", "metadata": {"initial_url": "http://shop/p/lamp"}})

    agent = new_page(browser)
    agent.goto(f"{server.url}/chat/console")                       # the sign-in
    agent.locator(f'a.agent-choice[data-agent="{agent_id}"]').click()
    expect(agent.locator("body")).to_have_attribute("data-ready", "true")
    waiting = agent.locator(f'#queue li[data-id="{conv["id"]}"]')
    expect(waiting.locator(".who")).to_contain_text("Ada Lovelace")
    expect(waiting.locator(".preview")).to_have_text("Is my order on its way?")
    waiting.click()
    expect(agent.locator("#banner")).to_contain_text("Waiting for an agent")
    expect(agent.locator("#reply-input")).to_be_disabled()
    # Busy: routing assigns nothing new to them, but they may take one themself.
    agent.select_option("#status", "busy")
    expect(agent.locator("#status")).to_have_attribute("data-current", "busy")
    agent.click("#take")
    expect(agent.locator(f'#mine li[data-id="{conv["id"]}"]')).to_have_count(1)
    expect(agent.locator("#reply-input")).to_be_enabled()
    expect(agent.locator("#take")).to_be_hidden()

    panel = agent.locator("#customer-panel")
    expect(panel).to_have_attribute("data-customer", cust)
    expect(panel.locator("#cust-vip")).to_have_text("VIP")
    expect(panel.locator("#cust-language")).to_have_text("th")
    expect(panel.locator("#cust-ltv")).to_contain_text("1,234.50")
    expect(panel.locator("#cust-page")).to_have_text("http://shop/p/lamp")
    order = panel.locator(f'#cust-orders li[data-order="{oid}"] .badge')
    expect(order).to_have_text("Confirmed")
    call(server, "POST", f"/api/v1/orders/{oid}/status", json={"status": "shipped"})
    expect(order).to_have_text("Shipped")                           # live beside the chat

    agent.locator("#reply-input").fill("It left the warehouse today.")
    agent.locator("#reply-input").press("Enter")                    # keyboard send
    expect(agent.locator('#thread li[data-mine="true"]').last).to_contain_text("left the warehouse")
    agent.click("#resolve")
    expect(agent.locator("#reply-send")).to_be_disabled()
    expect(agent.locator("#transfer")).to_be_disabled()
    expect(agent.locator("#banner")).to_contain_text("not rated it yet")
    call(server, "POST", f"/api/v1/conversations/{conv['id']}/rating", headers=auth(cust, "customer"),
         json={"score": 4})
    expect(agent.locator("#banner")).to_have_attribute("data-rating", "4")
    expect(agent.locator("#banner")).to_contain_text("★★★★☆")
    assert not agent.errors, agent.errors
    agent.context.close()


def test_take_is_refused_offline_and_past_the_agents_limit(server):
    agent_id = f"ag-{uuid.uuid4().hex[:6]}"
    call(server, "PUT", f"/api/v1/agents/{agent_id}", headers=auth("adm", "admin"),
         json={"name": "One Slot", "skills": [], "concurrent_limit": 1})
    convs = [call(server, "POST", "/api/v1/conversations", headers=auth(f"c{i}-{agent_id}", "customer"),
                  json={"text": "hi"}) for i in range(2)]
    me = auth(agent_id, "agent")

    def take(cid):
        return requests.post(f"{server.url}/api/v1/conversations/{cid}/take", headers=me, timeout=10)

    offline = take(convs[0]["id"])
    assert offline.status_code == 409 and offline.json()["error"]["code"] == "agent_unavailable"
    call(server, "PUT", "/api/v1/agents/me/status", headers=me, json={"status": "busy"})
    taken = take(convs[0]["id"])
    assert taken.status_code == 200 and taken.json()["agent_id"] == agent_id
    again = take(convs[0]["id"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_waiting"
    full = take(convs[1]["id"])
    assert full.status_code == 409 and full.json()["error"]["code"] == "agent_unavailable"
    agents = call(server, "GET", "/api/v1/agents", headers=auth("adm", "admin"))["agents"]
    assert next(a for a in agents if a["id"] == agent_id)["current_conversations"] == 1
    waiting = call(server, "GET", f"/api/v1/conversations/{convs[1]['id']}", headers=auth("adm", "admin"))
    assert waiting["status"] == "waiting" and waiting["agent_id"] is None
    for c in convs:   # the session's database is shared: leave nobody waiting for another test's agent
        call(server, "POST", f"/api/v1/conversations/{c['id']}/resolve", headers=auth("adm", "admin"))


def test_the_dashboard_draws_the_day_and_adjusts_stock(browser: Browser, server):
    pid = f"vase-{uuid.uuid4().hex[:6]}"
    call(server, "PUT", f"/api/v1/products/{pid}/stock", json={"quantity": 4})
    page = new_page(browser)
    problems = watch_console(page)
    page.goto(f"{server.url}/shop/admin")
    expect(page.locator("body")).to_have_attribute("data-live", "yes")
    for chart in ("queue", "first", "csat", "orders", "deliveries"):
        expect(page.locator(f"#chart-{chart}")).to_have_attribute("data-drawn", "true")
    expect(page.locator("#chart-queue .main-svg").first).to_be_visible()
    row = page.locator(f'#stock-table tr[data-product="{pid}"]')
    expect(row.locator(".on-hand")).to_have_text("4")
    row.locator("input").fill("3")
    row.locator("button.restock").click()
    expect(row.locator(".on-hand")).to_have_text("7")
    page.click("#demo-order")
    expect(page.locator("#orders-table tbody tr").first).to_have_attribute("data-status", "confirmed")
    assert not problems, problems
    assert not page.errors, page.errors
    page.context.close()
