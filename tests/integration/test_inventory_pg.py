"""Inventory and reservations on real PostgreSQL and Redis, with real concurrency.

- 500 holds at once through two web processes for 100 in stock: exactly 100 held.
- Commits, releases, expiries and restocks racing in threads keep on-hand and held exact.
- A worker holding an ETA expiry is SIGKILLed: the beat sweep still expires the hold on time.
- Holds that arrive together in one process go as one batch (one statement): mixed
  quantities over two locations never oversell and never refuse a hold a level had room
  for; a batch stops short of the low-stock threshold and the crossing alerts once; a
  batch of several products takes each from its own stock; a batch that PostgreSQL fails
  to break a deadlock holds nothing; one Idempotency-Key twice in a batch holds once.
"""
from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select, text

import broadcast
from actions.inventory import batch, reservations
from actions.inventory import stock as inventory
from actions.inventory.stock import InventoryError, LevelKey
from broadcast.bus import MemoryBus
from broadcast.events import BEFORE_FIRST
from models import Reservation, StockLevel, User, make_engine, make_session_factory, session_scope
from tests.support.brokers import celery_for, scheduled_task_names
from tests.support.clients import WsClient, auth, token
from tests.support.procs import WebServer, Worker
from tests.support.waiting import queued, wait_until


class Db:
    """What `batch.hold_together` needs of the wiring (actions/database.py), on `sessions`."""

    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self.autocommit_engine = sessions.kw["bind"].execution_options(isolation_level="AUTOCOMMIT")

    def session(self):
        return session_scope(self.sessions)

    def autocommit_connection(self):
        return self.autocommit_engine.connect()


@functools.cache
def _db(sessions) -> Db:
    # One per session factory: the batch gathers the holds of one engine together.
    return Db(sessions)


def hold_together(sessions, **hold):
    return batch.hold_together(_db(sessions), **hold)


@contextmanager
def sessions_on(url: str):
    from settings import normalise_database_url
    engine = make_engine(normalise_database_url(url), pool_size=20, max_overflow=10)
    broadcast.use_bus(MemoryBus())
    try:
        yield make_session_factory(engine)
    finally:
        broadcast.use_bus(None)
        engine.dispose()


@pytest.fixture
def sessions(pg_url):
    with sessions_on(pg_url) as factory:
        yield factory


def level_of(sessions, product_id):
    with session_scope(sessions) as s:
        level = s.scalar(select(StockLevel).where(StockLevel.product_id == product_id))
        held = s.scalar(select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
            Reservation.product_id == product_id, Reservation.status == "held"))
        return level.on_hand, level.held, held


def test_500_holds_at_once_through_two_web_processes_hold_exactly_the_stock(procs, stack_env):
    a = procs.start(WebServer(stack_env, procs.log_dir, "web-a"))
    b = procs.start(WebServer(stack_env, procs.log_dir, "web-b"))
    pid = f"hot-{uuid.uuid4().hex[:8]}"
    res = requests.put(f"{a.url}/api/v1/products/{pid}/stock", json={"quantity": 100},
                       headers=auth("store", "service"), timeout=10)
    assert res.status_code == 200, res.text
    barrier = threading.Barrier(50)
    http = threading.local()

    def one(i):
        if not hasattr(http, "s"):
            http.s = requests.Session()
            barrier.wait(timeout=30)  # every thread starts posting at the same moment
        server = (a, b)[i % 2]
        r = http.s.post(f"{server.url}/api/v1/reservations", json={"product_id": pid, "quantity": 1},
                        headers=auth(f"buyer-{i}", "customer"), timeout=60)
        return r.status_code, r.json()

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(500)))
    codes = [c for c, _ in results]
    assert codes.count(201) == 100 and codes.count(409) == 400, set(codes)
    assert {b["error"]["code"] for c, b in results if c == 409} == {"out_of_stock"}
    with sessions_on(stack_env["DATABASE_URL"]) as sessions:
        assert level_of(sessions, pid) == (100, 100, 100)
    stock = requests.get(f"{b.url}/api/v1/products/{pid}/stock", headers=auth("v", "customer"),
                         timeout=10).json()
    assert stock["variants"] == [{"variant_id": None, "available_quantity": 0, "is_in_stock": False}]


def test_commits_releases_expiries_and_restocks_racing_stay_consistent(sessions):
    pid = f"race-{uuid.uuid4().hex[:8]}"
    key = LevelKey(pid)
    with session_scope(sessions) as s:
        inventory.set_stock(s, key, 30)
    restocked, sold, stop = [0], [0], time.monotonic() + 6
    lock = threading.Lock()

    def shopper(n):
        rnd = random.Random(n)
        while time.monotonic() < stop:
            try:
                # ttl 0..1 s: many holds expire while others race to commit them
                r, _ = hold_together(sessions, product_id=pid, variant_id=None,
                                     quantity=rnd.randint(1, 3), owner_id=f"u{n}",
                                     customer_id=f"u{n}", ttl_seconds=rnd.choice([0, 1, 30]))
                rid, qty = r.id, r.quantity
            except InventoryError:
                continue
            try:
                with session_scope(sessions) as s:
                    roll = rnd.random()
                    if roll < 0.45:
                        reservations.commit(s, rid)
                        with lock:
                            sold[0] += qty
                    elif roll < 0.8:
                        reservations.release(s, rid)
                    else:
                        reservations.expire(s, rid)
            except InventoryError:
                pass

    def restocker():
        rnd = random.Random(99)
        while time.monotonic() < stop:
            delta = rnd.choice([5, 3, -2, -4])
            try:
                with session_scope(sessions) as s:
                    inventory.adjust_stock(s, key, delta, "restock" if delta > 0 else "adjustment")
                with lock:
                    restocked[0] += delta
            except InventoryError:
                pass  # a decrease refused: those units were held

    threads = [threading.Thread(target=shopper, args=(n,)) for n in range(10)]
    threads.append(threading.Thread(target=restocker))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    on_hand, held, held_rows = level_of(sessions, pid)
    assert held == held_rows >= 0 and on_hand >= held
    assert on_hand == 30 + restocked[0] - sold[0]
    with session_scope(sessions) as s:
        committed = s.scalar(select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
            Reservation.product_id == pid, Reservation.status == "committed"))
        statuses = set(s.scalars(select(Reservation.status).where(Reservation.product_id == pid)))
    assert committed == sold[0] > 0
    assert {"committed", "released", "expired"} <= statuses


def hold_in_batch(sessions, monkeypatch, pid, asks, ttl_seconds=60):
    """Holds `asks` = [(quantity, owner, idempotency key[, product])] (of `pid` unless
    the ask names a product) at once from threads, the first
    batch (of the first ask) kept running until all the others wait, so they go as one
    batch. Returns (answers in ask order, the quantities of each batch, which of each
    batch's holds the batch statement took)."""
    batches, taken, together = [], [], batch._together
    run = together._run

    def recording(key, holds):
        batches.append([h.quantity for h in holds])
        if len(batches) == 1:
            wait_until(lambda: queued(together, key) == len(asks) - 1)
        taken.append(run(key, holds))
        return taken[-1]

    monkeypatch.setattr(together, "_run", recording)

    def one(ask):
        quantity, owner, key, product = (*ask, pid)[:4]
        try:
            r, created = hold_together(sessions, product_id=product, variant_id=None,
                                       quantity=quantity, owner_id=owner, customer_id=owner,
                                       ttl_seconds=ttl_seconds, idempotency_key=key)
            return "created" if created else "found", r.id, r.location, r.quantity
        except InventoryError as e:
            return e.code, None, None, quantity

    with ThreadPoolExecutor(len(asks)) as pool:
        first = pool.submit(one, asks[0])
        wait_until(lambda: batches)
        rest = list(pool.map(one, asks[1:]))
    return [first.result(timeout=30)] + rest, batches, taken


def levels_of(sessions, pid):
    """{location: (on_hand, held, units in held reservations there)}"""
    with session_scope(sessions) as s:
        out = {}
        for level in s.scalars(select(StockLevel).where(StockLevel.product_id == pid)):
            rows = s.scalar(select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
                Reservation.product_id == pid, Reservation.location == level.location,
                Reservation.status == "held"))
            out[level.location] = (level.on_hand, level.held, rows)
        return out


def test_holds_arriving_together_go_as_one_batch_and_never_oversell(sessions, monkeypatch):
    pid = f"batch-{uuid.uuid4().hex[:8]}"
    with session_scope(sessions) as s:
        inventory.set_stock(s, LevelKey(pid, "", "a-shelf"), 4)
        inventory.set_stock(s, LevelKey(pid, "", "b-shelf"), 9)
    asks = [(q, f"u{i}", None) for i, q in enumerate([1, 3, 2, 1, 5, 2, 1, 4, 1, 2, 3, 1])]
    answers, batches, _ = hold_in_batch(sessions, monkeypatch, pid, asks)
    assert batches[0] == [1] and sorted(batches[1]) == sorted(q for q, _, _ in asks[1:])
    levels = levels_of(sessions, pid)
    for on_hand, held, rows in levels.values():
        assert held == rows <= on_hand
    held_answers = [a for a in answers if a[0] == "created"]
    assert sum(a[3] for a in held_answers) == sum(held for _, held, _ in levels.values())
    for location in ("a-shelf", "b-shelf"):
        with session_scope(sessions) as s:
            assert s.scalar(select(func.count()).select_from(Reservation).where(
                Reservation.product_id == pid, Reservation.location == location)) == \
                sum(1 for a in held_answers if a[2] == location)
    # A refusal is never wrong: no level has room for a hold that was refused.
    refused = [a[3] for a in answers if a[0] == "out_of_stock"]
    assert refused and {a[0] for a in answers} == {"created", "out_of_stock"}
    assert all(on_hand - held < min(refused) for on_hand, held, _ in levels.values())


def test_a_batch_stops_short_of_the_low_stock_threshold_and_the_crossing_alerts_once(
        sessions, monkeypatch):
    pid = f"low-{uuid.uuid4().hex[:8]}"
    admin = f"boss-{uuid.uuid4().hex[:8]}"
    told = []
    monkeypatch.setattr("actions.inventory.stock.notify",
                        lambda session, user_id, type, data: told.append((user_id, type, data)))
    with session_scope(sessions) as s:
        s.add(User(id=admin, role="admin"))
        inventory.set_stock(s, LevelKey(pid), 10, low_stock_threshold=3)
    answers, batches, _ = hold_in_batch(
        sessions, monkeypatch, pid, [(1, f"u{i}", None) for i in range(8)])
    assert [a[0] for a in answers] == ["created"] * 8
    assert batches[:2] == [[1], [1] * 7]
    assert levels_of(sessions, pid) == {"default": (10, 8, 8)}
    with session_scope(sessions) as s:
        level = s.scalar(select(StockLevel).where(StockLevel.product_id == pid))
        assert level.low_stock_alerted
    mine = [t for t in told if t[0] == admin]
    assert len(mine) == 1 and mine[0][1] == "inventory_alert"
    assert mine[0][2]["current_quantity"] == 3 and mine[0][2]["alert"] == "low_stock"


def test_a_batch_of_several_products_takes_each_from_its_own_stock(sessions, monkeypatch):
    bus = MemoryBus()
    broadcast.use_bus(bus)
    tag = uuid.uuid4().hex[:8]
    shirt, mug, gone = f"shirt-{tag}", f"mug-{tag}", f"gone-{tag}"
    with session_scope(sessions) as s:
        inventory.set_stock(s, LevelKey(shirt), 10)
        inventory.set_stock(s, LevelKey(mug), 3)
        inventory.set_stock(s, LevelKey(gone), 0)
    asks = [(1, "a", None, shirt), (2, "b", None, mug), (3, "c", None, shirt),
            (2, "d", None, mug), (1, "e", None, gone), (1, "f", None, mug)]
    answers, batches, _ = hold_in_batch(sessions, monkeypatch, shirt, asks)
    assert len(batches[1]) == 5
    got = [a[0] for a in answers]
    # The mug's smallest hold first (1), then one of the two 2s fits in its 3 units.
    assert (got[0], got[2], got[4], got[5]) == ("created", "created", "out_of_stock", "created")
    assert sorted((got[1], got[3])) == ["created", "out_of_stock"]
    assert levels_of(sessions, shirt) == {"default": (10, 4, 4)}
    assert levels_of(sessions, mug) == {"default": (3, 3, 3)}
    assert levels_of(sessions, gone) == {"default": (0, 0, 0)}
    # Each product's viewers saw its own figures go down hold by hold, never another's.
    def seen(product):
        got, _ = bus.history(f"product:{product}", BEFORE_FIRST)
        return [(e.name, e.data["available_quantity"]) for e in got]

    assert seen(shirt) == [("inventory_update", 10), ("inventory_update", 9),
                           ("inventory_update", 6)]
    mug_seen = seen(mug)
    assert mug_seen[:2] == [("inventory_update", 3), ("inventory_update", 2)]
    assert ("inventory_update", 0) in mug_seen and ("out_of_stock", 0) in mug_seen
    assert seen(gone) == [("inventory_update", 0), ("out_of_stock", 0)]


def test_a_batch_caught_in_a_deadlock_holds_nothing_and_says_so(sessions):
    """A transaction locks the levels of two products in the other order than a batch:
    PostgreSQL breaks the cycle by failing the batch, whose holds then go their own way."""
    tag = uuid.uuid4().hex[:8]
    first, second = f"dl-a-{tag}", f"dl-b-{tag}"
    with session_scope(sessions) as s:
        inventory.set_stock(s, LevelKey(first), 5)   # lower id: the batch locks it first
        inventory.set_stock(s, LevelKey(second), 5)
    # Which of the two PostgreSQL fails is whose deadlock check finds the cycle first: the
    # batch checks 3 s after it starts waiting (the other transaction is waiting by then),
    # the other transaction only after 30 s.
    engine = make_engine(sessions.kw["bind"].url.render_as_string(hide_password=False),
                         connect_args={"options": "-c deadlock_timeout=3s"})
    now = datetime.now(UTC)
    holds = [Reservation(id=uuid.uuid4().hex, product_id=p, variant_id="", location="", quantity=1,
                         customer_id="c", owner_id="c", status="held", expires_at=now + timedelta(
                             seconds=60), created_at=now, updated_at=now) for p in (first, second)]
    lock_second = "SELECT 1 FROM stock_levels WHERE product_id = :p FOR UPDATE"
    # The pool closes last: whatever happens, `other` lets go of its locks before the
    # test waits for the batch's thread.
    with ThreadPoolExecutor(1) as pool, engine.connect() as other:
        other.execute(text("SET deadlock_timeout = '30s'"))
        other.execute(text(lock_second), {"p": second})
        blocker = other.execute(text("SELECT pg_backend_pid()")).scalar()
        taking = pool.submit(batch.take_together, engine, holds)
        # Autocommit: in a transaction pg_stat_activity would stay as first read.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watch:
            wait_until(lambda: watch.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE :blocker = ANY(pg_blocking_pids(pid))"),
                {"blocker": blocker}).scalar() == 1)
        # Now the cycle: PostgreSQL's check (after deadlock_timeout) fails the batch,
        # which waited first; this lock is granted once it has.
        other.execute(text(lock_second), {"p": first})
        assert taking.result(timeout=30) == [False, False]
        other.rollback()
    engine.dispose()
    assert levels_of(sessions, first) == {"default": (5, 0, 0)}
    assert levels_of(sessions, second) == {"default": (5, 0, 0)}


def test_one_idempotency_key_twice_in_a_batch_holds_once(sessions, monkeypatch):
    pid = f"idem-{uuid.uuid4().hex[:8]}"
    with session_scope(sessions) as s:
        inventory.set_stock(s, LevelKey(pid), 5)
    asks = [(1, "first", None), (2, "cart", "checkout-1"), (1, "other", None),
            (2, "cart", "checkout-1")]
    answers, batches, _ = hold_in_batch(sessions, monkeypatch, pid, asks)
    assert len(batches[1]) == 3
    kinds = sorted(a[0] for a in answers[1::2])
    assert kinds == ["created", "found"] and answers[1][1] == answers[3][1]
    assert [a[0] for a in answers[0::2]] == ["created", "created"]
    assert levels_of(sessions, pid) == {"default": (5, 4, 4)}


def test_a_key_seen_before_goes_the_locked_path_without_the_rest_of_its_batch(
        sessions, monkeypatch):
    pid = f"again-{uuid.uuid4().hex[:8]}"
    with session_scope(sessions) as s:
        inventory.set_stock(s, LevelKey(pid), 5)
        first, _ = reservations.hold(s, product_id=pid, variant_id=None, quantity=2,
                                     owner_id="cart", customer_id="cart", ttl_seconds=60,
                                     idempotency_key="checkout-9")
    asks = [(1, "a", None), (2, "cart", "checkout-9"), (1, "b", None)]
    answers, batches, taken = hold_in_batch(sessions, monkeypatch, pid, asks)
    assert [a[0] for a in answers] == ["created", "found", "created"]
    assert answers[1][1] == first.id
    assert sorted(batches[1]) == [1, 2] and sorted(taken[1]) == [False, True]
    assert levels_of(sessions, pid) == {"default": (5, 4, 4)}


class Beat(Worker):
    """A worker that also runs beat (-B), so the sweeps run."""

    def __init__(self, env, log_dir, name="worker-beat", **kw):
        super().__init__(env, log_dir, name, **kw)
        self.args += ["-B", "-s", str(log_dir / f"{name}-schedule")]


def test_killed_worker_holding_the_eta_expiry_the_sweep_still_expires_it(procs, broker_env):
    ttl = 15   # room for the holder to take the ETA task and for a cold worker to start, on a busy box
    env = {**broker_env, "RESERVATION_TTL_SECONDS": str(ttl), "SB_RESERVATION_SWEEP_SECONDS": "1"}
    web = procs.start(WebServer(env, procs.log_dir, "web"))
    sender = celery_for(env)
    holder = procs.start(Worker(env, procs.log_dir, "eta-holder", queues="inventory", concurrency=1))
    holder.wait_consuming(sender)
    pid = f"eta-{uuid.uuid4().hex[:8]}"
    requests.put(f"{web.url}/api/v1/products/{pid}/stock", json={"quantity": 2},
                 headers=auth("store", "service"), timeout=10).raise_for_status()
    ws = WsClient(web.url, token("viewer", "customer"))
    ws.subscribe(f"product:{pid}")
    res = requests.post(f"{web.url}/api/v1/reservations", json={"product_id": pid, "quantity": 2},
                        headers=auth("buyer", "customer"), timeout=10)
    assert res.status_code == 201, res.text
    expires_at = datetime.fromisoformat(res.json()["expires_at"]).timestamp()
    ws.until(lambda f: f.get("event") == "inventory_update" and f["data"]["available_quantity"] == 0)

    # The ETA task sits unacknowledged in the holder's memory, waiting for its time.
    deadline = time.monotonic() + 20
    while "tasks.inventory.expire_reservations" not in scheduled_task_names(sender):
        assert time.monotonic() < deadline, holder.tail()   # each ask waits up to 1 s for replies
    holder.kill()
    assert time.time() < expires_at, "the holder died too late to prove anything"

    procs.start(Beat(env, procs.log_dir, queues="inventory", concurrency=1)).wait_consuming(sender)
    # The sweep's promise starts when a worker with beat is up: its cold start is not the sweep's.
    due = max(expires_at, time.time())
    frame = ws.until(lambda f: f.get("event") == "inventory_update"
                     and f["data"]["available_quantity"] == 2, timeout=ttl + 30)
    late = frame["ts"] / 1000 - due
    assert late < 5, f"expired {late:.1f}s after it was due"
    got = requests.get(f"{web.url}/api/v1/reservations/{res.json()['reservation_id']}",
                       headers=auth("buyer", "customer"), timeout=10).json()
    assert got["status"] == "expired"
    ws.close()
