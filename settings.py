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

    # HTTP rate limits (Flask-Limiter syntax).
    rate_limit_user: str = "600/minute"
    rate_limit_address: str = "1200/minute"

    # Chat and routing (issue 3) settings go below this line.

    # Notification settings (issue 4) go below this line.

    # Orders and inventory (issue 5) settings go below this line.
    reservation_ttl_seconds: int = 900

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
