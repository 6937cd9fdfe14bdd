"""Routing day (DESIGN.md): replay a day of arrivals against a team, per policy.

8 agents with a limit of 3, 3 speaking Thai and 5 English; Poisson arrivals
at 85 % of capacity over 8 hours (mean handling 6 minutes, exponential);
20 % VIP; 30 % Thai; an agent without the conversation's language takes
1.5x as long. The "score" policies call the very functions the routing
worker runs (actions/routing.py: priority_score, plan_next), so what is
measured here is what is deployed.

    .venv/bin/python bench/chat_routing_sim.py [--days 40]

Prints mean wait, p95 and VIP p95 (seconds; median over seeded days) and the
highest load any agent ever had.
"""
from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actions.routing import AgentSlot, WaitingItem, plan_next, priority_score  # noqa: E402

HOURS = 8
LIMIT = 3
MEAN_HANDLE = 360.0
AGENTS = [("th%d" % i, "th") for i in range(3)] + [("en%d" % i, "en") for i in range(5)]


@dataclass
class Conv:
    id: str
    arrived: float
    vip: bool
    lang: str
    base_handle: float
    started: float | None = None


def p95(values: list[float]) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


def simulate(seed: int, policy: str, hold: float = 0.0) -> dict:
    rng = random.Random(seed)
    capacity_per_s = len(AGENTS) * LIMIT / MEAN_HANDLE
    rate = 0.85 * capacity_per_s
    events: list[tuple[float, int, str, object]] = []
    seq = 0

    def push(t: float, kind: str, payload: object) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, payload))

    t = 0.0
    n = 0
    while True:
        t += rng.expovariate(rate)
        if t > HOURS * 3600:
            break
        conv = Conv(f"c{n}", t, rng.random() < 0.2, "th" if rng.random() < 0.3 else "en",
                    rng.expovariate(1 / MEAN_HANDLE))
        n += 1
        push(t, "arrive", conv)
        if hold:
            push(t + hold + 0.001, "tick", None)

    slots = {aid: AgentSlot(aid, frozenset({lang}), 0, LIMIT) for aid, lang in AGENTS}
    queue: list[Conv] = []
    done: list[Conv] = []
    rr = 0
    peak = 0

    def start(conv: Conv, agent: AgentSlot, now: float) -> None:
        nonlocal peak
        queue.remove(conv)
        agent.load += 1
        peak = max(peak, agent.load)
        assert agent.load <= agent.limit
        conv.started = now
        handle = conv.base_handle * (1.0 if conv.lang in agent.skills else 1.5)
        push(now + handle, "finish", agent.id)
        done.append(conv)

    def dispatch(now: float) -> None:
        nonlocal rr
        while queue:
            if policy == "round_robin":
                ids = [aid for aid, _ in AGENTS]
                free = [ids[(rr + k) % len(ids)] for k in range(len(ids))
                        if slots[ids[(rr + k) % len(ids)]].free]
                if not free:
                    return
                rr = (ids.index(free[0]) + 1) % len(ids)
                start(queue[0], slots[free[0]], now)
                continue
            by_id = {c.id: c for c in queue}
            items = [WaitingItem(c.id, priority_score(vip=c.vip, waited_seconds=now - c.arrived,
                                                      lifetime_value=0, priority="medium"),
                                 frozenset({c.lang}), c.vip, now - c.arrived, c.arrived)
                     for c in queue]
            choice = next(iter(plan_next(items, list(slots.values()), hold)), None)
            if choice is None:
                return
            item, ranked = choice
            start(by_id[item.id], ranked[0], now)

    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == "arrive":
            queue.append(payload)  # type: ignore[arg-type]
        elif kind == "finish":
            slots[payload].load -= 1  # type: ignore[index]
        dispatch(now)

    waits = [c.started - c.arrived for c in done]
    vip = [c.started - c.arrived for c in done if c.vip]
    return {"mean": statistics.mean(waits), "p95": p95(waits), "vip_p95": p95(vip), "peak": peak,
            "served": len(done)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=40)
    args = parser.parse_args()
    from settings import Settings
    deployed = float(Settings.language_hold_seconds)
    policies = [("round robin (FIFO, any free agent)", "round_robin", 0.0),
                ("score, skill then load", "score", 0.0),
                ("score, skill then load, non-VIP waits <= 60 s for its language", "score", 60.0),
                (f"deployed: score, non-VIP waits <= {deployed:.0f} s for its language", "score", deployed)]
    print(f"Routing day, median of {args.days} seeded days (waits in seconds)")
    print(f"{'policy':66} {'mean':>7} {'p95':>7} {'VIP p95':>8} {'max load':>8}")
    results = {}
    for label, policy, hold in policies:
        days = [simulate(seed, policy, hold) for seed in range(args.days)]
        row = {k: statistics.median(d[k] for d in days) for k in ("mean", "p95", "vip_p95")}
        row["peak"] = max(d["peak"] for d in days)
        results[label] = row
        print(f"{label:66} {row['mean']:7.0f} {row['p95']:7.0f} {row['vip_p95']:8.0f} {row['peak']:8d}")
    rr = results[policies[0][0]]
    ours = results[policies[3][0]]
    print(f"\nDeployed policy (language_hold_seconds={deployed:.0f}): "
          f"p95 = {ours['p95'] / rr['p95']:.2f} x round robin, VIP p95 = {ours['vip_p95']:.0f} s")


if __name__ == "__main__":
    main()
