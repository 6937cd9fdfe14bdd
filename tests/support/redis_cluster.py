"""A Redis Cluster of the test's own: three masters with a replica each, on free ports.

Started as children (`redis-server --cluster-enabled yes`), joined with
`redis-cli --cluster create`, stopped by their own pids. A short node timeout
makes a replica take over within about two seconds of its master's death, so
a test can kill a master mid-stream and wait for the failover as an event
(the slots served again by a live node), never by sleeping a guessed time.
"""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.procs import free_port

NODE_TIMEOUT_MS = 1000
BUS_OFFSET = 10000


def _cluster_port() -> int:
    """A port whose cluster bus port (10,000 above) is free too."""
    return free_port(room=BUS_OFFSET)


class _Node:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _cluster_port()
        self.popen: subprocess.Popen | None = None

    @property
    def dir(self) -> Path:
        return self.root / str(self.port)

    def start(self, attempts: int = 5) -> None:
        """Start the node and wait for its answer. A port can still be taken between the
        check and the bind; the node then exits at once and starts again on other ports."""
        for _ in range(attempts):
            self.dir.mkdir(parents=True, exist_ok=True)
            args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                    "--appendonly", "no", "--dir", str(self.dir),
                    "--logfile", str(self.dir / "redis.log"),
                    "--cluster-enabled", "yes", "--cluster-config-file", str(self.dir / "nodes.conf"),
                    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                    "--cluster-port", str(self.port + BUS_OFFSET)]
            self.popen = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait(lambda: not self.alive or self._answers(), 10, f"node {self.port} up")
            if self.alive:
                return
            failed_log = self.dir / "redis.log"
            self.port = _cluster_port()
        raise RuntimeError(f"redis cluster: no node started in {attempts} attempts; "
                           f"last log: {failed_log}")

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def _answers(self) -> bool:
        """One short PING, no retries: whoever holds a taken port may accept and never
        answer, and the client's own retries would outlast the wait for the node's exit."""
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5,
                            socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
        try:
            return bool(probe.ping())
        finally:
            probe.close()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis cluster: {what} not within {timeout}s")
        time.sleep(0.05)  # polling a server's state: it has no event to block on


class RedisCluster:
    def __init__(self, root: Path, masters: int = 3) -> None:
        self.nodes = [_Node(root) for _ in range(masters * 2)]
        self.masters = masters

    @property
    def url(self) -> str:
        """REDIS_URL for Switchboard: every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{n.port}" for n in self.nodes),
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        self.wait_healthy()
        return self

    def _live(self) -> list[_Node]:
        return [n for n in self.nodes if n.alive]

    def wait_healthy(self, timeout: float = 30) -> None:
        """Every live node says the cluster is ok and sees every slot on a live master,
        and every live replica is in sync (a replica that never synced cannot take over)."""
        def healthy() -> bool:
            live_ports = {n.port for n in self._live()}
            for node in self._live():
                info = node.client().cluster("info")
                if info.get("cluster_state") != "ok":
                    return False
                replication = node.client().info("replication")
                if replication["role"] == "slave" and (
                        replication.get("master_link_status") != "up"
                        or int(replication.get("master_port", 0)) not in live_ports):
                    return False
                for _start, _end, master, *_ in node.client().execute_command("CLUSTER SLOTS"):
                    if int(master[1]) not in live_ports:
                        return False
            return True
        _wait(healthy, timeout, "all slots served by live masters")

    def master_of(self, key: str) -> _Node:
        slot = int(self._live()[0].client().execute_command("CLUSTER KEYSLOT", key))
        port = self._owner_port(slot)
        return next(n for n in self.nodes if n.port == port)

    def kill(self, node: _Node) -> None:
        node.kill()

    def slot_of(self, key: str) -> int:
        return int(self._live()[0].client().execute_command("CLUSTER KEYSLOT", key))

    def move_slot(self, slot: int, target: _Node, batch: int = 100) -> None:
        """Reshard one slot to `target`, as `redis-cli --cluster reshard` does: mark it
        importing and migrating, MIGRATE its keys, then give it to the target everywhere."""
        source = next(n for n in self._live() if n.port == self._owner_port(slot))
        source_id = source.client().execute_command("CLUSTER MYID")
        target_id = target.client().execute_command("CLUSTER MYID")
        target.client().execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        source.client().execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        while keys := source.client().execute_command("CLUSTER GETKEYSINSLOT", slot, batch):
            source.client().execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                                            "REPLACE", "KEYS", *keys)
        for node in (target, source, *(n for n in self._live() if n not in (source, target))):
            if node.client().info("replication")["role"] == "master":
                node.client().execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        self.wait_healthy()

    def _owner_port(self, slot: int) -> int:
        for start, end, master, *_ in self._live()[0].client().execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise LookupError(slot)

    def master_nodes(self) -> list[_Node]:
        return [n for n in self._live() if n.client().info("replication")["role"] == "master"]

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
