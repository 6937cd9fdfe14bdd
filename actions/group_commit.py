"""Group commit: concurrent requests for one key settled together, by one of them.

Every hold of a hot product wants the same stock row, and PostgreSQL can
update one row only once per commit (the row lock is held until the commit's
WAL flush): holds one at a time top out at a few hundred a second and leave
dozens of backends queued on that lock. So the holds of one product that
arrive in a process while a batch of that product is being settled wait
together and go as the next batch, one statement for all of them.

No timer: a batch waits only while the one before it runs, so a lone request
goes at once and a busy key makes batches as large as the load. Each busy key
has one runner thread (a greenlet under gevent) that settles its batches one
after another and ends when none is waiting; a request only waits for its
result, so a request that is abandoned (its client gone, its greenlet killed)
never leaves the others of its batch waiting.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(eq=False)
class _Batch(Generic[Item, Result]):
    items: list[Item] = field(default_factory=list)
    results: list[Result] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class _Key(Generic[Item, Result]):
    waiting: _Batch[Item, Result] | None = None


class GroupCommit(Generic[Item, Result]):
    """`submit(key, item)` returns `run(key, items)[its index]`; one `run` per key at a time.

    `run` gets the items in arrival order and returns one result per item; if
    it raises, every item of the batch gets that exception.
    """

    def __init__(self, run: Callable[[Hashable, list[Item]], list[Result]],
                 name: str = "group-commit") -> None:
        self._run, self._name = run, name
        self._guard = threading.Lock()
        self._keys: dict[Hashable, _Key[Item, Result]] = {}  # keys with a runner

    def submit(self, key: Hashable, item: Item) -> Result:
        with self._guard:
            state = self._keys.get(key)
            if state is None:
                state = self._keys[key] = _Key()
                threading.Thread(target=self._runner, args=(key, state), name=self._name,
                                 daemon=True).start()
            batch = state.waiting
            if batch is None:
                batch = state.waiting = _Batch()
            index = len(batch.items)
            batch.items.append(item)
        batch.done.wait()
        if batch.error is not None:
            raise batch.error
        assert batch.results is not None
        return batch.results[index]

    def _runner(self, key: Hashable, state: _Key[Item, Result]) -> None:
        batch: _Batch[Item, Result] | None = None
        try:
            while True:
                with self._guard:
                    batch, state.waiting = state.waiting, None
                    if batch is None:
                        del self._keys[key]
                        return
                try:
                    results = self._run(key, batch.items)
                    if len(results) != len(batch.items):
                        raise RuntimeError(f"{len(results)} results for {len(batch.items)} items")
                    batch.results = results
                except Exception as e:  # noqa: BLE001 - every request of the batch gets it
                    batch.error = e
                batch.done.set()
        except BaseException as e:  # the runner itself was stopped: fail what it would have run
            with self._guard:
                self._keys.pop(key, None)
                stranded = [b for b in (batch, state.waiting) if b is not None and not b.done.is_set()]
            for b in stranded:
                b.error = RuntimeError(f"{self._name} stopped: {e!r}")
                b.done.set()
            raise
