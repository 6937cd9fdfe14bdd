"""At most once per interval per key: in this process, or across every process on Redis.

Used for `user:typing` (PROTOCOL.md section 4: throttled per user): with two
web processes, a client whose emits land on both must still send one event
per interval, so the Redis engine keeps the mark where every process sees it.
"""
from __future__ import annotations

import threading
import time


class LocalThrottle:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self.max_keys = max_keys

    def allow(self, key: str, interval: float) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e9) < interval:
                return False
            if len(self._last) >= self.max_keys:
                self._last.clear()
            self._last[key] = now
            return True


class RedisThrottle:
    def __init__(self, client, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    def allow(self, key: str, interval: float) -> bool:
        # SET NX PX: the first caller of the interval sets the mark; it expires by itself.
        return bool(self.client.set(f"{self.prefix}{key}", 1, nx=True,
                                    px=max(1, int(interval * 1000))))
