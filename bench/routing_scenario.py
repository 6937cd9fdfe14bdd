"""A routing day as a JSON file: what it may hold, checked before anything runs.

    {"hours": 8,
     "agents": [{"id": "th0", "skills": ["th"], "limit": 3}, ...],
     "load": 0.85,                    # arrivals / the team's capacity at mean_handle_s
     "languages": {"th": 0.3, "en": 0.7},
     "vip_share": 0.2,
     "mean_handle_s": 360,
     "mismatch_factor": 1.5,          # or {"th": 2.0, "en": 1.2}
     "peaks": [{"from_h": 3, "to_h": 4, "factor": 1.6}],
     "outages": [{"agent": "th1", "from_h": 2, "to_h": 4}]}

An agent may also carry `"handle_factor"` (how much slower than the mean it
works, default 1.0), so per-agent learning has something to find.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REQUIRED = ("hours", "agents", "load", "languages", "vip_share", "mean_handle_s", "mismatch_factor")
KNOWN = set(REQUIRED) | {"peaks", "outages", "name", "description"}

DESIGN_DAY: dict[str, Any] = {
    "name": "DESIGN.md's routing day",
    "hours": 8,
    "agents": ([{"id": f"th{i}", "skills": ["th"], "limit": 3} for i in range(3)]
               + [{"id": f"en{i}", "skills": ["en"], "limit": 3} for i in range(5)]),
    "load": 0.85, "languages": {"th": 0.3, "en": 0.7}, "vip_share": 0.2,
    "mean_handle_s": 360, "mismatch_factor": 1.5, "peaks": [], "outages": [],
}


class ScenarioError(ValueError):
    """A scenario file that cannot be replayed; the message says where and why."""


def _number(where: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"{where}: expected a number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise ScenarioError(f"{where}: {value!r} is outside {bound}")
    return float(value)


def _interval(where: str, entry: dict, hours: float) -> tuple[float, float]:
    start = _number(f"{where}.from_h", entry.get("from_h"), 0, hours)
    end = _number(f"{where}.to_h", entry.get("to_h"), 0, hours)
    if end <= start:
        raise ScenarioError(f"{where}: to_h ({end}) must be after from_h ({start})")
    return start, end


def validate(data: Any, source: str = "scenario") -> dict[str, Any]:
    """The scenario with defaults filled in, or ScenarioError naming the first problem."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ScenarioError(f"{source}: missing {', '.join(missing)}")
    unknown = sorted(set(data) - KNOWN)
    if unknown:
        raise ScenarioError(f"{source}: unknown field(s) {', '.join(unknown)}")
    hours = _number(f"{source}.hours", data["hours"], 0, 24 * 7, low_open=True)
    agents = data["agents"]
    if not isinstance(agents, list) or not agents:
        raise ScenarioError(f"{source}.agents: expected a non-empty list")
    seen: set[str] = set()
    clean_agents = []
    for n, agent in enumerate(agents):
        where = f"{source}.agents[{n}]"
        if not isinstance(agent, dict):
            raise ScenarioError(f"{where}: expected an object")
        aid = agent.get("id")
        if not isinstance(aid, str) or not aid:
            raise ScenarioError(f"{where}.id: expected a non-empty string")
        if aid in seen:
            raise ScenarioError(f"{where}.id: {aid!r} appears twice")
        seen.add(aid)
        skills = agent.get("skills")
        if not isinstance(skills, list) or not all(isinstance(s, str) and s for s in skills):
            raise ScenarioError(f"{where}.skills: expected a list of strings")
        limit = agent.get("limit")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ScenarioError(f"{where}.limit: expected an integer from 1 to 100, got {limit!r}")
        unknown = sorted(set(agent) - {"id", "skills", "limit", "handle_factor"})
        if unknown:
            raise ScenarioError(f"{where}: unknown field(s) {', '.join(unknown)}")
        clean_agents.append({"id": aid, "skills": [s.lower() for s in skills], "limit": limit,
                             "handle_factor": _number(f"{where}.handle_factor",
                                                      agent.get("handle_factor", 1.0), 0, 10,
                                                      low_open=True)})
    load = _number(f"{source}.load", data["load"], 0, 3, low_open=True)
    languages = data["languages"]
    if not isinstance(languages, dict) or not languages:
        raise ScenarioError(f"{source}.languages: expected an object {{language: share}}")
    shares = {str(k).lower(): _number(f"{source}.languages.{k}", v, 0, 1) for k, v in languages.items()}
    if abs(sum(shares.values()) - 1.0) > 0.01:
        raise ScenarioError(f"{source}.languages: shares add up to {sum(shares.values()):.3f}, not 1")
    mismatch = data["mismatch_factor"]
    if isinstance(mismatch, dict):
        factors = {str(k).lower(): _number(f"{source}.mismatch_factor.{k}", v, 0, 10, low_open=True)
                   for k, v in mismatch.items()}
        absent = sorted(set(shares) - set(factors))
        if absent:
            raise ScenarioError(f"{source}.mismatch_factor: no factor for {', '.join(absent)}")
    else:
        factor = _number(f"{source}.mismatch_factor", mismatch, 0, 10, low_open=True)
        factors = {lang: factor for lang in shares}
    peaks = data.get("peaks", [])
    outages = data.get("outages", [])
    if not isinstance(peaks, list) or not isinstance(outages, list):
        raise ScenarioError(f"{source}: peaks and outages must be lists")
    clean_peaks = []
    for n, peak in enumerate(peaks):
        where = f"{source}.peaks[{n}]"
        if not isinstance(peak, dict):
            raise ScenarioError(f"{where}: expected an object")
        start, end = _interval(where, peak, hours)
        clean_peaks.append({"from_h": start, "to_h": end,
                            "factor": _number(f"{where}.factor", peak.get("factor"), 0, 10)})
    clean_outages = []
    for n, outage in enumerate(outages):
        where = f"{source}.outages[{n}]"
        if not isinstance(outage, dict):
            raise ScenarioError(f"{where}: expected an object")
        if outage.get("agent") not in seen:
            raise ScenarioError(f"{where}.agent: {outage.get('agent')!r} is not one of the agents")
        start, end = _interval(where, outage, hours)
        clean_outages.append({"agent": outage["agent"], "from_h": start, "to_h": end})
    return {"name": str(data.get("name", source)), "hours": hours, "agents": clean_agents,
            "load": load, "languages": shares, "vip_share": _number(f"{source}.vip_share",
                                                                   data["vip_share"], 0, 1),
            "mean_handle_s": _number(f"{source}.mean_handle_s", data["mean_handle_s"], 0, 86400,
                                     low_open=True),
            "mismatch_factor": factors, "peaks": clean_peaks, "outages": clean_outages}


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return validate(data, str(path))
