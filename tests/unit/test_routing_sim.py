"""The routing simulation's scenario interface (bench/chat_routing_sim.py --scenario FILE --json)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import chat_routing_sim as sim  # noqa: E402
from routing_scenario import ScenarioError, load, validate  # noqa: E402

SMALL = {"hours": 1, "agents": [{"id": "th0", "skills": ["th"], "limit": 2},
                                {"id": "en0", "skills": ["en"], "limit": 2}],
         "load": 0.9, "languages": {"th": 0.5, "en": 0.5}, "vip_share": 0.2,
         "mean_handle_s": 300, "mismatch_factor": 1.5,
         "peaks": [{"from_h": 0.2, "to_h": 0.5, "factor": 1.5}],
         "outages": [{"agent": "th0", "from_h": 0.5, "to_h": 0.7}]}


def write(tmp_path: Path, data) -> str:
    path = tmp_path / "day.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_scenario_json_interface(tmp_path, capsys):
    assert sim.main(["--scenario", write(tmp_path, SMALL), "--days", "2", "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last) == {"round_robin", "deployed"}
    for figures in last.values():
        assert set(figures) == {"p95", "vip_p95", "mean", "max_load"}
        assert figures["max_load"] <= 2 and figures["p95"] >= 0


def test_every_family_day_is_valid():
    days = sorted((BENCH / "routing_days").glob("*.json"))
    assert len(days) >= 20
    for path in days:
        load(path)


@pytest.mark.parametrize("change,message", [
    ({"hours": 0}, "hours: 0 is outside"),
    ({"load": "high"}, "load: expected a number"),
    ({"languages": {"th": 0.5, "en": 0.4}}, "add up to 0.900, not 1"),
    ({"agents": []}, "agents: expected a non-empty list"),
    ({"agents": [{"id": "a", "skills": ["en"], "limit": 0}]}, "agents[0].limit"),
    ({"agents": [{"id": "a", "skills": "en", "limit": 1}]}, "agents[0].skills"),
    ({"outages": [{"agent": "ghost", "from_h": 0, "to_h": 1}]}, "'ghost' is not one of the agents"),
    ({"peaks": [{"from_h": 0.5, "to_h": 0.2, "factor": 2}]}, "to_h (0.2) must be after from_h"),
    ({"mismatch_factor": {"th": 2.0}}, "no factor for en"),
    ({"colour": "blue"}, "unknown field(s) colour"),
])
def test_bad_scenarios_are_refused_with_the_reason(change, message):
    with pytest.raises(ScenarioError) as err:
        validate({**SMALL, **change}, "day.json")
    assert message in str(err.value)


def test_a_bad_file_exits_2_and_says_why(tmp_path, capsys):
    assert sim.main(["--scenario", write(tmp_path, "{not json"), "--json"]) == 2
    assert "not JSON (line 1" in capsys.readouterr().err
    missing = {k: v for k, v in SMALL.items() if k != "vip_share"}
    assert sim.main(["--scenario", write(tmp_path, missing)]) == 2
    assert "missing vip_share" in capsys.readouterr().err
