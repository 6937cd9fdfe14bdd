"""Waiting on a condition with a deadline (never a fixed sleep), and what group commit has queued."""
from __future__ import annotations

import time

from group_commit import GroupCommit

TIMEOUT = 10


def wait_until(predicate, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def queued(group: GroupCommit, key) -> int:
    """How many requests of `key` wait for the next batch (the test's view inside)."""
    with group._guard:
        state = group._keys.get(key)
        return len(state.waiting.items) if state and state.waiting else 0
