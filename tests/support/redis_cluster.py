"""A Redis Cluster of this test's own: three masters with a replica each, on free ports of
127.0.0.1 (`redis-server --cluster-enabled yes`, joined by `redis-cli --cluster create`).

It keeps nothing on disk but its node files, fails a dead master over within about
a second (`cluster-node-timeout 1000`), and every process it starts is stopped by its
own pid. `url` is the REDIS_URL Switchboard takes for a cluster.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from tests.support.procs import free_port

NODE_TIMEOUT_MS = 1000


class LocalRedisCluster:
    def __init__(self, base: Path, masters: int = 3, replicas: int = 1) -> None:
        self.base = base
        self.size = masters * (1 + replicas)
        self.replicas = replicas
        self.ports = [free_port() for _ in range(self.size)]
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def _start_node(self, port: int) -> None:
        folder = self.base / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        log = open(folder / "redis.log", "ab")
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-port", str(free_port()), "--cluster-config-file", str(folder / "nodes.conf"),
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--protected-mode", "no", "--repl-diskless-sync-delay", "0"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port, socket_timeout=1).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError((folder / "redis.log").read_text(errors="replace")) from None
                time.sleep(0.05)   # waiting for the port to answer: nothing to block on

    def start(self) -> "LocalRedisCluster":
        for port in self.ports:
            self._start_node(port)
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        self.wait_healthy()
        return self

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0])

    def wait_healthy(self, timeout: float = 30) -> None:
        """Until every live node says the cluster is ok and every slot has a master."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = [redis.Redis(port=p, socket_timeout=1).cluster("info")["cluster_state"]
                          for p, proc in self.procs.items() if proc.poll() is None]
                # A replica that has not synced yet could not take over: wait for its link too.
                links = [redis.Redis(port=p, socket_timeout=1).info("replication")
                         for p, proc in self.procs.items() if proc.poll() is None]
                if states and all(s == "ok" for s in states) and \
                        all(i["role"] == "master" or i.get("master_link_status") == "up" for i in links):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the cluster did not become healthy")
            time.sleep(0.1)   # cluster state converges by gossip: polled, no event to wait on

    def master_of(self, key: str) -> int:
        """The port of the master that holds `key`'s slot now."""
        client = self.client()
        try:
            return client.get_node_from_key(key).port
        finally:
            client.close()

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crashed master: its replica takes over)."""
        proc = self.procs[port]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def wait_failover(self, dead_port: int, key: str, timeout: float = 30) -> int:
        """Until a live node serves `key`'s slot in the dead master's place; its port."""
        slot = self.client().keyslot(key)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for port, proc in self.procs.items():
                if port == dead_port or proc.poll() is not None:
                    continue
                try:
                    ranges = redis.Redis(port=port, socket_timeout=1).execute_command("CLUSTER SLOTS")
                except redis.RedisError:
                    continue
                owner = next((int(r[2][1]) for r in ranges if int(r[0]) <= slot <= int(r[1])), None)
                if owner is not None and owner != dead_port:
                    self.wait_healthy(timeout)
                    return owner
            time.sleep(0.1)   # the election takes about two node timeouts: polled
        raise TimeoutError("no replica took over")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
