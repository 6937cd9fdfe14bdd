"""Group commit: concurrent requests for one key settled together, by one of them.

Every hold of a hot product wants the same stock row, and PostgreSQL can
update one row only once per commit (the row lock is held until the commit's
WAL flush): holds one at a time top out at a few hundred a second and leave
dozens of backends queued on that lock. So the requests that arrive in a
process while a batch of their key is being settled wait together and go as
the next batch (for holds: one statement for all of them).

No timer: a batch waits only while the one before it runs, so a lone request
goes at once, in its own thread, and a busy key makes batches as large as the
load. What gathers while a batch runs is settled by a runner thread (a
greenlet under gevent) that takes batch after batch and ends when none is
waiting; a request only ever waits for its own result, so a request that is
abandoned (its greenlet killed) never leaves the others of its batch waiting.
"""
from __future__ import annotations

import _thread
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic

from typing_extensions import TypeVar  # `default=` (PEP 696): typing has it from 3.13

Item = TypeVar("Item")
Result = TypeVar("Result")
# Last and with a default, so `GroupCommit[Item, Result]` still means any hashable key.
Key = TypeVar("Key", bound=Hashable, default=Hashable)


@dataclass(eq=False)
class _Batch(Generic[Item, Result]):
    items: list[Item] = field(default_factory=list)
    results: list[Result] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class _Key(Generic[Item, Result]):
    waiting: _Batch[Item, Result] | None = None


class GroupCommit(Generic[Item, Result, Key]):
    """`submit(key, item)` returns `run(key, items)[its index]`; one `run` per key at a time.

    `run` gets the items in arrival order and returns one result per item; if
    it raises, every item of the batch gets that exception. The type
    parameters are the item's, the result's and the key's (any hashable by
    default): `GroupCommit[Reservation, bool, Engine]`.
    """

    def __init__(self, run: Callable[[Key, list[Item]], list[Result]],
                 name: str = "group-commit") -> None:
        self._run, self._name = run, name
        self._guard = threading.Lock()
        self._keys: dict[Key, _Key[Item, Result]] = {}  # keys being settled

    def submit(self, key: Key, item: Item) -> Result:
        with self._guard:
            state = self._keys.get(key)
            inline = state is None
            if state is None:  # the key is free: this request settles itself, here and now
                state = self._keys[key] = _Key()
                batch: _Batch[Item, Result] = _Batch([item])
                index = 0
            else:
                batch = state.waiting = state.waiting or _Batch()
                index = len(batch.items)
                batch.items.append(item)
        if inline:
            try:
                self._settle(key, batch)
            finally:  # whatever gathered meanwhile goes to a runner, even if this one was killed
                with self._guard:
                    gathered = state.waiting is not None
                    if not gathered:
                        del self._keys[key]
                if gathered:
                    self._hand_over(key, state)
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error
        assert batch.results is not None
        return batch.results[index]

    def _hand_over(self, key: Key, state: _Key[Item, Result]) -> None:
        # A bare thread (a bare greenlet under gevent), not a threading.Thread:
        # the runner needs no name, no join and no daemon flag, and under a
        # burst of connects a Thread object per batch was 3 % of the CPU.
        try:
            _thread.start_new_thread(self._runner, (key, state))
        except RuntimeError:  # no thread to be had: this one settles them, rather than nobody
            self._runner(key, state)

    def _settle(self, key: Key, batch: _Batch[Item, Result]) -> None:
        try:
            results = self._run(key, batch.items)
            if len(results) != len(batch.items):
                raise RuntimeError(f"{len(results)} results for {len(batch.items)} items")
            batch.results = results
        except Exception as e:  # noqa: BLE001 - every request of the batch gets it
            batch.error = e
        batch.done.set()

    def _runner(self, key: Key, state: _Key[Item, Result]) -> None:
        batch: _Batch[Item, Result] | None = None
        try:
            while True:
                with self._guard:
                    batch, state.waiting = state.waiting, None
                    if batch is None:
                        del self._keys[key]
                        return
                self._settle(key, batch)
        except BaseException as e:  # the runner itself was stopped: fail what it would have run
            with self._guard:
                self._keys.pop(key, None)
                stranded = [b for b in (batch, state.waiting) if b is not None and not b.done.is_set()]
            for b in stranded:
                b.error = RuntimeError(f"{self._name} stopped: {e!r}")
                b.done.set()
            raise
