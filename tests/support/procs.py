"""Real processes for integration and browser tests: gunicorn web, Celery worker, beat.

Each is started with its environment passed explicitly (never by mutating
os.environ) and stopped by its own pid. Readiness is awaited as an event
(the port answering /healthz), with a deadline, never by sleeping.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


EPHEMERAL_LOW = _ephemeral_low()
_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(room: int = 0) -> int:
    """A port for a server a test starts, free now and never handed out before in this run.
    Drawn from the 10,000 ports below the kernel's ephemeral range (and below `room` more):
    a port from that range could go to any outgoing connection of the busy test run before
    the server binds it. `room`: the port that far above must be free too (a Redis Cluster
    node's bus port)."""
    low = EPHEMERAL_LOW - room - 10000
    while True:
        if low >= 10000:
            port = random.randrange(low, low + 10000)
        else:   # no room below the range on this machine: take what the kernel gives
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        wanted = {port, port + room}
        if max(wanted) > 65535 or wanted & _handed_out:
            continue
        if all(_bindable(p) for p in wanted):
            _handed_out.update(wanted)
            return port


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], name: str, log_dir: Path) -> None:
        self.args, self.env, self.name = args, env, name
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Proc":
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("REDIS_URL", "DATABASE_URL", "REDIS_PREFIX", "PORT")}
        full_env.update(self.env)
        full_env["PYTHONUNBUFFERED"] = "1"
        self.log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.args, cwd=ROOT, env=full_env, stdout=self.log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (gunicorn's master and its worker)."""
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        self.log.close()

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class WebServer(Proc):
    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "web",
                 port: int | None = None) -> None:
        self.port = port or free_port()
        env = {**env, "PORT": str(self.port), "SB_BIND_LOCAL": "1"}
        super().__init__([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:create_app()"],
                         env, name, log_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "WebServer":
        super().start()
        wait_http(f"{self.url}/healthz", timeout, self)
        return self


class EmbeddedServer(WebServer):
    """`python app.py`: the embedded mode (SQLite, in-memory bus, in-process worker)."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "embedded") -> None:
        super().__init__(env, log_dir, name)
        self.args = [str(BIN / "python"), "app.py"]


class Worker(Proc):
    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "worker",
                 queues: str = "routing,notifications,tracking,inventory", concurrency: int = 2) -> None:
        self.hostname = f"{name}-{os.getpid()}-{free_port()}@{socket.gethostname()}"
        super().__init__([str(BIN / "celery"), "-A", "worker", "worker", "-Q", queues,
                          "--concurrency", str(concurrency), "--loglevel", "INFO",
                          "-n", self.hostname, "-E"],
                         env, name, log_dir)

    def wait_consuming(self, app, timeout: float = 30) -> "Worker":
        """Until the worker answers for the queues it consumes: tasks sent before that may all
        go to a worker that was quicker to start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            # each inspect waits up to 1 s for the answer
            if app.control.inspect(destination=[self.hostname], timeout=1.0).active_queues():
                return self
        raise TimeoutError(f"{self.name} not consuming in {timeout}s\n{self.tail()}")


def wait_http(url: str, timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.popen is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.05)  # waiting for a port to open: there is no event to block on
    raise TimeoutError(f"{url} not up in {timeout}s: {last}\n{proc.tail() if proc else ''}")


@contextmanager
def web_server(pg_url: str, log_dir: Path, name: str):
    """One distributed-mode web process on a Redis prefix of its own, stopped afterwards."""
    env = {"DATABASE_URL": pg_url, "REDIS_URL": "redis://127.0.0.1:6379/0",
           "REDIS_PREFIX": f"sbt{uuid.uuid4().hex[:8]}:"}
    web = WebServer(env, log_dir, name).start()
    try:
        yield web
    finally:
        web.stop()
