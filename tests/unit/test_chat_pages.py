"""The chat pages are served; the demo seed is idempotent."""
from __future__ import annotations


def test_pages_and_widget_are_served(client):
    assert client.get("/chat/console?agent=agent-ann").status_code == 200
    moved = client.get("/chat/shop?customer=<script>")   # the old widget demo is the shop now
    assert moved.status_code == 302 and moved.headers["Location"] == "/shop/"
    assert client.get("/chat/shop?customer=cu-1").headers["Location"] == "/shop/?sub=cu-1"
    shop = client.get("/shop/")
    assert shop.status_code == 200 and b"shop/widget-embed.js" in shop.data
    assert client.get("/static/chat/widget.js").status_code == 200


def test_demo_seed_is_idempotent(app):
    from demo_data.chat import seed
    from models import Agent
    services = app.extensions["switchboard"]
    for _ in range(2):
        with services.session() as s:
            seed(s)
    with services.session() as s:
        assert s.query(Agent).count() == 3
