"""Presence counted across processes; a crashed process does not leave its users online."""
from __future__ import annotations

import uuid

import pytest
import requests

from tests.support.clients import WsClient, auth, token
from tests.support.procs import WebServer


@pytest.fixture
def env(bus_env):
    """On one Redis and on a Redis Cluster (presence keeps its keys in one slot there)."""
    return {**bus_env, "SB_PRESENCE_TTL_SECONDS": "2"}


def presence(frame, kind, user):
    return frame.get("event") == f"user:{kind}" and frame["data"]["user_id"] == user


@pytest.fixture
def watch():
    """`watch(server, user)`: an admin following an open conversation of `user`, where their
    presence is told. The conversations are resolved afterwards: left waiting, they would
    be routed to the agents of the tests that follow (one database for the session)."""
    opened = []

    def follow(server, user: str) -> WsClient:
        resp = requests.post(f"{server.url}/api/v1/conversations", headers=auth(user, "customer"),
                             json={"text": "hello"}, timeout=10)
        assert resp.status_code == 201, resp.text
        opened.append((server, resp.json()["id"]))
        observer = WsClient(server.url, token("ops", "admin"))
        observer.subscribe(f"conversation:{resp.json()['id']}")
        return observer

    yield follow
    for server, cid in opened:
        requests.post(f"{server.url}/api/v1/conversations/{cid}/resolve", headers=auth("ops", "admin"),
                      timeout=10)


def test_online_until_the_last_connection_anywhere_closes(procs, env, watch):
    # A long lease: nothing here crashes, and a loaded machine must not reap a slow process.
    env = {**env, "SB_PRESENCE_TTL_SECONDS": "30"}
    a = procs.start(WebServer(env, procs.log_dir, "web-a"))
    b = procs.start(WebServer(env, procs.log_dir, "web-b"))
    alice = f"alice-{uuid.uuid4().hex[:6]}"
    observer = watch(a, alice)

    on_b = WsClient(b.url, token(alice))
    frame = observer.until(lambda f: presence(f, "online", alice))
    assert frame["id"] is None and "timestamp" in frame["data"]
    on_a = WsClient(a.url, token(alice))
    on_b.close()
    with pytest.raises(TimeoutError):  # still connected through A: no change of alice's
        observer.until(lambda f: f.get("event", "").startswith("user:")
                       and f.get("data", {}).get("user_id") == alice, timeout=2)
    on_a.close()
    observer.until(lambda f: presence(f, "offline", alice))
    observer.close()


def test_users_of_a_crashed_process_go_offline(procs, env, watch):
    a = procs.start(WebServer(env, procs.log_dir, "web-a"))
    doomed = procs.start(WebServer(env, procs.log_dir, "web-doomed"))
    bob = f"bob-{uuid.uuid4().hex[:6]}"
    observer = watch(a, bob)
    victim = WsClient(doomed.url, token(bob))
    observer.until(lambda f: presence(f, "online", bob))
    doomed.kill()  # SIGKILL: no disconnect is ever processed by that process
    observer.until(lambda f: presence(f, "offline", bob), timeout=20)
    victim.close()
    observer.close()


def test_a_process_reaped_during_a_stall_counts_its_users_again(procs, stack_env, watch, redis_prefix):
    import redis as redis_lib
    env = {**stack_env, "SB_PRESENCE_TTL_SECONDS": "2"}
    a = procs.start(WebServer(env, procs.log_dir, "web-a"))
    carol = f"carol-{uuid.uuid4().hex[:6]}"
    observer = watch(a, carol)
    conn = WsClient(a.url, token(carol))
    observer.until(lambda f: presence(f, "online", carol))
    # What another process does to one whose lease ran out during a stall: take its
    # lease and its counts (atomically here, so the living process cannot renew in between).
    from broadcast.presence import RedisPresence
    r = redis_lib.Redis.from_url(env["REDIS_URL"])
    other = RedisPresence(r, redis_prefix)
    leases = other.leases_key
    with r.pipeline(transaction=True) as pipe:
        pipe.zadd(leases, {proc.decode(): 0 for proc in r.zrange(leases, 0, -1)})
        other._reap(keys=[other.counts_key, leases], args=[1, other.proc_prefix], client=pipe)
        gone = pipe.execute()[-1]
    assert carol in [u.decode() for u in gone]
    assert r.hget(other.counts_key, carol) is None
    # The living process notices at its next beat and counts carol again.
    observer.until(lambda f: presence(f, "online", carol), timeout=20)
    assert int(r.hget(other.counts_key, carol) or 0) == 1
    conn.close()
    observer.until(lambda f: presence(f, "offline", carol), timeout=20)
    observer.close()
