"""CPU used by the processes a benchmark measures, read from /proc (user + system)."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def pids_named(*names: str) -> list[int]:
    out = subprocess.run(["pgrep", "-x", "|".join(names)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class CpuMeter:
    """CPU seconds of a set of processes since start, including those started meanwhile
    (a pool opens PostgreSQL backends under load)."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.start = {pid: cpu_seconds([pid]) for pid in pids()}

    def used(self) -> float:
        return sum(cpu_seconds([pid]) - self.start.get(pid, 0.0) for pid in self.pids())


