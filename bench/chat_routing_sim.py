"""Replay a routing day against the team, per policy (DESIGN.md "Routing day").

    .venv/bin/python bench/chat_routing_sim.py [--days 40]
    .venv/bin/python bench/chat_routing_sim.py --scenario FILE.json --days N --json

Without `--scenario`, DESIGN.md's day: 8 agents with a limit of 3 (3 Thai,
5 English), Poisson arrivals at 85 % of capacity over 8 hours (mean handling
6 minutes, exponential), 20 % VIP, 30 % Thai, 1.5x without the language.
A scenario file describes any other day (bench/routing_scenario.py).

Policies: `round_robin` (FIFO, the next agent in turn with a free slot),
`score` (the priority score, skill then load, nobody waits for a skill),
`fixed_hold` (what ran before issue 13: a non-VIP waits up to 600 s for an
agent who covers it) and `deployed`: the very functions the routing worker runs (actions/routing.py
-> actions/routing_policy.plan_next), fed what the worker would have: the
waiting queue, the online agents with their loads, and handling times
learned (actions/routing_stats.RoutingStats) from the conversations this
simulated day has resolved so far, starting from the priors of settings.py.

Prints mean wait, p95 and VIP p95 (seconds; median over seeded days) and
the highest load any agent had (the highest over the days); an agent over
its limit stops the run. With `--json` the last line is
{"round_robin": {"p95", "vip_p95", "mean", "max_load"}, "deployed": {...}}.
"""
from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from actions.routing import (AgentSlot, Priors, RoutingStats, VipGoal, WaitingItem,  # noqa: E402
                             plan_next, priority_score, rank_agents, routing_config)
from actions.routing_stats import (RATE_WINDOW_SECONDS, RECENT_RESOLVED,  # noqa: E402
                                   VIP_WAIT_WINDOW_SECONDS, recent_rate)
from routing_scenario import DESIGN_DAY, ScenarioError, load as load_scenario  # noqa: E402
from routing_scenario import validate  # noqa: E402
from settings import Settings  # noqa: E402

POLICIES = ("round_robin", "score", "fixed_hold", "deployed")
FIRST_RESPONSE_GOAL_S = 120.0
FIXED_HOLD_S = 600.0  # settings.language_hold_seconds before issue 13


def fixed_hold(queue: list[WaitingItem], agents: list[AgentSlot]
               ) -> Iterator[tuple[WaitingItem, list[AgentSlot]]]:
    """The policy the derived hold replaced, for comparison: a non-VIP conversation waits up to
    600 s for a free agent who covers it while one is online (main before issue 13)."""
    online = [a.skills for a in agents]
    for item in sorted(queue, key=lambda i: (-i.score, i.since, i.id)):
        ranked = rank_agents(item.required, agents)
        if not ranked:
            return
        if (not item.vip and not item.required <= ranked[0].skills
                and item.waited_seconds < FIXED_HOLD_S and any(item.required <= s for s in online)):
            continue
        yield item, ranked


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


def arrivals(day: dict[str, Any], seed: int) -> list[Conv]:
    """The day's conversations; depends on the seed only, so every policy gets the same ones."""
    rng = random.Random(seed)
    capacity_per_s = sum(a["limit"] for a in day["agents"]) / day["mean_handle_s"]
    base = day["load"] * capacity_per_s
    end = day["hours"] * 3600

    def factor(t: float) -> float:
        f = 1.0
        for peak in day["peaks"]:
            if peak["from_h"] * 3600 <= t < peak["to_h"] * 3600:
                f *= peak["factor"]
        return f
    top = base * max([1.0] + [factor(p["from_h"] * 3600) for p in day["peaks"]])
    langs = list(day["languages"])
    weights = [day["languages"][lang] for lang in langs]
    convs: list[Conv] = []
    t = 0.0
    while top > 0:
        t += rng.expovariate(top)  # thinning: candidates at the top rate, kept at the rate of t
        if t > end:
            break
        keep = rng.random() < base * factor(t) / top
        vip = rng.random() < day["vip_share"]
        lang = rng.choices(langs, weights)[0]
        handle = rng.expovariate(1 / day["mean_handle_s"])
        if keep:
            convs.append(Conv(f"c{len(convs)}", t, vip, lang, handle))
    return convs


def simulate(day: dict[str, Any], seed: int, policy: str, priors: Priors | None = None,
             goal: VipGoal = VipGoal()) -> dict:
    """One day under one policy: waits, VIP waits, peak load, and what was learned."""
    events: list[tuple[float, int, str, Any]] = []
    seq = 0

    def push(t: float, kind: str, payload: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, payload))

    for conv in arrivals(day, seed):
        push(conv.arrived, "arrive", conv)
        if policy == "fixed_hold":  # its holds end by the clock, not by an event
            push(conv.arrived + FIXED_HOLD_S + 0.001, "tick", None)
    for outage in day["outages"]:
        push(outage["from_h"] * 3600, "away", outage["agent"])
        push(outage["to_h"] * 3600, "back", outage["agent"])

    order = [a["id"] for a in day["agents"]]
    spec = {a["id"]: a for a in day["agents"]}
    slots = {a["id"]: AgentSlot(a["id"], frozenset(a["skills"]), 0, a["limit"]) for a in day["agents"]}
    away: dict[str, int] = {aid: 0 for aid in order}
    stats = RoutingStats(priors or Priors()) if policy == "deployed" else None
    queue: dict[str, Conv] = {}
    arrived: deque[tuple[float, bool]] = deque()  # what the worker reads from `created_at`
    vips: deque[Conv] = deque()
    learned: deque[tuple[str, frozenset[str], frozenset[str], float]] = deque()
    open_since: dict[str, dict[str, float]] = {aid: {} for aid in order}  # the worker's assigned_at
    done: list[Conv] = []
    rr = 0
    peak = 0

    def start(conv: Conv, agent: AgentSlot, now: float) -> None:
        nonlocal peak
        del queue[conv.id]
        agent.load += 1
        if agent.load > agent.limit:
            raise AssertionError(f"{agent.id} over its limit: {agent.load} > {agent.limit}")
        peak = max(peak, agent.load)
        conv.started = now
        open_since[agent.id][conv.id] = now
        factor = 1.0 if conv.lang in agent.skills else day["mismatch_factor"][conv.lang]
        handle = conv.base_handle * factor * spec[agent.id]["handle_factor"]
        push(now + handle, "finish", (agent.id, conv, handle))
        done.append(conv)

    def round_robin(now: float) -> None:
        nonlocal rr
        for conv in sorted(queue.values(), key=lambda c: c.arrived):
            free = [order[(rr + k) % len(order)] for k in range(len(order))]
            free = [aid for aid in free if not away[aid] and slots[aid].free]
            if not free:
                return
            rr = (order.index(free[0]) + 1) % len(order)
            start(conv, slots[free[0]], now)

    def route(now: float) -> None:
        # As actions.routing.route_waiting: one snapshot per pass, loads updated as it assigns,
        # a new pass while the last one assigned something.
        progress = True
        while progress and queue:
            progress = False
            online = [slots[aid] for aid in order if not away[aid]]
            if not any(a.free for a in online):
                return  # as the worker's snapshot: nothing to decide, nothing learned
            if stats is not None:
                while arrived and arrived[0][0] < now - RATE_WINDOW_SECONDS:
                    arrived.popleft()
                stats.arrival_rate = recent_rate((t for t, _ in arrived), now)
                stats.vip_rate = recent_rate((t for t, vip in arrived if vip), now)
                while vips and vips[0].arrived < now - VIP_WAIT_WINDOW_SECONDS:
                    vips.popleft()
                stats.vip_waits = [(c.started if c.started is not None else now) - c.arrived for c in vips]
                stats.open_ages = {aid: sum(now - t for t in since.values())
                                   for aid, since in open_since.items() if since}
            items = [WaitingItem(c.id, priority_score(vip=c.vip, waited_seconds=now - c.arrived,
                                                      lifetime_value=0, priority="medium"),
                                 frozenset({c.lang}), c.vip, now - c.arrived, c.arrived)
                     for c in queue.values()]
            plan = (fixed_hold(items, online) if policy == "fixed_hold"
                    else plan_next(items, online, stats, goal))
            for item, ranked in plan:
                start(queue[item.id], ranked[0], now)
                progress = True

    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == "arrive":
            queue[payload.id] = payload
            arrived.append((now, payload.vip))
            if payload.vip:
                vips.append(payload)
        elif kind == "finish":
            agent_id, conv, handle = payload
            slots[agent_id].load -= 1
            del open_since[agent_id][conv.id]
            if stats is not None:  # the worker learns from the last RECENT_RESOLVED only
                record = (agent_id, frozenset({conv.lang}), slots[agent_id].skills, handle)
                stats.add(*record)
                learned.append(record)
                if len(learned) > RECENT_RESOLVED:
                    stats.add(*learned.popleft(), sign=-1)
        elif kind == "away":
            away[payload] += 1
        elif kind == "back":
            away[payload] -= 1
        (round_robin if policy == "round_robin" else route)(now)

    if queue:
        raise AssertionError(f"{len(queue)} conversations never served (nobody online at the end?)")
    waits = [c.started - c.arrived for c in done]
    vip = [c.started - c.arrived for c in done if c.vip]
    return {"mean": statistics.mean(waits) if waits else 0.0, "p95": p95(waits), "vip_p95": p95(vip),
            "max_load": peak, "served": len(done),
            "within_2min": sum(1 for w in waits if w <= FIRST_RESPONSE_GOAL_S) / max(len(waits), 1),
            "learned": stats.json() if stats is not None else None}


def run_days(day: dict[str, Any], days: int, policies: tuple[str, ...] = POLICIES,
             first_seed: int = 0) -> dict[str, dict[str, float]]:
    """Medians over `days` seeded days per policy (max_load: the highest of any day)."""
    priors, goal = routing_config(Settings.of(routing_hold=True))
    results = {}
    for policy in policies:
        runs = [simulate(day, seed, policy, priors, goal) for seed in range(first_seed, first_seed + days)]
        row: dict[str, float] = {k: statistics.median(r[k] for r in runs)
                                 for k in ("p95", "vip_p95", "mean", "within_2min")}
        row["max_load"] = max(r["max_load"] for r in runs)
        results[policy] = row
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", help="a day as JSON (bench/routing_scenario.py); default DESIGN.md's")
    parser.add_argument("--days", type=int, default=None, help="seeded days (default 40, 12 with --scenario)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args(argv)
    try:
        day = load_scenario(args.scenario) if args.scenario else validate(DESIGN_DAY, "DESIGN day")
    except ScenarioError as exc:
        print(f"bad scenario: {exc}", file=sys.stderr)
        return 2
    days = args.days or (12 if args.scenario else 40)
    if days < 1:
        parser.error("--days must be at least 1")
    results = run_days(day, days)
    print(f"{day['name']}, median of {days} seeded days (waits in seconds)")
    print(f"{'policy':12} {'mean':>7} {'p95':>7} {'VIP p95':>8} {'<=2 min':>8} {'max load':>8}")
    for policy, row in results.items():
        print(f"{policy:12} {row['mean']:7.0f} {row['p95']:7.0f} {row['vip_p95']:8.0f} "
              f"{row['within_2min']:8.1%} {row['max_load']:8d}")
    rr, ours = results["round_robin"], results["deployed"]
    ratio = ours["p95"] / rr["p95"] if rr["p95"] else (1.0 if not ours["p95"] else float("inf"))
    print(f"deployed: p95 = {ratio:.2f} x round robin, VIP p95 = {ours['vip_p95']:.0f} s")
    if args.json:
        keys = ("p95", "vip_p95", "mean", "max_load")
        print(json.dumps({p: {k: round(results[p][k], 1) if k != "max_load" else results[p][k]
                              for k in keys} for p in ("round_robin", "deployed")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
