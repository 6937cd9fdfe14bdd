"""Chat figures on the distributed stack (PostgreSQL, Redis, 2 web processes, 1 routing worker).

1. Routing throughput: N conversations wait, then 50 agents come online;
   conversations assigned per second until all N are.
2. Chat round trip at N active conversations: customers send over HTTP to web
   process A (`--post-to both`: to A and B in turn), each agent's WebSocket
   (on web process B) receives `message:receive`; latency = receive time -
   send time (same host clock). Then the CPU each process used per message.

    .venv/bin/python bench/chat_roundtrip.py [--conversations 1000] [--rate 100] [--seconds 20]
                                             [--post-to a|both]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
import websocket  # noqa: E402

from models.migrate import upgrade  # noqa: E402
from tests.support.clients import token  # noqa: E402
from tests.support.procs import WebServer, Worker  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
AGENTS = 50


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of one process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # after the name: state, ppid, pgrp, ...; utime, stime at 11, 12
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def post_json(port: int, path: str, tok: str, payload: dict) -> tuple[int, bytes]:
    """One POST on a new connection, as `requests.post` sends it, for a fraction of its CPU
    (the load generator shares the machine's two cores with what it measures)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=json.dumps(payload),
                     headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class AgentConn:
    """One agent's WebSocket, read on a thread; records assignment and message arrivals."""

    def __init__(self, url: str, agent_id: str) -> None:
        self.id = agent_id
        tok = token(agent_id, "agent", ttl=7200)
        self.ws = websocket.create_connection(url.replace("http://", "ws://") + f"/ws?token={tok}",
                                              timeout=30)
        self.assigned: list[str] = []
        self.latencies: list[float] = []
        self.acks: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def request(self, op: dict) -> None:
        ref = uuid.uuid4().hex[:8]
        ev = self.acks[ref] = threading.Event()
        self.ws.send(json.dumps({**op, "ref": ref}))
        if not ev.wait(30):
            raise TimeoutError(f"no ack for {op}")

    def read(self) -> None:
        while True:
            try:
                frame = json.loads(self.ws.recv())
            except Exception:  # noqa: BLE001 - closed at the end
                return
            now = time.time()
            name = frame.get("event")
            if name == "ack" and frame.get("ref") in self.acks:
                self.acks[frame["ref"]].set()
            elif name == "agent:assigned" and frame.get("topic", "").startswith("user:"):
                with self.lock:
                    self.assigned.append(frame["data"]["conversation_id"])
            elif name == "message:receive":
                sent = (frame["data"]["content"].get("metadata") or {}).get("t0")
                if sent:
                    self.latencies.append(now - sent)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="customer messages per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--post-to", choices=("a", "both"), default="a",
                        help="web processes the customers' POSTs go to (both: alternately, "
                             "as behind a balancer; the agents stay on B)")
    args = parser.parse_args()
    n = args.conversations
    limit = -(-n // AGENTS)

    name = f"sb_chatbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = f"postgresql://postgres@127.0.0.1:5432/{name}"
    upgrade(db)
    env = {"DATABASE_URL": db, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": f"sbcb{uuid.uuid4().hex[:6]}:",
           "SB_RATE_LIMIT_USER": "100000/minute", "SB_RATE_LIMIT_ADDRESS": "1000000/minute"}
    logs = Path(tempfile.mkdtemp(prefix="sb-chat-bench-"))
    procs = [WebServer(env, logs, "web-a").start(), WebServer(env, logs, "web-b").start(),
             Worker(env, logs, "routing", queues="routing,notifications", concurrency=2).start()]
    a, b = procs[0], procs[1]
    http = requests.Session()
    admin = {"Authorization": "Bearer " + token("bench-admin", "admin", ttl=7200)}
    try:
        for i in range(AGENTS):
            r = http.put(f"{a.url}/api/v1/agents/bench-agent-{i}", headers=admin, timeout=30,
                         json={"name": f"Agent {i}", "skills": ["en"], "concurrent_limit": limit})
            assert r.status_code in (200, 201), r.text
        cust_tokens = {f"bench-cust-{i}": token(f"bench-cust-{i}", "customer", ttl=7200) for i in range(n)}

        def open_conv(cust: str) -> str:
            r = requests.post(f"{a.url}/api/v1/conversations", timeout=30,
                              headers={"Authorization": "Bearer " + cust_tokens[cust]},
                              json={"metadata": {"language": "en"}})
            assert r.status_code == 201, r.text
            return r.json()["id"]

        with ThreadPoolExecutor(32) as pool:
            conv_of = dict(zip(cust_tokens, pool.map(open_conv, cust_tokens)))
        agents = [AgentConn(b.url, f"bench-agent-{i}") for i in range(AGENTS)]

        started = time.perf_counter()
        for agent in agents:
            agent.request({"op": "emit", "event": "agent:available", "data": {"status": "online"}})
        deadline = time.monotonic() + 600
        while sum(len(x.assigned) for x in agents) < n:
            if time.monotonic() > deadline:
                raise TimeoutError("routing did not finish")
            time.sleep(0.05)  # a benchmark's progress poll, not a test's wait
        routing_s = time.perf_counter() - started
        print(f"routing: {n} conversations to {AGENTS} agents in {routing_s:.2f} s "
              f"= {n / routing_s:.0f} assignments/s")

        for agent in agents:
            for cid in agent.assigned:
                agent.request({"op": "subscribe", "topic": f"conversation:{cid}"})
        customers = list(conv_of)
        total = int(args.rate * args.seconds)

        def send(k: int) -> None:
            cust = customers[k % len(customers)]
            target = started_at + k / args.rate
            delay = target - time.time()
            if delay > 0:
                time.sleep(delay)  # pacing the load, not waiting for a result
            t0 = time.time()
            web = b if args.post_to == "both" and k % 2 else a
            status, body = post_json(web.port, f"/api/v1/conversations/{conv_of[cust]}/messages",
                                     cust_tokens[cust],
                                     {"content": {"text": f"m{k}", "metadata": {"t0": t0}}})
            post_ms.append((time.time() - t0) * 1000)
            assert status == 201, body

        post_ms: list[float] = []
        cpu_before = [group_cpu(p.pid) for p in procs] + [time.process_time()]
        started_at = time.time() + 0.5
        with ThreadPoolExecutor(64) as pool:
            list(pool.map(send, range(total)))
        deadline = time.monotonic() + 30
        while sum(len(x.latencies) for x in agents) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu_after = [group_cpu(p.pid) for p in procs] + [time.process_time()]
        lat = [v * 1000 for x in agents for v in x.latencies]
        print(f"round trip at {n} active conversations, {args.rate:.0f} msg/s for {args.seconds:.0f} s: "
              f"{len(lat)}/{total} delivered, p50 {statistics.median(lat):.1f} ms, "
              f"p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms")
        print(f"  of which the HTTP POST (customer's send acknowledged): "
              f"p50 {statistics.median(post_ms):.1f} ms, p99 {pct(post_ms, 99):.1f} ms")
        used = [(after - before) * 1000 / total for before, after in zip(cpu_before, cpu_after)]
        print("  CPU per message during the sends (ms): " + ", ".join(
            f"{label} {ms:.2f}" for label, ms in
            zip(("web A (HTTP)", "web B (WebSocket" + (" + HTTP)" if args.post_to == "both" else ")"),
                 "routing worker", "this client"), used)))
        for agent in agents:
            agent.ws.close()
    finally:
        for p in procs:
            p.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
