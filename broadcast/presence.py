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

# KEYS: counts, this process's hash, leases. ARGV: lease expiry, instance, then
# (limit, user) pairs in order; the limit "-" is a disconnection.
# A whole batch in one script: each connect is counted and capped in one step,
# so two processes admitting the same user at once cannot both take the last
# slot, and the batch pays one command, not one per change.
_APPLY = """
local out, counted = {}, false
for i = 3, #ARGV, 2 do
  local limit, user = ARGV[i], ARGV[i + 1]
  if limit == '-' then
    if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then redis.call('HDEL', KEYS[2], user) end
    local n = redis.call('HINCRBY', KEYS[1], user, -1)
    if n <= 0 then redis.call('HDEL', KEYS[1], user) n = 0 end
    out[#out + 1] = n
  elseif tonumber(redis.call('HGET', KEYS[1], user) or '0') >= tonumber(limit) then
    out[#out + 1] = 0
  else
    redis.call('HINCRBY', KEYS[2], user, 1)
    out[#out + 1] = redis.call('HINCRBY', KEYS[1], user, 1)
    counted = true
  end
end
if counted then redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2]) end
return out
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
        # One hash tag: the scripts keep a count and its parts together in one step, so on
        # a cluster every presence key is in one slot (one master holds presence).
        self.counts_key = f"{prefix}{{pr}}:counts"
        self.leases_key = f"{prefix}{{pr}}:leases"
        self.proc_prefix = f"{prefix}{{pr}}:proc:"
        self._apply = client.register_script(_APPLY)
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
        user just came online; 0 after a disconnect: they just went offline).

        A Redis that restarted has lost its scripts: the script object loads it
        again and runs it once (nothing ran the first time)."""
        args: list = [self._expiry(), self.instance]
        for user_id, limit in changes:
            args += ("-" if limit is None else limit, user_id)
        return [int(n) for n in self._apply(keys=self._keys(), args=args)]

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
