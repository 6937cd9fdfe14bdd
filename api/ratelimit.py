"""HTTP rate limits: per user (per address without a token) and per address.

Both limits are checked, and counted, in one Redis round trip: one Lua script
runs a sliding-window counter (the current window's count plus the previous
window's, weighted by how much of it the sliding window still covers) for
each key, and counts the request against both only if both allow it. A
refused request counts against neither. Without Redis (embedded mode) the
same limits are kept in this process by `limits`' in-memory sliding window.

Flask-Limiter did this with a round trip per limit, a third for its
X-RateLimit headers and its per-request machinery on top: a fifth of the
web CPU of a reservation (BENCHMARKS.md), on every API call.
"""
from __future__ import annotations

import threading
import time

from flask import Flask, jsonify, request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from api.auth import claims as token_claims
from api.errors import ApiError, error_body
from settings import Settings

# Streams are capped per user by presence (realtime/presence.py); probes and assets are free.
EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics", "/ws", "/events", "/poll", "/static/")

# KEYS: per limit, its current and previous window's counter.
# ARGV: per limit, amount and period (ms), then the ms elapsed in the current window.
# Returns 0 when counted, else the 1-based index of the first limit refusing.
_CHECK = """
local n = #KEYS / 2
for i = 1, n do
  local amount, period = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local elapsed = tonumber(ARGV[2 * n + i])
  local current = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local previous = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  if previous * (period - elapsed) / period + current + 1 > amount then
    return i
  end
end
for i = 1, n do
  redis.call('INCR', KEYS[2 * i - 1])
  redis.call('PEXPIRE', KEYS[2 * i - 1], 2 * tonumber(ARGV[2 * i]))
end
return 0
"""


class RedisLimits:
    def __init__(self, client, prefix: str) -> None:
        self.prefix = prefix
        self._check = client.register_script(_CHECK)

    def hit(self, checks: list[tuple[RateLimitItem, str, str]]) -> int:
        now_ms = int(time.time() * 1000)
        keys, amounts, elapsed = [], [], []
        for limit, key, _text in checks:
            period = limit.get_expiry() * 1000
            window = now_ms // period
            keys += [f"{self.prefix}{key}:{period}:{window}", f"{self.prefix}{key}:{period}:{window - 1}"]
            amounts += [limit.amount, period]
            elapsed.append(now_ms % period)
        return int(self._check(keys=keys, args=amounts + elapsed))


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
