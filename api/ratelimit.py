"""HTTP rate limits: per user (per address without a token) and per address.

Both limits are checked, and counted, in Redis: a Lua script runs a
sliding-window counter (the current window's count plus the previous
window's, weighted by how much of it the sliding window still covers) for one
key, its two windows under one hash tag, so on a Redis Cluster each key's
script runs on the master that holds it. A request refused by one limit gives
back what the other had counted for it, so it counts against neither. A busy
key leases its permits in small batches (`RedisLimits`), so most of its
requests make no round trip at all.
Without Redis (embedded mode) the same limits are kept in this process by
`limits`' in-memory sliding window.

Flask-Limiter did this with a round trip per limit, a third for its
X-RateLimit headers and its per-request machinery on top: a fifth of the
web CPU of a reservation (BENCHMARKS.md), on every API call.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, jsonify, request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from api.auth import claims as token_claims
from api.errors import ApiError, error_body
from settings import Settings

# Streams are capped per user by presence (realtime/presence.py); probes and assets are free;
# the platforms' webhooks are signed, and a platform's bursts come from few addresses.
MAX_LEASES = 100_000   # keys with a lease in one process; older windows are dropped past it

EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics", "/ws", "/events", "/poll", "/static/", "/vendor/",
                "/favicon.", "/api/v1/channels/")

# KEYS: the key's current and previous window's counter.
# ARGV: the limit's amount, period (ms), the ms elapsed in its current window and the
# permits asked for. {0} when there is no room for one (nothing counted); otherwise
# as many permits as there is room for, up to what was asked, are counted and
# {1, granted} comes back.
_LEASE = """
local amount, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local elapsed, ask = tonumber(ARGV[3]), tonumber(ARGV[4])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local room = math.floor(amount - previous * (period - elapsed) / period - current)
if room < 1 then return {0} end
local granted = math.min(ask, room)
redis.call('INCRBY', KEYS[1], granted)
redis.call('PEXPIRE', KEYS[1], 2 * period)
return {1, granted}
"""

# A lease grows to at most a hundredth of its limit (and 64): with P processes a
# refusal may come (P - 1) hundredths of the limit early, never late.
LEASE_SHARE, LEASE_MOST = 100, 64


@dataclass
class _Lease:
    """Permits of one key that this process has counted in Redis and not used yet."""
    window: int
    left: int
    size: int          # how many the next fetch asks for
    period: int        # ms


class RedisLimits:
    """The limits kept in Redis, with the permits of a busy key leased in small batches.

    A key's first request in a window asks Redis for one permit; each time it comes
    back for more within the window it asks for twice as many, up to its cap. A
    permit is counted in Redis when it is leased, so the processes together never
    let more through than the limit; one lease serves the next requests of that key
    in this process without a round trip (a fifth of a reservation's web CPU went
    to the round trip, BENCHMARKS.md). Leases end with their window.
    """

    def __init__(self, client, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self.prefix = prefix
        self.clock = clock
        self._client = client
        self._lease_script = client.register_script(_LEASE)
        self._leases: dict[str, _Lease] = {}

    def hit(self, checks: list[tuple[RateLimitItem, str, str]]) -> int:
        now_ms = int(self.clock() * 1000)
        taken: list[_Lease] = []       # local permits set aside before the round trip
        wanted: list[tuple[int, str, RateLimitItem, int, int]] = []
        for i, (limit, key, _text) in enumerate(checks, 1):
            period = limit.get_expiry() * 1000
            lease = self._leases.get(key)
            if lease is not None and lease.window == now_ms // period and lease.left > 0:
                lease.left -= 1
                taken.append(lease)
            else:
                wanted.append((i, key, limit, period, self._next_size(lease, limit, now_ms // period)))
        if not wanted:
            return 0
        counted: list[tuple[str, int]] = []     # counters this request added to, and how much
        try:
            for i, key, limit, period, size in wanted:
                window = now_ms // period
                current = self.window_key(key, period, window)
                answer = self._lease_script(keys=[current, self.window_key(key, period, window - 1)],
                                            args=[limit.amount, period, now_ms % period, size])
                if not int(answer[0]):
                    self._undo(taken, counted)
                    return i
                counted.append((current, int(answer[1])))
        except BaseException:
            self._undo(taken, counted)
            raise
        for (_i, key, _limit, period, size), (_counter, granted) in zip(wanted, counted, strict=True):
            self._store(key, now_ms // period, granted - 1, size, period)
        return 0

    def window_key(self, key: str, period: int, window: int) -> str:
        """A key's counter for one window; a key's windows share a hash tag (a slot)."""
        return f"{self.prefix}{{{key}:{period}}}:{window}"

    def _undo(self, taken: list[_Lease], counted: list[tuple[str, int]]) -> None:
        """A refused (or failed) request: give back what it took from the local leases and
        what it counted in Redis for the limits that had room."""
        self._give_back(taken)
        for counter, n in counted:
            try:
                self._client.decrby(counter, n)
            except Exception:  # noqa: BLE001 - the count is then early for this window, never late
                pass

    @staticmethod
    def _next_size(lease: _Lease | None, limit: RateLimitItem, window: int) -> int:
        if lease is None or lease.window < window - 1:
            return 1
        return min(lease.size * 2, max(1, min(LEASE_MOST, limit.amount // LEASE_SHARE)))

    def _store(self, key: str, window: int, left: int, size: int, period: int) -> None:
        lease = self._leases.get(key)
        if lease is not None and lease.window == window:
            lease.left += left          # another request of this key leased meanwhile
            lease.size = max(lease.size, size)
            return
        if len(self._leases) >= MAX_LEASES:
            self._prune()
        self._leases[key] = _Lease(window, left, size, period)

    def _prune(self) -> None:
        now_ms = int(self.clock() * 1000)
        self._leases = {k: v for k, v in self._leases.items() if v.window >= now_ms // v.period - 1}

    @staticmethod
    def _give_back(taken: list[_Lease]) -> None:
        for lease in taken:
            lease.left += 1


class MemoryLimits:
    def __init__(self) -> None:
        self._window = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._lock = threading.Lock()

    def hit(self, checks: list[tuple[RateLimitItem, str, str]]) -> int:
        with self._lock:
            for i, (limit, key, _text) in enumerate(checks, 1):
                if not self._window.test(limit, key):
                    return i
            for limit, key, _text in checks:
                self._window.hit(limit, key)
        return 0


def _retry_after(limit: RateLimitItem) -> int:
    """Seconds until the current window ends: by then at least the weight of this one fades."""
    period = limit.get_expiry()
    return max(1, int(period - time.time() % period) + 1)


def init_rate_limits(app: Flask, settings: Settings, redis_client=None) -> None:
    per_user, per_address = parse(settings.rate_limit_user), parse(settings.rate_limit_address)
    store = (RedisLimits(redis_client, settings.redis_prefix + "rl:") if redis_client is not None
             else MemoryLimits())

    def claims() -> dict:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            try:
                return token_claims(header[7:].strip(), settings.jwt_secret)
            except ApiError:
                pass  # the view answers 401; the request still counts for its address
        return {}

    @app.before_request
    def _limit():
        if request.method == "OPTIONS" or request.path.startswith(EXEMPT_PATHS):
            return
        found = claims()
        # The store's backend publishes and notifies in bulk: it is not throttled per call.
        if found.get("role") == "service":
            return
        address = request.remote_addr or "unknown"
        caller = f"user:{found['sub']}" if found.get("sub") else f"addr:{address}"
        # Many users behind one address (or one client with many tokens) share its ceiling.
        checks = [(per_user, caller, settings.rate_limit_user),
                  (per_address, f"ceiling:{address}", settings.rate_limit_address)]
        refused = store.hit(checks)
        if refused:
            limit, _key, text = checks[refused - 1]
            body = error_body("rate_limited", f"rate limit exceeded ({text})")
            return jsonify(body), 429, {"Retry-After": str(_retry_after(limit))}
