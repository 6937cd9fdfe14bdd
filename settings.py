"""Settings: read once from the environment (PROTOCOL.md section 1), overridable.

`Settings.from_env(**overrides)` is what the app factory, the Celery app and
the tests use; tests pass overrides instead of mutating the environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEV_JWT_SECRET = "switchboard-dev-secret-change-me"


def _default_database_url() -> str:
    return f"sqlite:///{ROOT / 'var' / 'switchboard.db'}"


def normalise_database_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (PROTOCOL.md section 1)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    port: int = 5000
    jwt_secret: str = DEV_JWT_SECRET
    database_url: str = field(default_factory=_default_database_url)
    redis_url: str | None = None
    redis_prefix: str = "sb:"
    allowed_origins: tuple[str, ...] = ("http://localhost:3000",)
    # Database connections per process. Under gevent every request may want
    # one at once; past pool + overflow they wait (QueuePool), and overflow
    # connections are closed when returned, so a pool smaller than the usual
    # concurrency opens and closes a PostgreSQL connection per request.
    db_pool_size: int = 20
    db_max_overflow: int = 10

    # Real-time bounds (DESIGN.md "Bounded everything").
    outbox_limit: int = 1024          # frames queued for one slow connection, then 1013
    max_frame_bytes: int = 64 * 1024  # a client frame larger than this is refused
    client_rate: float = 50.0         # client frames per second, sustained
    client_burst: int = 200           # client frames allowed in a burst before 1008
    heartbeat_seconds: float = 25.0
    poll_timeout_seconds: float = 25.0
    history_min_events: int = 1000
    history_min_seconds: int = 600
    history_idle_ttl_seconds: int = 86400
    presence_ttl_seconds: int = 30
    max_connections_per_user: int = 20
    max_concurrent_setups: int = 64     # WebSocket connections being set up at once, per process
    # then 503 busy. Just under the 15 s a client commonly gives a handshake: a
    # storm's setups wait their turn rather than come back as retries (a
    # reconnect storm of 10,000: 22-33 s, against 29-38 s at 10 s; BENCHMARKS.md issue 11).
    setup_wait_seconds: float = 14.0

    # HTTP rate limits (`limits` syntax: "600/minute", "10 per second"; api/ratelimit.py).
    rate_limit_user: str = "600/minute"
    rate_limit_address: str = "1200/minute"

    # Chat and routing (issue 3) settings go below this line.
    typing_throttle_seconds: float = 2.0    # one user:typing per user and conversation per interval
    agent_grace_seconds: int = 120          # an offline agent keeps their conversations this long
    unanswered_timeout_seconds: int = 0     # customer message unanswered this long: re-route (0 = off)
    # Routing's derived hold (actions/routing_policy.py): whether a conversation waits for a
    # covering agent follows from learned handling times; these are their priors, worth
    # `routing_prior_weight` resolved conversations, until the data outweighs them.
    routing_hold: bool = True               # off: every conversation takes the best agent free now
    routing_handle_prior_seconds: float = 360.0
    routing_mismatch_prior: float = 1.5     # handling time without the skill / with it
    routing_prior_weight: float = 10.0
    routing_vip_wait_goal_seconds: float = 60.0  # DESIGN.md: VIP p95 within this; sizes the VIP reserve
    routing_vip_reserve_share: float = 0.05      # at most this share of the slots left idle for VIPs
    routing_sweep_seconds: float = 15.0     # periodic re-score of the waiting queue
    attachment_max_bytes: int = 900_000     # under the 1 MiB request cap
    attachment_types: str = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain"
    attachment_dir: str = ""                # default: ./var/attachments

    # Notification settings (issue 4) go below this line.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    email_from: str = "Switchboard <no-reply@switchboard.local>"
    sms_base_url: str = "https://api.twilio.com"  # Twilio's REST shape; any compatible provider
    sms_account_sid: str = ""
    sms_auth_token: str = ""
    sms_from: str = ""
    fcm_credentials_file: str = ""   # a service-account JSON; empty = FCM off
    fcm_base_url: str = ""           # empty = Google's endpoint; a stand-in's URL in tests
    vapid_private_key: str = ""      # PEM, a PEM file's path, or base64url raw; see providers/webpush.py
    vapid_public_key: str = ""       # base64url uncompressed point (the browser's applicationServerKey)
    vapid_subject: str = "mailto:ops@switchboard.local"
    provider_timeout_seconds: float = 10.0
    notification_batch_size: int = 100

    # Orders and inventory (issue 5) settings go below this line.
    reservation_ttl_seconds: int = 900
    reservation_sweep_seconds: float = 5.0   # beat: expire holds a lost ETA task missed
    tracking_sweep_seconds: float = 10.0     # beat: enqueue the carrier polls that are due
    tracking_poll_seconds: int = 300         # between polls of one order
    tracking_max_days: int = 7               # stop polling an undelivered order after this
    tracking_backoff_max_seconds: int = 3600  # a failing carrier is polled at most this rarely
    simulated_poll_seconds: int = 20         # the simulated carrier's step (a demo carrier)
    carriers_json: str = ""                  # HTTP JSON carriers: {name: {url, status_map, ...}}

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        env = os.environ
        values: dict = {}
        if "SWITCHBOARD_ENV" in env:
            values["env"] = env["SWITCHBOARD_ENV"]
        if "PORT" in env:
            values["port"] = int(env["PORT"])
        if env.get("JWT_SECRET"):
            values["jwt_secret"] = env["JWT_SECRET"]
        if env.get("DATABASE_URL"):
            values["database_url"] = env["DATABASE_URL"]
        if env.get("REDIS_URL"):
            values["redis_url"] = env["REDIS_URL"]
        if "REDIS_PREFIX" in env:
            values["redis_prefix"] = env["REDIS_PREFIX"]
        if env.get("ALLOWED_ORIGINS"):
            values["allowed_origins"] = tuple(
                o.strip() for o in env["ALLOWED_ORIGINS"].split(",") if o.strip())
        if env.get("RESERVATION_TTL_SECONDS"):
            values["reservation_ttl_seconds"] = int(env["RESERVATION_TTL_SECONDS"])
        names = {f.name for f in fields(cls)}
        for name in names:
            key = "SB_" + name.upper()
            if key in env and name not in values:
                values[name] = _coerce(cls, name, env[key])
        values.update(overrides)
        settings = cls(**values)
        settings = replace(settings, database_url=normalise_database_url(settings.database_url))
        settings.check()
        return settings

    def check(self) -> None:
        if self.production and self.jwt_secret == DEV_JWT_SECRET:
            raise RuntimeError("JWT_SECRET must be set when SWITCHBOARD_ENV=production")


def _coerce(cls, name: str, raw: str):
    current = getattr(cls, name, None)
    if isinstance(current, bool):
        return raw.lower() in ("1", "true", "yes")
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    return raw
