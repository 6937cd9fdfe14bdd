"""The demo page in a real browser against real web processes (Redis + PostgreSQL).

What the page shows is read from the DOM: `#state` (data-state, data-transport)
and `#events li` (data-topic, data-id, data-event). Every wait is on a DOM
state with a deadline; nothing sleeps.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support.clients import publish
from tests.support.procs import WebServer

RECONNECT_TIMEOUT = 45_000  # backoff with full jitter, capped, plus a gunicorn boot


def open_demo(page: Page, server: WebServer, topic: str, query: str = "") -> None:
    page.goto(f"{server.url}/{query}")
    expect(page.locator("#state")).to_have_attribute("data-state", "open")
    page.fill("#topic", topic)
    page.click("#subscribe button[type=submit]")
    expect(page.locator(f'#subscriptions li[data-topic="{topic}"]')).to_have_attribute(
        "data-status", "subscribed")


def shown(page: Page, topic: str) -> list[tuple[str, str]]:
    """(data-id, data-event) of the page's events of `topic`, in list order."""
    pairs = page.eval_on_selector_all(
        "#events li", "(lis, topic) => lis.filter(li => li.dataset.topic === topic)"
        ".map(li => [li.dataset.id, li.dataset.event])", topic)
    return [tuple(p) for p in pairs]


def expect_events(page: Page, topic: str, count: int, timeout: float) -> None:
    expect(page.locator(f'#events li[data-topic="{topic}"]')).to_have_count(count, timeout=timeout)


@pytest.mark.parametrize("transport", ["websocket", "sse", "poll"])
def test_events_survive_a_server_restart(page: Page, web_a, web_b, procs, stack_env, topic, transport):
    """Published on B while A (the page's server) is dead: shown after A is back, in order, once."""
    query = "" if transport == "websocket" else f"?transport={transport}"
    open_demo(page, web_a, topic, query)
    state = page.locator("#state")
    expect(state).to_have_attribute("data-transport", transport)  # websocket is the default

    ids = [publish(web_b, topic, "inventory_update", {"n": 1, "available_quantity": 9})]
    expect_events(page, topic, 1, timeout=10_000)

    web_a.kill()  # SIGKILL, whole process group: no goodbye to the browser
    expect(state).to_have_attribute("data-state", "reconnecting", timeout=15_000)

    for n in (2, 3, 4):
        ids.append(publish(web_b, topic, "inventory_update", {"n": n, "available_quantity": 9 - n}))

    procs.start(WebServer(stack_env, procs.log_dir, name="web-a2", port=web_a.port))
    expect(state).to_have_attribute("data-state", "open", timeout=RECONNECT_TIMEOUT)
    expect(state).to_have_attribute("data-transport", transport)
    expect_events(page, topic, 4, timeout=RECONNECT_TIMEOUT)

    # A live marker after the replay: any duplicate of 2..4 would have come before it.
    ids.append(publish(web_b, topic, "inventory_update", {"n": 5, "available_quantity": 4}))
    expect_events(page, topic, 5, timeout=15_000)
    assert shown(page, topic) == [(i, "inventory_update") for i in ids]
    texts = page.locator(f'#events li[data-topic="{topic}"] .data').all_text_contents()
    assert [f'"n":{n},' in t for n, t in zip(range(1, 6), texts)] == [True] * 5, texts


# No double quotes: JSON would escape them, and the page shows the data as JSON text.
XSS = ("<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>"
       "<svg onload=window.__pwned=3></svg><b id=injected>bold</b>")


def test_event_data_is_shown_as_text(page: Page, web_a, web_b, topic):
    """Markup in an event's data is text on the page and runs nothing, via B and via the page's form."""
    open_demo(page, web_a, topic)
    first = publish(web_b, topic, "inventory_update", {"note": XSS})
    item = page.locator(f'#events li[data-id="{first}"]')
    expect(item).to_have_count(1, timeout=10_000)

    # The page's own publish form (the demo's dev token is an admin's).
    page.fill("#pub-topic", topic)
    page.fill("#pub-event", "out_of_stock")
    page.fill("#pub-data", '"' + XSS + '"')
    page.click("#publish button[type=submit]")
    expect(page.locator("#pub-result")).to_contain_text("published")
    second = page.locator(f'#events li[data-topic="{topic}"][data-event="out_of_stock"]')
    expect(second).to_have_count(1, timeout=10_000)

    assert XSS in item.locator(".data").text_content()
    assert second.locator(".data").text_content() == XSS
    assert page.locator("#events img, #events script, #events svg, #injected").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_falls_back_to_sse_when_websocket_cannot_connect(page: Page, web_a, web_b, topic):
    """A WebSocket path that never upgrades (as behind a hostile proxy): the client moves to SSE."""
    open_demo(page, web_a, topic, "?ws_path=/no-websocket-here")
    expect(page.locator("#state")).to_have_attribute("data-transport", "sse")
    ids = [publish(web_b, topic, "inventory_update", {"n": n}) for n in (1, 2)]
    expect_events(page, topic, 2, timeout=10_000)
    assert shown(page, topic) == [(i, "inventory_update") for i in ids]


def test_websocket_emit_resolves_with_the_ack(page: Page, web_a, topic):
    """emit() resolves with the ack's data and rejects on a failed ack; ping round-trips."""
    open_demo(page, web_a, topic)
    result = page.evaluate("""async () => {
        const c = window.switchboardClient;
        const pong = await c.ping();
        let failure = null;
        try { await c.emit('no:such-command', {}, {timeout: 5000}); }
        catch (e) { failure = {code: e.code, message: e.message}; }
        return {pong, failure};
    }""")
    assert isinstance(result["pong"]["ts"], int)
    assert result["failure"] is not None and result["failure"]["code"], result


@pytest.mark.parametrize("transport", ["websocket", "sse", "poll"])
def test_short_lived_tokens_are_renewed_before_they_expire(page: Page, web_a, web_b, topic, transport):
    """Tokens of 4 s: the client gets the next one before exp (in place over WebSocket)."""
    query = "?token_ttl=4" + ("" if transport == "websocket" else f"&transport={transport}")
    open_demo(page, web_a, topic, query)
    state = page.locator("#state")
    ids = [publish(web_b, topic, "inventory_update", {"n": 1})]
    expect_events(page, topic, 1, timeout=10_000)
    if transport == "websocket":
        expect(state).to_have_attribute("data-refreshes", "3", timeout=20_000)   # 3 tokens later
        assert state.get_attribute("data-opens") == "1"                        # never reconnected
    else:
        expect(state).to_have_attribute("data-opens", "4", timeout=20_000)       # reopened, resumed
    ids.append(publish(web_b, topic, "inventory_update", {"n": 2}))
    expect_events(page, topic, 2, timeout=10_000)
    assert shown(page, topic) == [(i, "inventory_update") for i in ids]


def test_a_websocket_closed_at_exp_reconnects_with_a_new_token_and_resumes(page: Page, web_a, web_b, topic):
    open_demo(page, web_a, topic, "?token_ttl=3&refresh=off")
    state = page.locator("#state")
    ids = [publish(web_b, topic, "inventory_update", {"n": 1})]
    expect_events(page, topic, 1, timeout=10_000)
    expect(state).to_have_attribute("data-last-close", "4001", timeout=15_000)
    ids.append(publish(web_b, topic, "inventory_update", {"n": 2}))
    expect(state).to_have_attribute("data-opens", "2", timeout=15_000)
    expect(state).to_have_attribute("data-state", "open")
    ids.append(publish(web_b, topic, "inventory_update", {"n": 3}))
    expect_events(page, topic, 3, timeout=10_000)
    assert shown(page, topic) == [(i, "inventory_update") for i in ids]
