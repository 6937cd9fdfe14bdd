"""group_commit.py: requests for one key that arrive while its batch runs go together next."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from group_commit import GroupCommit
from tests.support.waiting import TIMEOUT, queued, wait_until


class Gate:
    """A `run` that records its batches and holds the first one until `open()`."""

    def __init__(self, answer=lambda key, item: (key, item)):
        self.batches: list[tuple[object, list]] = []
        self.threads: list[threading.Thread] = []
        self.started = threading.Event()
        self._open = threading.Event()
        self.answer = answer

    def __call__(self, key, items):
        self.batches.append((key, list(items)))
        self.threads.append(threading.current_thread())
        self.started.set()
        assert self._open.wait(TIMEOUT)
        return [self.answer(key, item) for item in items]

    def open(self):
        self._open.set()


def running(pool, group, gate, key, item):
    """Submits `item` and waits until its batch runs (and holds the key, until the gate opens)."""
    future = pool.submit(group.submit, key, item)
    assert gate.started.wait(TIMEOUT)
    return future


def test_a_lone_request_is_a_batch_of_one_and_runs_at_once():
    gate = Gate()
    gate.open()
    group = GroupCommit(gate)
    assert group.submit("k", 1) == ("k", 1)
    assert gate.batches == [("k", [1])] and gate.threads == [threading.current_thread()]
    wait_until(lambda: not group._keys)  # the runner ends when nothing waits


def test_requests_arriving_while_a_batch_runs_go_together_in_order():
    gate = Gate()
    group = GroupCommit(gate)
    with ThreadPoolExecutor(8) as pool:
        first = running(pool, group, gate, "k", 0)
        rest = []
        for i in range(1, 8):
            rest.append(pool.submit(group.submit, "k", i))
            wait_until(lambda: queued(group, "k") == i)  # arrival order is the order sent
        gate.open()
        assert first.result(TIMEOUT) == ("k", 0)
        assert [f.result(TIMEOUT) for f in rest] == [("k", i) for i in range(1, 8)]
    assert gate.batches == [("k", [0]), ("k", [1, 2, 3, 4, 5, 6, 7])]
    # The first request settled itself; what gathered meanwhile went to a runner of its own.
    assert gate.threads[0] is not gate.threads[1]   # the batch that gathered ran on a runner
    wait_until(lambda: not group._keys)


def test_keys_do_not_wait_for_each_other():
    gate = Gate()
    group = GroupCommit(gate)
    with ThreadPoolExecutor(2) as pool:
        held = running(pool, group, gate, "slow", 1)
        fast = pool.submit(group.submit, "fast", 3)
        wait_until(lambda: len(gate.batches) == 2)  # "fast" started while "slow" still runs
        gate.open()
        assert held.result(TIMEOUT) == ("slow", 1) and fast.result(TIMEOUT) == ("fast", 3)


def test_a_failing_batch_fails_each_of_its_requests_and_the_key_goes_on():
    calls = []

    def run(key, items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("refused")
        return [item.upper() for item in items]

    group = GroupCommit(run)
    with pytest.raises(ValueError, match="refused"):
        group.submit("k", "bad")
    assert group.submit("k", "good") == "GOOD"
    assert calls == [["bad"], ["good"]]


def test_a_request_killed_while_settling_still_hands_over_what_gathered():
    gate = Gate()

    def run(key, items):
        if items == ["doomed"]:
            gate(key, items)
            raise KeyboardInterrupt  # not an Exception: it ends the request, not the batch
        return [item.upper() for item in items]

    group = GroupCommit(run)
    with ThreadPoolExecutor(2) as pool:
        doomed = running(pool, group, gate, "k", "doomed")
        waiting = pool.submit(group.submit, "k", "patient")
        wait_until(lambda: queued(group, "k") == 1)
        gate.open()
        with pytest.raises(KeyboardInterrupt):
            doomed.result(TIMEOUT)
        assert waiting.result(TIMEOUT) == "PATIENT"
    wait_until(lambda: not group._keys)


def test_without_a_thread_to_start_the_request_that_ran_settles_what_gathered(monkeypatch):
    import group_commit as module

    def no_threads(*_args):
        raise RuntimeError("can't start new thread")

    gate = Gate()
    group = GroupCommit(gate)
    with ThreadPoolExecutor(2) as pool:
        first = running(pool, group, gate, "k", 1)
        waiting = pool.submit(group.submit, "k", 2)
        wait_until(lambda: queued(group, "k") == 1)
        monkeypatch.setattr(module._thread, "start_new_thread", no_threads)  # the pool's threads exist
        gate.open()
        assert first.result(TIMEOUT) == ("k", 1) and waiting.result(TIMEOUT) == ("k", 2)
    assert gate.batches == [("k", [1]), ("k", [2])] and gate.threads[0] is gate.threads[1]
    assert not group._keys


def test_a_wrong_number_of_results_is_an_error_not_a_wrong_answer():
    group = GroupCommit(lambda key, items: items[:-1])
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        group.submit("k", 1)


def test_every_request_of_a_failing_batch_gets_the_error():
    gate = Gate(answer=lambda key, item: 1 // item)  # item 0 divides by zero
    group = GroupCommit(gate)
    with ThreadPoolExecutor(4) as pool:
        first = running(pool, group, gate, "k", 1)
        batch = [pool.submit(group.submit, "k", i) for i in (2, 0, 4)]
        wait_until(lambda: queued(group, "k") == 3)
        gate.open()
        assert first.result(TIMEOUT) == 1
        for f in batch:
            with pytest.raises(ZeroDivisionError):
                f.result(TIMEOUT)
