"""Who is online, counted over every connection of every web process.

A user is online while at least one connection of theirs is open anywhere,
and holds at most a set number of connections across all processes.
The Redis engine keeps a count per user and, per process, the part of it that
process holds; a process refreshes its lease while it lives, and any process
that finds an expired lease subtracts the dead process's counts, so a crashed
process never leaves its users online.
"""
from __future__ import annotations

import threading
import time
import uuid

import redis

# KEYS: counts, this process's hash, leases. ARGV: user, lease expiry, instance, limit.
# Counted and capped in one step, so two processes admitting the same user
# at once cannot both take the last slot.
_CONNECT = """
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') >= tonumber(ARGV[4]) then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
"""

# KEYS: counts, this process's hash, leases. ARGV: user.
_DISCONNECT = """
if redis.call('HINCRBY', KEYS[2], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) return 0 end
return n
"""

# KEYS: counts, leases. ARGV: now ms, per-process key prefix.
# Only the caller whose ZREM succeeds reaps a dead process: reaping is done once.
_REAP = """
local offline = {}
for _, proc in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])) do
  if redis.call('ZREM', KEYS[2], proc) == 1 then
    local held = redis.call('HGETALL', ARGV[2] .. proc)
    for i = 1, #held, 2 do
      local n = redis.call('HINCRBY', KEYS[1], held[i], -tonumber(held[i + 1]))
      if n <= 0 then
        redis.call('HDEL', KEYS[1], held[i])
        table.insert(offline, held[i])
      end
    end
    redis.call('DEL', ARGV[2] .. proc)
  end
end
return offline
"""


# KEYS: counts, this process's hash. ARGV: user, n, user, n, ...
# Puts back the connections of a process whose lease was taken while it was
# alive (a stall longer than the TTL); returns the users that came back online.
_RESTORE = """
local back = {}
for i = 1, #ARGV, 2 do
  local n = tonumber(ARGV[i + 1])
  redis.call('HINCRBY', KEYS[2], ARGV[i], n)
  if redis.call('HINCRBY', KEYS[1], ARGV[i], n) == n then table.insert(back, ARGV[i]) end
end
return back
"""


class MemoryPresence:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def apply_many(self, changes: list[tuple[str, int | None]]) -> list[int]:
        """Count connections and disconnections, in order; see `RedisPresence.apply_many`."""
        out = []
        with self._lock:
            for user_id, limit in changes:
                n = self.counts.get(user_id, 0)
                if limit is None:
                    n -= 1
                elif n >= limit:
                    out.append(0)
                    continue
                else:
                    n += 1
                if n <= 0:
                    self.counts.pop(user_id, None)
                    n = 0
                else:
                    self.counts[user_id] = n
                out.append(n)
        return out

    def is_online(self, user_id: str) -> bool:
        return user_id in self.counts

    def heartbeat(self) -> bool:
        return False

    def restore(self, counts: dict[str, int]) -> list[str]:
        return []

    def reap(self) -> list[str]:
        return []


class RedisPresence:
    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int = 30,
                 instance: str | None = None) -> None:
        self.redis = client
        self.ttl_ms = ttl_seconds * 1000
        self.instance = instance or uuid.uuid4().hex
        self.counts_key = f"{prefix}pr:counts"
        self.leases_key = f"{prefix}pr:leases"
        self.proc_prefix = f"{prefix}pr:proc:"
        self._loaded = False
        self._connect = client.register_script(_CONNECT)
        self._disconnect = client.register_script(_DISCONNECT)
        self._reap = client.register_script(_REAP)
        self._restore = client.register_script(_RESTORE)

    def _keys(self) -> list[str]:
        return [self.counts_key, self.proc_prefix + self.instance, self.leases_key]

    def _expiry(self) -> int:
        return int(time.time() * 1000) + self.ttl_ms

    def apply_many(self, changes: list[tuple[str, int | None]]) -> list[int]:
        """Count connections (`(user, limit)`) and disconnections (`(user, None)`), in order,
        in one round trip. Each result is the user's open connections after it; a
        connection refused for the limit is 0 and not counted (1 after a connect: the
        user just came online; 0 after a disconnect: they just went offline)."""
        keys, expiry = self._keys(), self._expiry()
        if not self._loaded:
            self._load_scripts()
        try:
            return self._apply(keys, expiry, changes)
        except redis.exceptions.NoScriptError:
            # Redis restarted (its script cache with it): every EVALSHA failed alike,
            # nothing ran, so the batch may run again. Both scripts are loaded
            # together, so a batch never finds one and not the other.
            self._load_scripts()
            return self._apply(keys, expiry, changes)

    def _load_scripts(self) -> None:
        self.redis.script_load(_CONNECT)
        self.redis.script_load(_DISCONNECT)
        self._loaded = True

    def _apply(self, keys: list[str], expiry: int, changes) -> list[int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for user_id, limit in changes:
                if limit is None:
                    pipe.evalsha(self._disconnect.sha, 3, *keys, user_id)
                else:
                    pipe.evalsha(self._connect.sha, 3, *keys, user_id, expiry, self.instance, limit)
            return [int(r) for r in pipe.execute()]

    def is_online(self, user_id: str) -> bool:
        return int(self.redis.hget(self.counts_key, user_id) or 0) > 0

    def heartbeat(self) -> bool:
        """Renew this process's lease; call well within the TTL.

        True when there was no lease to renew: the first beat, or another
        process reaped this one during a stall (then `restore` its counts).
        """
        return bool(self.redis.zadd(self.leases_key, {self.instance: self._expiry()}))

    def restore(self, counts: dict[str, int]) -> list[str]:
        """Count this process's open connections again; the users that came back online."""
        if not counts:
            return []
        args = [x for user, n in counts.items() if n > 0 for x in (user, n)]
        back = self._restore(keys=[self.counts_key, self.proc_prefix + self.instance], args=args)
        return [u.decode() if isinstance(u, bytes) else u for u in back]

    def reap(self) -> list[str]:
        """Drop the counts of processes whose lease ran out; the users that went offline."""
        gone = self._reap(keys=[self.counts_key, self.leases_key],
                          args=[int(time.time() * 1000), self.proc_prefix])
        return [u.decode() if isinstance(u, bytes) else u for u in gone]
