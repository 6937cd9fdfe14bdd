"""The Redis engine: a capped stream per topic (history, resume) + pub/sub (live).

One Lua script assigns the id, stores the event and publishes the frame, so a
topic's stream order and live order are the same and the frame is encoded
once, by the publisher. A process listens with one pub/sub connection on one
greenlet, subscribing a topic while something local wants it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from broadcast.bus import Listener, Outgoing, now_ms
from broadcast.events import (BEFORE_FIRST, Event, cursor_key, frame_parts, make_cursor, new_epoch,
                              parse_cursor, recoverable)
from group_commit import GroupCommit

log = logging.getLogger(__name__)

# The epoch of a topic's history (broadcast/events.py) lives in a hash beside
# its stream: `e` the epoch, `u` set once an event was added under it. It is
# made when missing, and made anew when its stream is gone after events were
# added (deleted, or expired): a stream created again is another history. A
# Redis restarted without persistence has neither, so every topic starts a
# new epoch there. One snippet, for every script that reads or adds events.
# ARGV of the caller: ..., candidate epoch, idle ttl s (named by the caller).
_EPOCH = """
local function epoch_of(stream, ekey, candidate, ttl)
  local e = redis.call('HGET', ekey, 'e')
  if e and (redis.call('EXISTS', stream) == 1 or not redis.call('HGET', ekey, 'u')) then
    redis.call('EXPIRE', ekey, ttl)
    return e
  end
  redis.call('DEL', ekey)
  redis.call('HSET', ekey, 'e', candidate)
  redis.call('EXPIRE', ekey, ttl)
  return candidate
end
"""

# KEYS: stream, idempotency key ('' for none), epoch hash
# ARGV: channel, event, frame prefix, frame suffix, ephemeral, min events, min ms, now ms,
#       idle ttl s, candidate epoch
_PUBLISH = _EPOCH + """
local idem = KEYS[2]
if idem ~= '' then
  local first = redis.call('GET', idem)
  if first then return first end
end
if ARGV[5] == '1' then
  redis.call('PUBLISH', ARGV[1], '\\n' .. ARGV[2] .. '\\n' .. ARGV[8] .. '\\n' .. ARGV[3] .. 'null' .. ARGV[4])
  return false
end
local epoch = epoch_of(KEYS[1], KEYS[3], ARGV[10], ARGV[9])
redis.call('HSET', KEYS[3], 'u', '1')
local xid = redis.call('XADD', KEYS[1], '*', 'e', ARGV[2], 'p', ARGV[3], 's', ARGV[4])
local id = xid .. ':' .. epoch
redis.call('PUBLISH', ARGV[1],
           id .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[8] .. '\\n' .. ARGV[3] .. '"' .. id .. '"' .. ARGV[4])
local min = tonumber(ARGV[6])
local n = redis.call('XLEN', KEYS[1])
-- Keep every event that is among the newest `min` OR younger than `min ms`:
-- trim below the older of the two bounds. Checked every 64th event only.
if n > min and n % 64 == 0 then
  local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', min)
  local keep = newest[#newest][1]
  local keep_ms = tonumber(string.match(keep, '^(%d+)'))
  local cutoff = tonumber(ARGV[8]) - tonumber(ARGV[7])
  local minid = keep
  if cutoff < keep_ms then minid = string.format('%d', cutoff) end
  -- XTRIM does not record what it removed; XSETID does, so history() can
  -- tell a cursor inside the kept history from one older than it.
  local cut = redis.call('XREVRANGE', KEYS[1], '(' .. minid, '-', 'COUNT', 1)
  if #cut > 0 then
    redis.call('XTRIM', KEYS[1], 'MINID', minid)
    redis.call('XSETID', KEYS[1], xid, 'MAXDELETEDID', cut[1][1])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[9])
if idem ~= '' then redis.call('SET', idem, id, 'EX', 300) end
return id
"""

# KEYS: stream, epoch hash. ARGV: exclusive start ('(' .. id) or '-', count (0 = all),
# candidate epoch, idle ttl s. Returns {epoch, max deleted id, entries}; atomic, so
# the epoch, the trim point and the entries agree.
_HISTORY = _EPOCH + """
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[3], ARGV[4])
if redis.call('EXISTS', KEYS[1]) == 0 then return {epoch, '0-0', {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local maxdel = '0-0'
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then maxdel = info[i + 1] end
end
if tonumber(ARGV[2]) > 0 then
  return {epoch, maxdel, redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])}
end
return {epoch, maxdel, redis.call('XRANGE', KEYS[1], ARGV[1], '+')}
"""

# KEYS: stream, epoch hash. ARGV: candidate epoch, idle ttl s. Returns {epoch, newest id}.
_LATEST = _EPOCH + """
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest == 0 then return {epoch, '0-0'} end
return {epoch, newest[1][1]}
"""


_MISSING: Any = object()

# Live events handed to the hub together at most (those already read from the socket).
_BATCH = 64
# Events a reconnected listener reads from a stream at once.
_REPLAY_PAGE = 1000
# A topic with no event seen yet is replayed from this long before it was first
# listened (by Redis's clock, which stream ids are made of: see `_redis_now_ms`).
_LISTEN_MARGIN_MS = 100


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBus:
    def __init__(self, url: str, prefix: str = "sb:", min_events: int = 1000,
                 min_seconds: int = 600, idle_ttl: int = 86400, max_connections: int = 64,
                 pool_timeout: float = 20.0) -> None:
        # A blocking pool: under gevent thousands of greenlets may call Redis at
        # once (a burst of connects); they wait for a connection instead of
        # failing with "Too many connections" (redis-py's default pool is 100).
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=pool_timeout, health_check_interval=0)
        self.redis = redis.Redis(connection_pool=pool)
        self.prefix = prefix
        self.min_events = min_events
        self.min_ms = min_seconds * 1000
        self.idle_ttl = idle_ttl
        self._publish = self.redis.register_script(_PUBLISH)
        self._history = self.redis.register_script(_HISTORY)
        self._latest = self.redis.register_script(_LATEST)
        self._listeners: list[Listener] = []
        # topic -> None once subscribed, or the Event its listeners wait on until then
        # (an Event per topic only while it is being subscribed: topics are per user).
        self._wanted: dict[str, threading.Event | None] = {}
        self._last: dict[str, str] = {}                  # topic -> newest id delivered live
        self._newest: dict[str, str] = {}                # topic -> newest id known (latest())
        self._subscribes: GroupCommit[str, None, str] = GroupCommit(self._subscribe_many, "redis-subscribe")
        self._listened_ms: dict[str, int] = {}           # topic -> when it was first wanted
        self._clock_offset_ms = 0                        # Redis's clock - ours, at the last connect
        self._pubsub: redis.client.PubSub | None = None
        self._write = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    # keys
    def _stream(self, topic: str) -> str:
        return f"{self.prefix}s:{topic}"

    def _channel(self, topic: str) -> str:
        return f"{self.prefix}t:{topic}"

    def _epoch_key(self, topic: str) -> str:
        return f"{self.prefix}e:{topic}"

    # publishing (any process, including Celery workers)
    def publish(self, topic: str, event: str, data: Any, *, ephemeral: bool = False,
                idempotency_key: str | None = None) -> str | None:
        return self._run_publish(Outgoing(topic, event, data, ephemeral, idempotency_key))

    def publish_many(self, events: list[Outgoing]) -> list[str | None]:
        if len(events) == 1:
            return [self._run_publish(events[0])]
        # One round trip; each event still runs the script on its own, so ids,
        # history, trimming and idempotency are those of `publish`.
        try:
            results = self._evalsha_all(events)
        except redis.exceptions.NoScriptError:
            # A restarted Redis: nothing ran (every EVALSHA failed alike).
            self.redis.script_load(_PUBLISH)
            results = self._evalsha_all(events)
        return [_text(r) if r else None for r in results]

    def _evalsha_all(self, events: list[Outgoing]) -> list[Any]:
        # EVALSHA by hand: a pipeline of Script calls first asks SCRIPT EXISTS,
        # a round trip of its own, every time.
        with self.redis.pipeline(transaction=False) as pipe:
            for e in events:
                keys, args = self._script_input(e)
                pipe.evalsha(self._publish.sha, len(keys), *keys, *args)
            return pipe.execute()

    def _script_input(self, e: Outgoing) -> tuple[list[str], list[Any]]:
        ts = now_ms()
        prefix, suffix = frame_parts(e.topic, e.event, ts, e.data)
        idem = f"{self.prefix}i:{e.idempotency_key}" if e.idempotency_key else ""
        return ([self._stream(e.topic), idem, self._epoch_key(e.topic)],
                [self._channel(e.topic), e.event, prefix, suffix, "1" if e.ephemeral else "0",
                 self.min_events, self.min_ms, ts, self.idle_ttl, new_epoch()])

    def _run_publish(self, e: Outgoing) -> str | None:
        keys, args = self._script_input(e)
        result = self._publish(keys=keys, args=args)
        return _text(result) if result else None

    def latest(self, topic: str) -> str:
        # A subscribed topic's newest event is known here without asking: the
        # first answer is kept and every live event moves it on. It may lag by
        # the events still in flight to this process, which arrive after it,
        # so a cursor from it misses nothing.
        subscribed = self._wanted.get(topic, _MISSING) is None
        if subscribed:
            known = self._newest.get(topic)
            if known is not None:
                return known
        epoch, newest = self._latest(keys=[self._stream(topic), self._epoch_key(topic)],
                                     args=[new_epoch(), self.idle_ttl])
        cursor = make_cursor(_text(newest), _text(epoch))
        if subscribed:
            self._newest.setdefault(topic, cursor)
        return cursor

    def history(self, topic: str, since: str, limit: int | None = None) -> tuple[list[Event], bool]:
        since_key, _ = parse_cursor(since)
        epoch, entries, recovered = self._read(topic, since_key, limit, since)
        if not recovered:
            return [], False
        return self._events(topic, epoch, entries), True

    def _read(self, topic: str, after: tuple[int, int], limit: int | None,
              since: str | None) -> tuple[str, list, bool]:
        """The topic's epoch and stored entries after position `after`, and whether `since`
        (when given) is recoverable against what the script saw, in the same step."""
        start = "-" if after == (0, 0) else f"({after[0]}-{after[1]}"
        epoch, maxdel, entries = self._history(
            keys=[self._stream(topic), self._epoch_key(topic)],
            args=[start, limit or 0, new_epoch(), self.idle_ttl])
        epoch = _text(epoch)
        recovered = since is None or recoverable(since, epoch, cursor_key(_text(maxdel)))
        return epoch, entries, recovered

    @staticmethod
    def _events(topic: str, epoch: str, entries: list) -> list[Event]:
        events = []
        for raw_id, fields in entries:
            values = {_text(fields[i]): _text(fields[i + 1]) for i in range(0, len(fields), 2)}
            eid = make_cursor(_text(raw_id), epoch)
            events.append(Event(topic, values["e"], eid, values["p"] + '"' + eid + '"' + values["s"]))
        return events

    # live delivery (web processes)
    def attach(self, listener: Listener) -> None:
        self._listeners.append(listener)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="redis-bus", daemon=True)
            self._thread.start()

    def listen(self, topic: str, timeout: float = 10.0) -> None:
        ready = self._wanted.get(topic, _MISSING)
        if ready is None:
            return
        if ready is _MISSING:
            with self._write:
                ready = self._wanted.get(topic, _MISSING)
                fresh = ready is _MISSING
                if fresh:
                    ready = self._wanted[topic] = threading.Event()
                    self._listened_ms.setdefault(topic, self._redis_now_ms())
            if fresh:
                # The topics wanted while a SUBSCRIBE is on its way go in the next one:
                # a burst of connects (a user topic each) sends a few commands, not one each.
                self._subscribes.submit("subscribe", topic)
        if ready is not None and not ready.wait(timeout):
            raise TimeoutError(f"no subscription to {topic} within {timeout}s")

    def _subscribe_many(self, _key: str, topics: list[str]) -> list[None]:
        with self._write:
            wanted = [self._channel(t) for t in topics if self._wanted.get(t, _MISSING) is not None]
            if wanted:
                self._send("SUBSCRIBE", wanted)
        return [None] * len(topics)

    def _send(self, command: str, channels: list[str]) -> None:
        """SUBSCRIBE / UNSUBSCRIBE on the listener's connection, with `_write` held.

        Sent as a bare command: redis-py's PubSub would also keep a handler
        entry per channel, for a resubscription this engine does itself
        (`_run` subscribes every wanted topic on a new connection), and topics
        are per user. The replies come to the listener as messages as usual.
        """
        pubsub = self._pubsub
        if pubsub is not None and pubsub.connection is not None:
            pubsub.connection.send_command(command, *channels)

    def unlisten(self, topic: str) -> None:
        with self._write:
            if self._wanted.pop(topic, _MISSING) is _MISSING:
                return
            self._last.pop(topic, None)
            self._newest.pop(topic, None)
            self._listened_ms.pop(topic, None)
            try:
                self._send("UNSUBSCRIBE", [self._channel(topic)])
            except redis.RedisError:
                log.warning("unsubscribe %s failed; the reconnect will drop it", topic)

    def _run(self) -> None:
        backoff = 0.1
        control = f"{self.prefix}ctl"
        while not self._closed:
            pubsub = self.redis.pubsub()
            try:
                with self._write:
                    # Every topic waits for its subscription again, and nothing of
                    # what happened while disconnected is known: ask Redis anew.
                    for topic, ready in self._wanted.items():
                        if ready is None:
                            self._wanted[topic] = threading.Event()
                    self._newest.clear()
                    pubsub.subscribe(control)
                    self._pubsub = pubsub
                    if self._wanted:
                        self._send("SUBSCRIBE", [self._channel(t) for t in self._wanted])
                seconds, micros = self.redis.time()
                self._clock_offset_ms = seconds * 1000 + micros // 1000 - now_ms()
                self._replay_missed()
                backoff = 0.1
                for message in pubsub.listen():
                    # Take whatever else already arrived, without waiting, and
                    # hand it to the hub at once (one write per socket per batch).
                    batch: list[Event] = []
                    while message is not None:
                        ev = self._on_message(message)
                        if ev is not None:
                            batch.append(ev)
                        if len(batch) >= _BATCH:
                            break
                        message = pubsub.get_message(timeout=0.0)
                    if batch:
                        self._deliver_many(batch)
                    if self._closed:
                        return
            except Exception:  # noqa: BLE001 - the listener must outlive any failure
                if self._closed:
                    return
                log.exception("redis listener failed; reconnecting in %.1fs", backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with self._write:
                    self._pubsub = None
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001
                    pass

    def _redis_now_ms(self) -> int:
        return now_ms() + self._clock_offset_ms

    def _replay_missed(self) -> None:
        """After a reconnect, fetch from the streams what pub/sub dropped meanwhile.

        A topic with an event seen resumes after it, if its history still
        holds it. When it does not (Redis restarted empty: another epoch) the
        listeners are told with `reset`, which tells their connections, and the
        new history is replayed from its start. A topic with no event seen yet
        replays what its history holds from shortly before it was listened.
        """
        for topic in list(self._wanted):
            last = self._last.get(topic)
            if last is not None:
                self._replay_topic(topic, cursor_key(last), last)
            else:
                start = max(0, self._listened_ms.get(topic, 0) - _LISTEN_MARGIN_MS)
                self._replay_topic(topic, (start, 0), None)

    def _replay_topic(self, topic: str, after: tuple[int, int], since: str | None) -> None:
        while True:
            epoch, entries, recovered = self._read(topic, after, _REPLAY_PAGE, since)
            if not recovered:
                start = make_cursor(BEFORE_FIRST, epoch)
                self._last[topic] = start
                for listener in self._listeners:
                    reset = getattr(listener, "reset", None)
                    if reset is not None:
                        reset(topic, start)
                after, since = (0, 0), start
                continue
            events = self._events(topic, epoch, entries)
            if events:
                self._deliver_many(events)
            if len(events) < _REPLAY_PAGE:
                return
            last = events[-1]
            assert last.key is not None   # read from the stream: every event has an id
            after, since = last.key, last.id

    def _on_message(self, message: dict) -> Event | None:
        """A live event from a pub/sub message; None for anything else."""
        kind = _text(message["type"])
        channel = _text(message["channel"])
        topic = channel[len(self.prefix) + 2:]
        if kind == "subscribe":
            ready = self._wanted.get(topic)
            if ready is not None:
                self._wanted[topic] = None
                ready.set()
            return None
        if kind != "message" or not channel.startswith(self.prefix + "t:"):
            return None
        eid, name, ts, frame = _text(message["data"]).split("\n", 3)
        return Event(topic, name, eid or None, frame, ts=int(ts))

    def _deliver_many(self, events: list[Event]) -> None:
        if len(events) == 1:
            self._deliver(events[0])
            return
        for ev in events:
            if ev.id is not None:
                self._last[ev.topic] = self._newest[ev.topic] = ev.id
        for listener in self._listeners:
            many = getattr(listener, "many", None)
            try:
                if many is not None:
                    many(events)
                else:
                    for ev in events:
                        listener(ev)
            except Exception:  # noqa: BLE001 - one bad delivery must not stop the listener
                log.exception("listener failed on a batch of %d events", len(events))

    def _deliver(self, ev: Event) -> None:
        if ev.id is not None:
            self._last[ev.topic] = self._newest[ev.topic] = ev.id
        for listener in self._listeners:
            try:
                listener(ev)
            except Exception:  # noqa: BLE001 - one bad delivery must not stop the listener
                log.exception("listener failed on %s %s", ev.topic, ev.name)

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def close(self) -> None:
        self._closed = True
        with self._write:
            if self._pubsub is not None:
                try:
                    self._pubsub.unsubscribe()
                except Exception:  # noqa: BLE001
                    pass
        self.redis.close()
