"""The Redis engine: a capped stream per topic (history, resume) + sharded pub/sub (live).

One Lua script assigns the id, stores the event and publishes the frame, so a
topic's stream order and live order are the same and the frame is encoded
once, by the publisher. A topic's keys and channel carry it as a hash tag, so
on a Redis Cluster they share a slot and the script runs on the one master
that holds it; live frames go out with SPUBLISH, which a cluster delivers
only within that master's shard. A process listens with one connection per
master it needs (the one Redis, or each master of a cluster), each on a
greenlet of its own, subscribing a topic while something local wants it; a
connection lost, a failover or a slot moved makes it subscribe the topic
again where it now lives and replay the topic's stream from the last event
seen.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from broadcast.bus import Listener, Outgoing, now_ms
from broadcast.events import (BEFORE_FIRST, Event, cursor_key, frame_parts, make_cursor, new_epoch,
                              parse_cursor, recoverable)
from broadcast.redis_client import connect
from broadcast.redis_scripts import HISTORY, LATEST, PUBLISH
from group_commit import GroupCommit

log = logging.getLogger(__name__)

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


class _Shard:
    """One listening connection: to the Redis, or to one master of a cluster, on its own
    greenlet. `replay`: topics to replay from their cursor once subscribed here (after a
    reconnect, or moved here from another master), so nothing published meanwhile is missed."""

    __slots__ = ("name", "client", "slot_of", "topics", "replay", "pubsub", "thread")

    def __init__(self, name: str, client: redis.Redis, slot_of: Callable[[str], int] | None) -> None:
        self.name = name
        self.client = client
        self.slot_of = slot_of                  # a cluster's: one command names channels of one slot
        self.topics: set[str] = set()
        self.replay: set[str] = set()
        self.pubsub: redis.client.PubSub | None = None
        self.thread: threading.Thread | None = None

    def send(self, command: str, channels: list[str]) -> None:
        """SSUBSCRIBE / SUNSUBSCRIBE on the listening connection (the bus's `_write` held).

        Sent as a bare command: redis-py's PubSub would also keep a handler
        entry per channel, for a resubscription this engine does itself
        (`RedisBus._run` subscribes every topic of the shard on a new
        connection), and topics are per user. The replies come to the
        listener as messages as usual.
        """
        pubsub = self.pubsub
        if pubsub is None or pubsub.connection is None:
            return
        if self.slot_of is None:
            pubsub.connection.send_command(command, *channels)
            return
        by_slot: dict[int, list[str]] = {}
        for channel in channels:
            by_slot.setdefault(self.slot_of(channel), []).append(channel)
        pubsub.connection.send_packed_command(
            pubsub.connection.pack_commands([(command, *group) for group in by_slot.values()]))


class RedisBus:
    def __init__(self, url: str, prefix: str = "sb:", min_events: int = 1000,
                 min_seconds: int = 600, idle_ttl: int = 86400, max_connections: int = 64,
                 pool_timeout: float = 20.0) -> None:
        self.redis = connect(url, max_connections, pool_timeout)
        self.cluster = isinstance(self.redis, RedisCluster)
        self._cluster_flag = "1" if self.cluster else "0"
        self.prefix = prefix
        self.min_events = min_events
        self.min_ms = min_seconds * 1000
        self.idle_ttl = idle_ttl
        self._publish = self.redis.register_script(PUBLISH)
        self._history = self.redis.register_script(HISTORY)
        self._latest = self.redis.register_script(LATEST)
        self._listeners: list[Listener] = []
        # topic -> None once subscribed, or the Event its listeners wait on until then
        # (an Event per topic only while it is being subscribed: topics are per user).
        self._wanted: dict[str, threading.Event | None] = {}
        self._home: dict[str, _Shard] = {}               # topic -> the shard it is subscribed on
        self._shards: dict[str, _Shard] = {}             # node name -> its listening connection
        self._last: dict[str, str] = {}                  # topic -> newest id delivered live
        self._newest: dict[str, str] = {}                # topic -> newest id known (latest())
        self._subscribes: GroupCommit[str, None, str] = GroupCommit(self._subscribe_many, "redis-subscribe")
        self._listened_ms: dict[str, int] = {}           # topic -> when it was first wanted
        self._clock_offset_ms = 0                        # Redis's clock - ours, at the last connect
        self._write = threading.Lock()
        self._attached = False
        self._closed = False

    # keys: a topic's stream, epoch, idempotency keys and channel share its hash tag (one slot)
    def _stream(self, topic: str) -> str:
        return f"{self.prefix}s:{{{topic}}}"

    def _channel(self, topic: str) -> str:
        return f"{self.prefix}t:{{{topic}}}"

    def _epoch_key(self, topic: str) -> str:
        return f"{self.prefix}e:{{{topic}}}"

    def _idempotency_key(self, topic: str, key: str) -> str:
        return f"{self.prefix}i:{{{topic}}}:{key}"

    def _topic_of(self, channel: str) -> str:
        return channel[len(self.prefix) + 3:-1]

    # publishing (any process, including Celery workers)
    def publish(self, topic: str, event: str, data: Any, *, ephemeral: bool = False,
                idempotency_key: str | None = None) -> str | None:
        return self._run_publish(Outgoing(topic, event, data, ephemeral, idempotency_key))

    def publish_many(self, events: list[Outgoing]) -> list[str | None]:
        if len(events) == 1:
            return [self._run_publish(events[0])]
        # One round trip (one per master on a cluster); each event still runs the
        # script on its own, so ids, history, trimming and idempotency are those of
        # `publish`. What a master refused goes once more, alone, through the client
        # that loads the script and follows the cluster: a master that lost its scripts
        # (restarted, or a replica that just took over) refuses its own share only, and
        # on a cluster a master may no longer hold a slot (MOVED) or answer at all.
        inputs = [self._script_input(e) for e in events]
        results = (self._evalsha_all(self.redis, inputs) if isinstance(self.redis, redis.Redis)
                   else self._evalsha_by_master(inputs))
        for i, r in enumerate(results):
            if isinstance(r, Exception):
                if not (self.cluster or isinstance(r, redis.exceptions.NoScriptError)):
                    raise r
                keys, args = inputs[i]
                results[i] = self._publish(keys=keys, args=args)
        return [_text(r) if r else None for r in results]

    def _evalsha_all(self, client: redis.Redis, inputs: list[tuple[list[str], list[Any]]]) -> list[Any]:
        # EVALSHA by hand: a pipeline of Script calls first asks SCRIPT EXISTS,
        # a round trip of its own, every time.
        with client.pipeline(transaction=False) as pipe:
            for keys, args in inputs:
                pipe.execute_command("EVALSHA", self._publish.sha, len(keys), *keys, *args)
            return pipe.execute(raise_on_error=False)

    def _evalsha_by_master(self, inputs: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """A pipeline per master, to each the events of its slots. Not redis-py's cluster
        pipeline: it asks the server for an EVALSHA's keys (COMMAND GETKEYS) once per
        command, a round trip each (bench/bus_publish.py: 4,100 events/s against 19,000)."""
        assert isinstance(self.redis, RedisCluster)
        nodes = self.redis.nodes_manager
        by_node: dict[str, tuple[ClusterNode, list[int]]] = {}
        for i, (keys, _args) in enumerate(inputs):
            node = nodes.get_node_from_slot(self.redis.keyslot(keys[0]))
            by_node.setdefault(node.name, (node, []))[1].append(i)
        results: list[Any] = [None] * len(inputs)
        for node, indexes in by_node.values():
            client = self.redis.get_redis_connection(node)
            try:
                answers = self._evalsha_all(client, [inputs[i] for i in indexes])
            except redis.RedisError as exc:
                answers = [exc] * len(indexes)
            for i, answer in zip(indexes, answers, strict=True):
                results[i] = answer
        return results

    def _script_input(self, e: Outgoing) -> tuple[list[str], list[Any]]:
        ts = now_ms()
        prefix, suffix = frame_parts(e.topic, e.event, ts, e.data)
        return ([self._stream(e.topic), self._idempotency_key(e.topic, e.idempotency_key or ""),
                 self._epoch_key(e.topic)],
                [self._channel(e.topic), e.event, prefix, suffix, "1" if e.ephemeral else "0",
                 self.min_events, self.min_ms, ts, self.idle_ttl, new_epoch(),
                 "1" if e.idempotency_key else "0", self._cluster_flag])

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
                                     args=[new_epoch(), self.idle_ttl, self._cluster_flag])
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
            args=[start, limit or 0, new_epoch(), self.idle_ttl, self._cluster_flag])
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
        with self._write:
            self._attached = True
            if isinstance(self.redis, redis.Redis):
                self._shard_named("redis", self.redis)
            for shard in self._shards.values():
                self._start(shard)

    def _start(self, shard: _Shard) -> None:
        if self._attached and shard.thread is None:
            shard.thread = threading.Thread(target=self._run, args=(shard,), name=f"redis-bus {shard.name}",
                                            daemon=True)
            shard.thread.start()

    def _shard_named(self, name: str, client: redis.Redis) -> _Shard:
        shard = self._shards.get(name)
        if shard is None:
            shard = self._shards[name] = _Shard(
                name, client, self.redis.keyslot if isinstance(self.redis, RedisCluster) else None)
            self._start(shard)
        return shard

    def _shard_for(self, topic: str) -> _Shard:
        """Where `topic` is delivered now, by the client's map of the cluster (`_write` held)."""
        if isinstance(self.redis, redis.Redis):
            return self._shard_named("redis", self.redis)
        node = self.redis.nodes_manager.get_node_from_slot(self.redis.keyslot(self._channel(topic)))
        shard = self._shards.get(node.name)
        if shard is not None:
            return shard
        # A client of its own: the cluster client may disconnect its nodes' pools when
        # it refreshes its map, which would cut every listening connection too.
        pool = self.redis.get_redis_connection(node).connection_pool
        own = redis.ConnectionPool(connection_class=pool.connection_class, **pool.connection_kwargs)
        return self._shard_named(node.name, redis.Redis(connection_pool=own))

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
                # The topics wanted while a SSUBSCRIBE is on its way go in the next one:
                # a burst of connects (a user topic each) sends a few commands, not one each.
                self._subscribes.submit("subscribe", topic)
        if ready is not None and not ready.wait(timeout):
            raise TimeoutError(f"no subscription to {topic} within {timeout}s")

    def _subscribe_many(self, _key: str, topics: list[str]) -> list[None]:
        with self._write:
            by_shard: dict[_Shard, list[str]] = {}
            for topic in topics:
                if topic in self._wanted and topic not in self._home:
                    shard = self._home[topic] = self._shard_for(topic)
                    shard.topics.add(topic)
                    by_shard.setdefault(shard, []).append(self._channel(topic))
            for shard, channels in by_shard.items():
                shard.send("SSUBSCRIBE", channels)
        return [None] * len(topics)

    def unlisten(self, topic: str) -> None:
        with self._write:
            if self._wanted.pop(topic, _MISSING) is _MISSING:
                return
            self._last.pop(topic, None)
            self._newest.pop(topic, None)
            self._listened_ms.pop(topic, None)
            shard = self._home.pop(topic, None)
            if shard is None:
                return
            shard.topics.discard(topic)
            shard.replay.discard(topic)
            try:
                shard.send("SUNSUBSCRIBE", [self._channel(topic)])
            except redis.RedisError:
                log.warning("unsubscribe %s failed; the reconnect will drop it", topic)

    def _move(self, topics: list[str], shard: _Shard, connected: bool = False) -> None:
        """Topics `shard` can no longer deliver (its master failed, or their slot moved):
        ask the cluster where they live now and subscribe them there, to be replayed from
        their cursors once subscribed. Those the map still puts on `shard` wait for its
        reconnect; when `shard` is `connected` (the master said their slot moved), they are
        subscribed on it again at once: the master confirms, or answers MOVED, which
        fails the connection and brings them back here with a fresher map."""
        if not self.cluster or not topics:
            return
        assert isinstance(self.redis, RedisCluster)
        try:
            self.redis.nodes_manager.initialize(disconnect_startup_nodes_pools=False)
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            log.warning("cluster map not refreshed (%s); retrying on the next failure", exc)
        with self._write:
            moved: dict[_Shard, list[str]] = {}
            for topic in topics:
                if self._home.get(topic) is not shard:
                    continue
                try:
                    target = self._shard_for(topic)
                except redis.exceptions.RedisClusterException:
                    target = shard       # a slot without a master yet
                if target is shard and not connected:
                    continue
                shard.topics.discard(topic)
                shard.replay.discard(topic)
                self._home[topic] = target
                target.topics.add(topic)
                target.replay.add(topic)
                if self._wanted.get(topic) is None:
                    self._wanted[topic] = threading.Event()
                self._newest.pop(topic, None)
                moved.setdefault(target, []).append(self._channel(topic))
            for target, channels in moved.items():
                log.warning("%d topics moved from %s to %s (failover or resharding); replaying them",
                            len(channels), shard.name, target.name)
                target.send("SSUBSCRIBE", channels)

    def _retired(self, shard: _Shard) -> bool:
        """A cluster node that no longer holds any topic of ours nor serves as a master."""
        if not self.cluster or shard.topics:
            return False
        assert isinstance(self.redis, RedisCluster)
        node = self.redis.nodes_manager.get_node(node_name=shard.name)
        return node is None or node.server_type != "primary"

    def _run(self, shard: _Shard) -> None:
        backoff = 0.1
        control = f"{self.prefix}ctl"
        while not self._closed:
            with self._write:
                if self._retired(shard):
                    self._shards.pop(shard.name, None)
                    return
            pubsub = shard.client.pubsub()
            try:
                # Connected outside the lock: a master that does not answer must not
                # hold up every other shard's subscribes. The control channel keeps
                # the connection in its subscribed state while it has no topic.
                pubsub.subscribe(control)
                with self._write:
                    # Every topic waits for its subscription again and is replayed once
                    # subscribed, and nothing of what happened while disconnected is
                    # known: ask Redis anew.
                    for topic in shard.topics:
                        if self._wanted.get(topic, _MISSING) is None:
                            self._wanted[topic] = threading.Event()
                        self._newest.pop(topic, None)
                    shard.replay = set(shard.topics)
                    shard.pubsub = pubsub
                    if shard.topics:
                        shard.send("SSUBSCRIBE", [self._channel(t) for t in shard.topics])
                seconds, micros = shard.client.time()
                self._clock_offset_ms = seconds * 1000 + micros // 1000 - now_ms()
                backoff = 0.1
                for message in pubsub.listen():
                    # Take whatever else already arrived, without waiting, and
                    # hand it to the hub at once (one write per socket per batch).
                    batch: list[Event] = []
                    lost: list[str] = []
                    while message is not None:
                        ev = self._on_message(shard, message, lost)
                        if ev is not None:
                            batch.append(ev)
                        if len(batch) >= _BATCH:
                            break
                        message = pubsub.get_message(timeout=0.0)
                    if batch:
                        self._deliver_many(batch)
                    if lost:
                        self._move(lost, shard, connected=True)
                    if self._closed:
                        return
            except Exception:  # noqa: BLE001 - the listener must outlive any failure
                if self._closed:
                    return
                log.exception("redis listener %s failed; reconnecting in %.1fs", shard.name, backoff)
                with self._write:
                    # Now, not only in `finally`: the map refresh below may take seconds,
                    # and meanwhile a subscribe must not write to the broken connection.
                    shard.pubsub = None
                try:
                    self._move(list(shard.topics), shard)
                except Exception:  # noqa: BLE001 - a slot without a master yet: the next try
                    log.warning("topics of %s not moved yet", shard.name, exc_info=True)
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with self._write:
                    shard.pubsub = None
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001
                    pass

    def _redis_now_ms(self) -> int:
        return now_ms() + self._clock_offset_ms

    def _subscribed(self, shard: _Shard, topic: str) -> None:
        """`topic` is subscribed on `shard`: wake who waits for it, and replay it if it was
        (re)subscribed here after events may have been missed. Replayed now, on this
        greenlet, before any live event that came after the confirmation: the hub drops
        what it already has, so the two overlap without a gap."""
        ready = self._wanted.get(topic)
        if topic in shard.replay:
            shard.replay.discard(topic)
            last = self._last.get(topic)
            if last is not None:
                self._replay_topic(topic, cursor_key(last), last)
            else:
                start = max(0, self._listened_ms.get(topic, 0) - _LISTEN_MARGIN_MS)
                self._replay_topic(topic, (start, 0), None)
        if ready is None:
            return
        with self._write:
            # Still the same wish, still here: the replay may have taken long enough for
            # the topic to be let go (or wanted anew, with another subscribe on its way).
            if self._wanted.get(topic) is ready and self._home.get(topic) is shard:
                self._wanted[topic] = None
        ready.set()

    def _replay_topic(self, topic: str, after: tuple[int, int], since: str | None) -> None:
        """Deliver what `topic`'s stream holds after `after`. When it no longer holds
        `since` (Redis restarted empty, or a failover ended the history: another epoch)
        the listeners are told with `reset`, which tells their connections, and the new
        history is replayed from its start."""
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

    def _on_message(self, shard: _Shard, message: dict, lost: list[str]) -> Event | None:
        """A live event from a pub/sub message; None for anything else. A topic the master
        stopped delivering (its slot moved) goes in `lost`."""
        kind = _text(message["type"])
        channel = _text(message["channel"])
        if not channel.startswith(self.prefix + "t:"):
            return None
        topic = self._topic_of(channel)
        if kind == "smessage":
            eid, name, ts, frame = _text(message["data"]).split("\n", 3)
            return Event(topic, name, eid or None, frame, ts=int(ts))
        if kind == "ssubscribe":
            if self._home.get(topic) is shard:
                self._subscribed(shard, topic)
        elif kind == "sunsubscribe" and self._home.get(topic) is shard and topic in self._wanted:
            # Not asked for: the cluster moved the topic's slot to another master.
            lost.append(topic)
        return None

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
            for shard in self._shards.values():
                if shard.pubsub is not None:
                    try:
                        shard.pubsub.unsubscribe()
                    except Exception:  # noqa: BLE001
                        pass
        self.redis.close()
