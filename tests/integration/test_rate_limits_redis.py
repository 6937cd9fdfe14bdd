"""Rate limits on Redis: shared by every web process, both limits in one round trip."""
from __future__ import annotations

import random

import pytest
import redis
from limits import parse

from api.ratelimit import RedisLimits
from settings import Settings
from tests.support.clients import auth

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def two_processes(sqlite_url, redis_prefix, any_redis_url):
    """Two apps on one Redis prefix: what two web processes share (on one Redis, then a cluster)."""
    from app import create_app

    def make(**limits):
        settings = Settings.of(database_url=sqlite_url, redis_url=any_redis_url, redis_prefix=redis_prefix,
                               celery_broker_url=REDIS_URL, **limits)
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


def _limits(redis_prefix, processes: int, at: float) -> list[RedisLimits]:
    client = redis.Redis.from_url(REDIS_URL)
    return [RedisLimits(client, redis_prefix + "rl:", clock=lambda: at) for _ in range(processes)]


def test_one_process_leasing_lets_exactly_the_limit_through(redis_prefix):
    (alone,) = _limits(redis_prefix, 1, at=1_000_020.0)   # 20 s into a minute's window
    checks = [(parse("1000/minute"), "user:busy", "1000/minute")]
    answers = [alone.hit(checks) for _ in range(1100)]
    assert answers.count(0) == 1000 and answers[1000:] == [1] * 100


def test_processes_leasing_together_never_let_more_through(redis_prefix):
    """Unused leases may refuse early, by at most (P - 1) x (cap - 1) permits; never late."""
    processes = _limits(redis_prefix, 3, at=2_000_010.0)
    user, ceiling = parse("1000/minute"), parse("3000/minute")
    rng = random.Random(7)
    passed = {"user:a": 0, "user:b": 0}
    for _ in range(3000):
        who = rng.choice(sorted(passed))
        checks = [(user, who, "1000/minute"), (ceiling, "ceiling:127.0.0.1", "3000/minute")]
        if rng.choice(processes).hit(checks) == 0:
            passed[who] += 1
    cap = 1000 // 100
    for count in passed.values():
        assert 1000 - 2 * (cap - 1) <= count <= 1000
    counted = redis.Redis.from_url(REDIS_URL).get(processes[0].window_key("user:a", 60000, 2_000_010_000 // 60000))
    assert int(counted) == 1000   # what was leased is what Redis counted, never more


def test_a_refusal_by_one_limit_gives_the_others_leased_permit_back(redis_prefix):
    (alone,) = _limits(redis_prefix, 1, at=3_000_030.0)
    ceiling = (parse("6400/minute"), "ceiling:10.0.0.1", "6400/minute")
    assert alone.hit([(parse("100/minute"), "user:x", "100/minute"), ceiling]) == 0
    for _ in range(3):   # the ceiling's lease grows past one: its next permits are local
        assert alone.hit([(parse("100/minute"), "user:x", "100/minute"), ceiling]) == 0
    left = alone._leases["ceiling:10.0.0.1"].left
    assert left > 0
    assert alone.hit([(parse("1/minute"), "user:y", "1/minute"), ceiling]) == 0
    assert alone._leases["ceiling:10.0.0.1"].left == left - 1
    assert alone.hit([(parse("1/minute"), "user:y", "1/minute"), ceiling]) == 1
    assert alone._leases["ceiling:10.0.0.1"].left == left - 1   # given back
