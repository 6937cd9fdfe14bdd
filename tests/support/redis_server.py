"""A Redis of the test's own, on a free port, that the test may stop and start again.

For outages and restarts: the machine's shared Redis is never touched.
Started in the foreground as a child (stopped by its own pid), with or
without AOF; `restart()` brings it back on the same port, with whatever its
persistence kept.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from tests.support.procs import free_port


class RedisServer:
    def __init__(self, data_dir: Path, aof: bool = False) -> None:
        self.port = free_port()
        self.dir = data_dir
        self.aof = aof
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> "RedisServer":
        self.dir.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--dir", str(self.dir), "--appendonly", "yes" if self.aof else "no",
                "--appendfsync", "always", "--logfile", str(self.dir / "redis.log")]
        self.popen = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    client.close()
                    return self
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-500:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis on {self.port} not up in {timeout}s")
            time.sleep(0.02)  # waiting for a port to open: there is no event to block on

    def stop(self) -> None:
        """Stop as a restart would: SHUTDOWN (AOF is written out, nothing else saved)."""
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            redis.Redis.from_url(self.url).shutdown(nosave=True)
        except redis.exceptions.ConnectionError:
            pass   # it answers by closing the connection
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)

    def restart(self) -> "RedisServer":
        self.stop()
        return self.start()
