"""The customer widget and the agent console in two Chromium contexts, end to end
(web process + routing worker on Redis and PostgreSQL). Every wait is on a DOM state."""
from __future__ import annotations

import re
import uuid

import requests
from playwright.sync_api import Browser, Page, expect

from tests.support.clients import auth
from tests.support.files import PDF, PNG
from tests.support.browser import new_page

XSS = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script><b id=injected>hi</b>"


def open_chat(browser: Browser, web) -> tuple[Page, Page, object]:
    """An agent online in the console, a customer's first message routed to them and opened."""
    agent_id, cust_id = f"ag-{uuid.uuid4().hex[:6]}", f"cu-{uuid.uuid4().hex[:6]}"
    r = requests.put(f"{web.url}/api/v1/agents/{agent_id}", headers=auth("adm", "admin"),
                     json={"name": "Ada", "skills": ["en"], "concurrent_limit": 3}, timeout=10)
    assert r.status_code in (200, 201)

    agent = new_page(browser)
    customer = new_page(browser)
    agent.goto(f"{web.url}/chat/console?agent={agent_id}")
    expect(agent.locator("body")).to_have_attribute("data-ready", "true")
    expect(agent.locator("#conn")).to_have_attribute("data-state", "open")
    agent.select_option("#status", "online")
    expect(agent.locator("#status")).to_have_attribute("data-current", "online")

    customer.goto(f"{web.url}/chat/shop?customer={cust_id}")
    widget = customer.locator("#sb-widget")
    expect(widget).to_have_attribute("data-ready", "true")
    customer.click("#sbw-toggle")
    customer.fill("#sbw-input", "Hello, where is my parcel?")
    customer.click("#sbw-send")
    first = customer.locator('#sbw-messages li[data-mine="true"]').first
    expect(first).to_contain_text("Hello, where is my parcel?")
    expect(first).to_have_attribute("data-status", "sent")

    # routed to the agent by the worker: it shows up in "my conversations"
    mine = agent.locator("#mine li")
    expect(mine).to_have_count(1, timeout=30_000)
    expect(mine.locator(".unread")).to_have_attribute("data-count", "1")
    # delivered when the agent's console got it (even before opening it)
    expect(first).to_have_attribute("data-status", "delivered")
    mine.first.click()
    expect(agent.locator("#thread li[data-mine=false]").first).to_contain_text("where is my parcel")
    expect(first).to_have_attribute("data-status", "read")  # the agent opened it
    expect(agent.locator("#presence")).to_have_attribute("data-online", "true")
    return agent, customer, first


def test_customer_and_agent_chat_with_typing_and_read_ticks(browser: Browser, procs, chat_server):
    agent, customer, first = open_chat(browser, chat_server)
    try:
        # typing, both ways
        customer.locator("#sbw-input").press_sequentially("abc")
        expect(agent.locator("#typing")).to_have_attribute("data-visible", "true")
        customer.fill("#sbw-input", "")
        agent.locator("#reply-input").press_sequentially("Let me check")
        expect(customer.locator("#sbw-typing")).to_have_attribute("data-visible", "true")
        agent.click("#reply-send")
        reply = agent.locator('#thread li[data-mine="true"]').last
        expect(customer.locator('#sbw-messages li[data-mine="false"]').last).to_contain_text("Let me check")
        expect(reply).to_have_attribute("data-status", "read")  # the widget is open

        # markup is text and runs nothing, on both sides
        customer.fill("#sbw-input", XSS)
        customer.click("#sbw-send")
        shown = agent.locator('#thread li[data-mine="false"]').last
        expect(shown).to_contain_text("<script>")
        assert shown.locator(".text").text_content() == XSS
        own = customer.locator('#sbw-messages li[data-mine="true"]').last
        expect(own.locator(".sbw-text")).to_have_text(XSS)
        for page in (agent, customer):
            assert page.locator("#injected, #thread img, #sbw-messages img, #thread script").count() == 0
            assert page.evaluate("window.__pwned") is None

        # a private note stays in the console
        agent.check("#private")
        agent.fill("#reply-input", "customer seems upset")
        agent.click("#reply-send")
        expect(agent.locator('#thread li[data-private="true"]')).to_have_count(1)
        agent.uncheck("#private")

        # resolve, then the customer rates
        agent.click("#resolve")
        expect(customer.locator("#sbw-rating")).to_have_attribute("data-visible", "true")
        customer.click('#sbw-rating button[data-score="5"]')
        expect(customer.locator("#sbw-rating")).to_have_attribute("data-rated", "5")
        assert "customer seems upset" not in customer.content()
        assert not agent.errors and not customer.errors, (agent.errors, customer.errors)
    finally:
        agent.context.close()
        customer.context.close()


def test_typing_a_private_note_never_tells_the_customer(browser: Browser, procs, chat_server):
    agent, customer, _ = open_chat(browser, chat_server)
    try:
        # Every typing indicator the customer's widget is shown, with when.
        customer.evaluate("""() => {
            window.__typing = [];
            new MutationObserver(() => window.__typing.push(Date.now())).observe(
                document.getElementById('sbw-typing'), {attributeFilter: ['data-visible']});
        }""")
        agent.check("#private")
        agent.locator("#reply-input").press_sequentially("customer seems upset")
        agent.click("#reply-send")
        expect(agent.locator('#thread li[data-private="true"]')).to_have_count(1)
        agent.uncheck("#private")
        reply_started = agent.evaluate("Date.now()")
        agent.locator("#reply-input").press_sequentially("One moment")
        expect(customer.locator("#sbw-typing")).to_have_attribute("data-visible", "true")
        shown = customer.evaluate("window.__typing")
        # A typing event sent for the note would have come first (and, within the
        # server's throttle, would have been the only one).
        assert shown and min(shown) >= reply_started, (shown, reply_started)
        assert "customer seems upset" not in customer.content()
        assert not agent.errors and not customer.errors, (agent.errors, customer.errors)
    finally:
        agent.context.close()
        customer.context.close()


def test_photos_and_files_go_both_ways_and_show_in_place(browser: Browser, procs, chat_server, tmp_path):
    agent, customer, _ = open_chat(browser, chat_server)
    photo, invoice, program = tmp_path / "แตก.png", tmp_path / "invoice.pdf", tmp_path / "setup.exe"
    photo.write_bytes(PNG)
    invoice.write_bytes(PDF)
    program.write_bytes(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + bytes(100))
    try:
        customer.set_input_files("#sbw-file", str(photo))
        mine = customer.locator('#sbw-messages li[data-mine="true"] .sbw-att img').last
        expect(mine).to_have_attribute("alt", "แตก.png")
        shown = agent.locator('#thread li[data-mine="false"] .attachment img').last
        expect(shown).to_have_attribute("alt", "แตก.png")
        for page, img in ((customer, mine), (agent, shown)):   # decoded from bytes fetched with the viewer's token
            page.wait_for_function("img => img.complete && img.naturalWidth === 1", arg=img.element_handle())

        agent.set_input_files("#attach-file", str(invoice))
        link = customer.locator('#sbw-messages li[data-mine="false"] .sbw-att a').last
        expect(link).to_contain_text("invoice.pdf")
        expect(link).to_have_attribute("href", re.compile(r"^blob:"))
        with customer.expect_download() as download:
            link.click()
        assert download.value.suggested_filename == "invoice.pdf"
        assert open(download.value.path(), "rb").read() == PDF

        customer.set_input_files("#sbw-file", str(program))
        expect(customer.locator("#sbw-typing")).to_contain_text("Not sent:")
        expect(agent.locator("#thread li .attachment")).to_have_count(2)
        assert not agent.errors and not customer.errors, (agent.errors, customer.errors)
    finally:
        agent.context.close()
        customer.context.close()
