"""The README's pictures: the console with a chat open and the dashboard, from `make run`'s
embedded mode with its demo data, in headless Chromium.

    .venv/bin/python scripts/screenshots.py      # writes docs/console.png and docs/dashboard.png
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.clients import auth  # noqa: E402
from tests.support.procs import free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = Path(tempfile.mkdtemp()) / "demo.db"
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": f"sqlite:///{db}", "SB_ROUTING_HOLD": "0"}
    env.pop("REDIS_URL", None)
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the server is starting
        ada = auth("demo-customer", "customer")
        requests.post(f"{url}/api/v1/reservations", headers=ada, timeout=10,
                      json={"product_id": "demo-cap", "quantity": 1}).raise_for_status()
        requests.post(f"{url}/api/v1/conversations", headers=ada, timeout=10, json={
            "text": "Hi! Has my order demo-1001 shipped yet? I'd also like the cap in my basket.",
            "metadata": {"initial_url": f"{url}/shop/products/demo-cap", "language": "en"}}).raise_for_status()
        requests.post(f"{url}/api/v1/conversations", headers=auth("demo-customer-th", "customer"), timeout=10,
                      json={"text": "สวัสดีค่ะ เปลี่ยนไซซ์เสื้อได้ไหมคะ", "tags": ["returns"]}).raise_for_status()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            page = browser.new_context(viewport={"width": 1440, "height": 860}, device_scale_factor=1).new_page()
            page.goto(f"{url}/chat/console?agent=agent-ann")
            expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=20_000)
            page.select_option("#status", "online")
            mine = page.locator("#mine li", has_text="Ada Lovelace")
            expect(mine).to_be_visible(timeout=30_000)
            mine.click()
            expect(page.locator("#customer-panel")).to_have_attribute("data-loaded", "true")
            page.fill("#reply-input", "Hello Ada! It left our warehouse this morning; I'll keep an eye on it for you.")
            page.press("#reply-input", "Enter")
            expect(page.locator('#thread li[data-mine="true"]')).to_have_count(1)
            page.screenshot(path=str(ROOT / "docs" / "console.png"))
            page = page.context.browser.new_context(viewport={"width": 1440, "height": 860}).new_page()
            page.goto(f"{url}/shop/admin")        # beside the console, whose agent stays online
            expect(page.locator("#chart-deliveries")).to_have_attribute("data-drawn", "true", timeout=20_000)
            page.set_viewport_size({"width": 1440, "height": 1500})
            page.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=False)
            browser.close()
    finally:
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    main()
