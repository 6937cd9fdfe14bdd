"""`user:typing` is throttled per user across every web process (Redis)."""
from __future__ import annotations

from settings import Settings
from tests.support.clients import auth

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_typing_on_two_processes_within_the_interval_is_sent_once(sqlite_url, redis_prefix, any_redis_url):
    from app import create_app
    settings = Settings.of(database_url=sqlite_url, redis_url=any_redis_url, redis_prefix=redis_prefix,
                           celery_broker_url=REDIS_URL, typing_throttle_seconds=60)
    a, b = (create_app(settings, background=False).test_client() for _ in range(2))
    made = a.post("/api/v1/conversations", headers=auth("cust-t", "customer"), json={"text": "hi"})
    assert made.status_code == 201, made.get_json()
    cid = made.get_json()["id"]
    sent = [c.post(f"/api/v1/conversations/{cid}/typing", headers=auth("cust-t", "customer")).get_json()
            for c in (a, b, a)]
    assert sent == [{"sent": True}, {"sent": False}, {"sent": False}]
    # another user in the same conversation has their own interval
    other = b.post(f"/api/v1/conversations/{cid}/typing", headers=auth("adm-t", "admin"))
    assert other.get_json() == {"sent": True}
