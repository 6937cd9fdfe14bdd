"""Rate limits on Redis: shared by every web process, both limits in one round trip."""
from __future__ import annotations

import pytest

from settings import Settings
from tests.support.clients import auth

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def two_processes(sqlite_url, redis_prefix):
    """Two apps on one Redis prefix: what two web processes share."""
    from app import create_app

    def make(**limits):
        settings = Settings.of(database_url=sqlite_url, redis_url=REDIS_URL, redis_prefix=redis_prefix,
                            **limits)
        return [create_app(settings, background=False).test_client() for _ in range(2)]
    return make


def send(client, who, role="admin"):
    return client.post("/api/v1/broadcast", json={"topic": "admin", "event": "x"},
                       headers=auth(who, role))


def test_a_users_limit_is_shared_by_every_process(two_processes):
    a, b = two_processes(rate_limit_user="4/minute", rate_limit_address="100/minute")
    assert [send(c, "u1").status_code for c in (a, b, a, b)] == [202] * 4
    refused = send(b, "u1")
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert send(a, "u2").status_code == 202  # another user is not affected


def test_the_address_ceiling_covers_every_user_and_a_refusal_counts_nothing(two_processes):
    a, b = two_processes(rate_limit_user="2/minute", rate_limit_address="5/minute")
    assert [send(a, "v1").status_code for _ in range(3)] == [202, 202, 429]
    # v1's refused call used none of the address's five: three more users get three.
    assert [send(b, f"w{i}").status_code for i in range(3)] == [202, 202, 202]
    assert send(a, "w9").status_code == 429  # the address's five are used
    assert send(a, "store", role="service").status_code == 202  # the backend is not throttled
    assert a.get("/healthz").status_code == 200  # probes are free
