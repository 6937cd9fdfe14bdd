"""The Redis Cluster changes under a stream: a master dies, a slot moves.

A master dies mid-stream and its replica takes over. Replication is
asynchronous: events the dead master stored, published and acknowledged
may never have reached the replica. So after the failover, every client
must have every acknowledged event of a topic, or have been told of a gap
in it (`stream:reset` live, `recovered: false` on resume),
never a silent hole; topics on the masters that lived go on untouched.
Two web processes, live clients on both, a client that resumes across the
failover, and a publisher that never stops.

A slot resharded to another master mid-stream moves its keys whole: its
topics go on there without a reset, and nothing is missed while the
processes follow them.
"""
from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import defaultdict

import pytest
import requests
import websocket

from broadcast.events import BEFORE_FIRST, cursor_key
from tests.support import redis_cluster
from tests.support.clients import WsClient, auth, token
from tests.support.databases import REDIS_URL
from tests.support.procs import WebServer
from tests.support.redis_cluster import RedisCluster


@pytest.fixture
def own_cluster(tmp_path):
    cluster = RedisCluster(tmp_path / "cluster").start()
    yield cluster
    cluster.stop()


class Reader:
    """A WebSocket client read on a thread of its own: every frame, and a way to wait for one."""

    def __init__(self, url: str, name: str, topics: list[str]) -> None:
        self.ws = WsClient(url, token(name))
        for topic in topics:
            self.ws.subscribe(topic)
        self.ticks: dict[str, list[dict]] = defaultdict(list)
        self.resets: dict[str, list[dict]] = defaultdict(list)
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                frame = self.ws.recv(timeout=60)
            except (TimeoutError, websocket.WebSocketException, OSError):
                return
            with self.changed:
                if frame.get("event") == "tick":
                    self.ticks[frame["topic"]].append(frame)
                elif frame.get("event") == "stream:reset":
                    self.resets[frame["topic"]].append(frame)
                self.changed.notify_all()

    def wait(self, predicate, timeout: float = 30) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self), timeout), (
                "timed out", {t: (max(self.seen(t), default=None), len(self.resets[t])) for t in self.ticks})

    def seen(self, topic: str) -> set[int]:
        return {f["data"]["seq"] for f in self.ticks[topic]}


class Publisher:
    """Publishes ticks round-robin over topics and web processes until stopped; keeps
    what was acknowledged (202 with an id), when, and what was refused (503 mid-failover)."""

    def __init__(self, servers, topics: list[str]) -> None:
        self.servers, self.topics = servers, topics
        self.acked: list[tuple[str, int, str, float]] = []   # topic, seq, id, acknowledged at
        self.refused = 0              # 503 with Retry-After, while a slot has no master
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.progress = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._publish()
        except BaseException as exc:  # noqa: BLE001 - reported to the test's thread
            with self.progress:
                self.error = exc
                self.progress.notify_all()

    def _publish(self) -> None:
        session, seq = requests.Session(), 0
        while not self.stop.is_set():
            topic = self.topics[seq % len(self.topics)]
            server = self.servers[seq % len(self.servers)]
            resp = session.post(f"{server.url}/api/v1/broadcast", headers=auth("store", "service"),
                                json={"topic": topic, "event": "tick", "data": {"seq": seq}}, timeout=15)
            with self.progress:
                if resp.status_code == 202:
                    self.acked.append((topic, seq, resp.json()["id"], time.monotonic()))
                else:
                    assert resp.status_code == 503 and resp.headers.get("Retry-After"), resp.text
                    self.refused += 1
                self.progress.notify_all()
            seq += 1

    def wait_acked_after(self, moment: float, count: int, timeout: float = 60) -> None:
        with self.progress:
            assert self.progress.wait_for(
                lambda: self.error or sum(1 for *_, at in self.acked if at > moment) >= count, timeout), "timed out"
            if self.error:
                raise self.error

    def of(self, topic: str) -> list[tuple[int, str, float]]:
        return [(seq, eid, at) for t, seq, eid, at in self.acked if t == topic]


def topics_by_master(cluster: RedisCluster, victim_port: int) -> tuple[list[str], list[str]]:
    """Two topics whose slot the victim master holds, and two held by the others."""
    on_victim, elsewhere = [], []
    while len(on_victim) < 2 or len(elsewhere) < 2:
        topic = f"product:{uuid.uuid4().hex[:8]}"
        side = on_victim if cluster.master_of("{" + topic + "}").port == victim_port else elsewhere
        if len(side) < 2:
            side.append(topic)
    return on_victim, elsewhere


class Scene:
    """Two web processes on the cluster, a live reader on each, a client that goes away
    mid-stream with a cursor on every topic, and a publisher that never stops."""

    def __init__(self, procs, env, topics: list[str]) -> None:
        self.topics = topics
        self.a = procs.start(WebServer(env, procs.log_dir, "web-a"))
        self.b = procs.start(WebServer(env, procs.log_dir, "web-b"))
        self.readers = [Reader(self.a.url, "live-a", topics), Reader(self.b.url, "live-b", topics)]
        resumer = WsClient(self.a.url, token("resumer"))
        self.cursors = {t: resumer.subscribe(t)["cursor"] for t in topics}
        self.publisher = Publisher([self.a, self.b], topics)
        self.publisher.wait_acked_after(0, 40)
        resumer.events("tick", 10)
        for frame in resumer.frames:
            if frame.get("event") == "tick":
                self.cursors[frame["topic"]] = frame["id"]
        resumer.close()

    def stop(self) -> None:
        self.publisher.stop.set()
        self.publisher.thread.join(timeout=30)
        if self.publisher.error:
            raise self.publisher.error

    def check_live(self, lossy: list[str], whole_at: float) -> None:
        """Every reader has every acknowledged event of each topic; on a `lossy` topic it
        may instead have been told of a gap, and then has all acknowledged from `whole_at`."""
        last = {t: self.publisher.of(t)[-1][0] for t in self.topics}
        for reader in self.readers:
            reader.wait(lambda r: all(last[t] in r.seen(t) for t in self.topics))
            for topic in self.topics:
                acked = self.publisher.of(topic)
                missing = [seq for seq, _eid, _at in acked if seq not in reader.seen(topic)]
                if topic not in lossy:
                    assert not reader.resets[topic] and not missing, (topic, missing)
                    continue
                assert reader.resets[topic] or not missing, (topic, missing)
                after = {seq for seq, _eid, at in acked if at > whole_at}
                assert after and not after - reader.seen(topic)

    def check_resume(self, lossy: list[str]) -> None:
        """The client comes back through the other process: `recovered: false` on a `lossy`
        topic, everything after its cursor on the others."""
        back = WsClient(self.b.url, token("resumer"))
        for topic in self.topics:
            ack = back.subscribe(topic, since=self.cursors[topic])
            if topic in lossy:
                assert ack["recovered"] is False
                continue
            assert ack["recovered"] is True
            after = cursor_key(self.cursors[topic])
            expected = [seq for seq, eid, _at in self.publisher.of(topic) if cursor_key(eid) > after]
            got = [f["data"]["seq"] for f in back.events("tick", len(expected), timeout=20)]
            assert got == expected
        back.close()
        for reader in self.readers:
            reader.ws.close()


def cluster_env(stack_env, cluster: RedisCluster) -> dict[str, str]:
    return {**stack_env, "REDIS_URL": cluster.url, "CELERY_BROKER_URL": REDIS_URL}


def test_a_master_killed_mid_stream_leaves_no_silent_hole(procs, stack_env, own_cluster):
    victim = own_cluster.master_of("{" + f"product:{uuid.uuid4().hex[:8]}" + "}")
    on_victim, elsewhere = topics_by_master(own_cluster, victim.port)
    scene = Scene(procs, cluster_env(stack_env, own_cluster), on_victim + elsewhere)
    try:
        scene.publisher.wait_acked_after(0, 80)
        own_cluster.kill(victim)
        killed_at = time.monotonic()
        own_cluster.wait_healthy()
        healthy_at = time.monotonic()
        scene.publisher.wait_acked_after(healthy_at, 80)
    finally:
        scene.stop()
    assert healthy_at - killed_at < 15
    # What the replica may never have had ends the victim's histories: a reset, after which
    # everything acknowledged once the cluster was whole again is there.
    scene.check_live(lossy=on_victim, whole_at=healthy_at)
    scene.check_resume(lossy=on_victim)


def test_a_slot_resharded_mid_stream_loses_nothing_and_resets_nothing(procs, stack_env, own_cluster):
    topics = [f"product:{uuid.uuid4().hex[:8]}" for _ in range(2)]
    source = own_cluster.master_of("{" + topics[0] + "}")
    target = next(n for n in own_cluster.master_nodes() if n is not source)
    scene = Scene(procs, cluster_env(stack_env, own_cluster), topics)
    try:
        own_cluster.move_slot(own_cluster.slot_of("{" + topics[0] + "}"), target)
        scene.publisher.wait_acked_after(time.monotonic(), 60)
    finally:
        scene.stop()
    assert own_cluster.master_of("{" + topics[0] + "}") is target
    scene.check_live(lossy=[], whole_at=0)
    scene.check_resume(lossy=[])


def test_a_batch_published_on_a_stale_map_of_the_cluster_is_stored_once_in_order(own_cluster, redis_prefix):
    """publish_many sends each master its share by the client's map; a master that no longer
    holds a slot refuses (MOVED), and those events go again through the cluster client."""
    from broadcast.bus import Outgoing
    from broadcast.redis_bus import RedisBus
    bus = RedisBus(own_cluster.url, redis_prefix)
    topics = [f"product:{uuid.uuid4().hex[:8]}" for _ in range(6)]
    try:
        for n in (0, 1):   # the map is made, and the first batch loads the script on every master
            bus.publish_many([Outgoing(t, "tick", {"n": n}) for t in topics])
        moving = topics[0]
        source = own_cluster.master_of("{" + moving + "}")
        target = next(n for n in own_cluster.master_nodes() if n is not source)
        own_cluster.move_slot(own_cluster.slot_of("{" + moving + "}"), target)
        ids = bus.publish_many([Outgoing(t, "tick", {"n": n}) for n in (2, 3) for t in topics])
        assert all(ids)
        for topic in topics:
            events, recovered = bus.history(topic, BEFORE_FIRST)
            assert recovered and [e.data["n"] for e in events] == [0, 1, 2, 3]
        assert own_cluster.master_of("{" + moving + "}") is target
    finally:
        bus.close()


def test_a_node_whose_port_is_taken_before_it_binds_starts_on_other_ports(tmp_path, monkeypatch):
    """The harness's own race: a port checked free can be taken before redis-server binds it.
    The node must start again on other ports, not leave the test waiting for a dead process."""
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    fresh = redis_cluster._cluster_port
    ports = iter([taken])
    monkeypatch.setattr(redis_cluster, "_cluster_port", lambda: next(ports, None) or fresh())
    node = redis_cluster._Node(tmp_path)
    try:
        assert node.port == taken
        node.start()
        assert node.port != taken and node.alive and node.client().ping()
    finally:
        node.kill()
        squatter.close()
