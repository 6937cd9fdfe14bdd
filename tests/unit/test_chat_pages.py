"""The chat pages are served; the demo seed is idempotent."""
from __future__ import annotations


def test_pages_and_widget_are_served(client):
    assert client.get("/chat/console?agent=agent-ann").status_code == 200
    shop = client.get("/chat/shop?customer=<script>")
    assert shop.status_code == 200 and b"<script>\"" not in shop.data
    assert b'src="/static/chat/widget.js"' in shop.data
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
