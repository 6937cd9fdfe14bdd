"""Chat over HTTP for tests: tokens as headers, agents, conversations, messages, error bodies.

The fixtures built on these (`services`, `events`, `assigned`) are in tests/conftest.py.
"""
from __future__ import annotations

from api.auth import issue_token
from settings import DEV_JWT_SECRET


def h(sub: str, role: str = "customer") -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(DEV_JWT_SECRET, sub, role)}


ADMIN = h("boss", "admin")


class Events(list):
    """The bus's events as published, in order (attached with `bus.attach(events.append)`)."""

    def named(self, name: str, topic: str | None = None) -> list:
        return [e for e in self if e.name == name and (topic is None or e.topic == topic)]


def error(resp, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"}
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def make_agent(client, aid: str, limit: int = 2, skills=("en",), online=True) -> None:
    r = client.put(f"/api/v1/agents/{aid}", headers=ADMIN,
                   json={"name": aid.title(), "email": f"{aid}@shop.test", "skills": list(skills),
                         "concurrent_limit": limit})
    assert r.status_code in (200, 201), r.get_data(as_text=True)
    if online:
        r = client.put("/api/v1/agents/me/status", headers=h(aid, "agent"), json={"status": "online"})
        assert r.status_code == 200 and r.get_json()["status"] == "online"


def open_conv(client, cust: str = "cust-1", **body) -> dict:
    r = client.post("/api/v1/conversations", headers=h(cust), json=body)
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def send(client, cid: str, sub: str, role: str, text: str = "hi", **extra):
    return client.post(f"/api/v1/conversations/{cid}/messages", headers=h(sub, role),
                       json={"content": {"text": text}, **extra})
