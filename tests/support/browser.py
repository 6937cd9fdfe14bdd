"""What the browser tests share: a page of its own context whose uncaught errors are kept."""
from __future__ import annotations

from playwright.sync_api import Browser, Page


def new_page(browser: Browser, **context) -> Page:
    """A page in a new context (`context`: Playwright's options, e.g. a phone's viewport);
    `page.errors` collects its uncaught errors."""
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page
