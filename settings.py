"""Settings: read from the environment when a process starts, overridable, in sections.

`Settings.from_env(**overrides)` is what the app factory, the Celery
processes and the migrations use; tests build `Settings.of(**values)` instead
of mutating the environment. Nothing reads the environment at import.

The process-wide settings are PROTOCOL.md section 1's; each domain has a
section of its own (`settings.realtime.outbox_limit`). Every setting has one
flat name, unique across sections, which is its environment variable with
`SB_` in front (`SB_OUTBOX_LIMIT`, `SB_ROUTING_HOLD`) and its keyword in
`from_env` and `of` (`outbox_limit=4`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

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
class RealtimeSettings:
    """Connections, the bus's history and presence (DESIGN.md "Bounded everything")."""

    FLAT_PREFIX: ClassVar[str] = ""
    outbox_limit: int = 1024          # frames queued for one slow connection, then 1013
    max_frame_bytes: int = 64 * 1024  # a client frame larger than this is refused
    ws_compression: bool = True       # permessage-deflate when a client offers it (BENCHMARKS.md)
    client_rate: float = 50.0         # client frames per second, sustained
    client_burst: int = 200           # client frames allowed in a burst before 1008
    heartbeat_seconds: float = 25.0
    poll_timeout_seconds: float = 25.0
    history_min_events: int = 1000
    history_min_seconds: int = 600
    history_idle_ttl_seconds: int = 86400
    presence_ttl_seconds: int = 30
    max_connections_per_user: int = 20
    max_concurrent_setups: int = 64     # connections being set up at once, per process,
    # then 503 busy. Just under the 15 s a client commonly gives a handshake: a
    # storm's setups wait their turn rather than come back as retries (a
    # reconnect storm of 10,000: 22-33 s, against 29-38 s at 10 s; BENCHMARKS.md issue 11).
    setup_wait_seconds: float = 14.0


@dataclass(frozen=True)
class ChatSettings:
    FLAT_PREFIX: ClassVar[str] = ""
    typing_throttle_seconds: float = 2.0    # one user:typing per user and conversation per interval
    agent_grace_seconds: int = 120          # an offline agent keeps their conversations this long
    unanswered_timeout_seconds: int = 0     # customer message unanswered this long: re-route (0 = off)
    attachment_max_bytes: int = 900_000     # under the 1 MiB request cap
    attachment_types: str = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain"
    # Where attachments' bytes live, shared by every process: "database" (the default: a
    # table beside the messages) or "s3" (any S3-compatible store, through boto3; credentials
    # from boto3's own chain: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a profile or a role).
    attachment_storage: str = "database"
    attachment_s3_bucket: str = ""
    attachment_s3_prefix: str = "attachments/"
    attachment_s3_endpoint_url: str = ""    # MinIO, R2, ...; empty: AWS itself
    attachment_s3_region: str = ""
    first_response_goal_seconds: int = 120  # the dashboard's goal line for first responses
    csat_goal: float = 4.5                  # and for the average rating
    # LINE and Messenger as chat channels (PROTOCOL.md section 4; README: setting them up).
    line_channel_secret: str = ""           # verifies X-Line-Signature; empty: the webhook is off
    line_channel_access_token: str = ""     # bearer for LINE's push API
    line_api_base: str = "https://api.line.me"
    line_data_api_base: str = "https://api-data.line.me"   # where LINE keeps what users send (images, files)
    messenger_verify_token: str = ""        # Meta's GET verification; empty: the webhook is off
    messenger_app_secret: str = ""          # verifies X-Hub-Signature-256
    messenger_page_token: str = ""          # the Send API's access_token
    messenger_api_base: str = "https://graph.facebook.com/v19.0"


@dataclass(frozen=True)
class RoutingSettings:
    """The derived hold (actions/routing_policy.py): whether a conversation waits for a
    covering agent follows from learned handling times; these are their priors, worth
    `prior_weight` resolved conversations, until the data outweighs them."""

    FLAT_PREFIX: ClassVar[str] = "routing_"
    hold: bool = True                  # off: every conversation takes the best agent free now
    handle_prior_seconds: float = 360.0
    mismatch_prior: float = 1.5        # handling time without the skill / with it
    prior_weight: float = 10.0
    vip_wait_goal_seconds: float = 60.0  # DESIGN.md: VIP p95 within this; sizes the VIP reserve
    vip_reserve_share: float = 0.05      # at most this share of the slots left idle for VIPs
    sweep_seconds: float = 15.0        # periodic re-score of the waiting queue


@dataclass(frozen=True)
class NotificationSettings:
    FLAT_PREFIX: ClassVar[str] = ""
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
    apns_key_file: str = ""          # the .p8 signing key from Apple; empty = APNs off
    apns_key_id: str = ""            # its Key ID (the JWT's kid)
    apns_team_id: str = ""           # the developer team (the JWT's iss)
    apns_topic: str = ""             # the app's bundle id
    apns_base: str = "https://api.push.apple.com"   # https://api.sandbox.push.apple.com for development
    vapid_private_key: str = ""      # PEM, a PEM file's path, or base64url raw; see providers/webpush.py
    vapid_public_key: str = ""       # base64url uncompressed point (the browser's applicationServerKey)
    vapid_subject: str = "mailto:ops@switchboard.local"
    provider_timeout_seconds: float = 10.0
    batch_size: int = field(default=100, metadata={"flat": "notification_batch_size"})
    # beat: deliveries still queued long after their task should have run are sent again
    stuck_sweep_seconds: float = field(default=300.0, metadata={"flat": "notification_stuck_sweep_seconds"})


@dataclass(frozen=True)
class OrderSettings:
    FLAT_PREFIX: ClassVar[str] = ""
    tracking_sweep_seconds: float = 10.0     # beat: enqueue the carrier polls that are due
    tracking_poll_seconds: int = 300         # between polls of one order
    tracking_max_days: int = 7               # stop polling an undelivered order after this
    tracking_backoff_max_seconds: int = 3600  # a failing carrier is polled at most this rarely
    simulated_poll_seconds: int = 20         # the simulated carrier's step (a demo carrier)
    carriers_json: str = ""                  # HTTP JSON carriers: {name: {url, status_map, ...}}


@dataclass(frozen=True)
class InventorySettings:
    FLAT_PREFIX: ClassVar[str] = ""
    reservation_ttl_seconds: int = 900
    reservation_sweep_seconds: float = 5.0   # beat: expire holds a lost ETA task missed


class _Section(Protocol):
    """What the section classes above have in common: dataclasses with a prefix for flat names."""

    FLAT_PREFIX: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def __init__(self, **values: Any) -> None: ...


_SECTIONS: dict[str, type[_Section]] = {
    "realtime": RealtimeSettings, "chat": ChatSettings, "routing": RoutingSettings,
    "notifications": NotificationSettings, "orders": OrderSettings, "inventory": InventorySettings,
}


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    shop_name: str = "Switchboard Demo Shop"   # the header of every page
    port: int = 5000
    jwt_secret: str = DEV_JWT_SECRET
    database_url: str = field(default_factory=_default_database_url)
    redis_url: str | None = None
    redis_prefix: str = "sb:"
    # Celery's broker when it is not Redis: RabbitMQ (`amqp://user:pass@host:5672/vhost`), which
    # Celery recommends for production. Empty: REDIS_URL's Redis (the default).
    celery_broker_url: str = ""
    allowed_origins: tuple[str, ...] = ("http://localhost:3000",)
    # Database connections per process. Under gevent every request may want
    # one at once; past pool + overflow they wait (QueuePool), and overflow
    # connections are closed when returned, so a pool smaller than the usual
    # concurrency opens and closes a PostgreSQL connection per request.
    db_pool_size: int = 20
    db_max_overflow: int = 10
    # HTTP rate limits (`limits` syntax: "600/minute", "10 per second"; api/ratelimit.py).
    rate_limit_user: str = "600/minute"
    rate_limit_address: str = "1200/minute"

    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    orders: OrderSettings = field(default_factory=OrderSettings)
    inventory: InventorySettings = field(default_factory=InventorySettings)

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def of(cls, **values: Any) -> Settings:
        """Settings from flat names (`database_url=`, `outbox_limit=`), defaults for the rest."""
        top: dict[str, Any] = {}
        sections: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            where = _FLAT.get(name)
            if where is None:
                raise TypeError(f"no setting named {name!r}")
            section, attr = where
            if section is None:
                top[attr] = value
            else:
                sections.setdefault(section, {})[attr] = value
        for section, kind in _SECTIONS.items():
            top[section] = kind(**sections.get(section, {}))
        settings = cls(**top)
        settings = replace(settings, database_url=normalise_database_url(settings.database_url))
        settings.check()
        return settings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """PROTOCOL.md section 1's variables, then `SB_<FLAT NAME>` for every setting; then
        `overrides` (flat names)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var, name in _PROTOCOL_VARS.items():
            if env.get(var):
                values[name] = env[var]
        if "REDIS_PREFIX" in env:
            values["redis_prefix"] = env["REDIS_PREFIX"]
        if "allowed_origins" in values:
            values["allowed_origins"] = tuple(
                o.strip() for o in values["allowed_origins"].split(",") if o.strip())
        for name, kind in _KINDS.items():
            key = "SB_" + name.upper()
            if key in env and name not in values:
                values[name] = _coerce(kind, env[key])
        if "port" in values:
            values["port"] = int(values["port"])
        if "reservation_ttl_seconds" in values:
            values["reservation_ttl_seconds"] = int(values["reservation_ttl_seconds"])
        values.update(overrides)
        return cls.of(**values)

    def check(self) -> None:
        if self.production and self.jwt_secret == DEV_JWT_SECRET:
            raise RuntimeError("JWT_SECRET must be set when SWITCHBOARD_ENV=production")


# PROTOCOL.md section 1's names (RESERVATION_TTL_SECONDS is section 7's, CELERY_BROKER_URL issue 16's).
_PROTOCOL_VARS = {"SWITCHBOARD_ENV": "env", "PORT": "port", "JWT_SECRET": "jwt_secret",
                  "DATABASE_URL": "database_url", "REDIS_URL": "redis_url",
                  "ALLOWED_ORIGINS": "allowed_origins",
                  "RESERVATION_TTL_SECONDS": "reservation_ttl_seconds",
                  "CELERY_BROKER_URL": "celery_broker_url"}   # the name Celery's own docs use


def _flat_names() -> tuple[dict[str, tuple[str | None, str]], dict[str, type]]:
    """flat name -> (section or None, attribute), and flat name -> the default's type."""
    where: dict[str, tuple[str | None, str]] = {}
    kinds: dict[str, type] = {}
    for f in fields(Settings):
        if f.name not in _SECTIONS:
            where[f.name] = (None, f.name)
            kinds[f.name] = type(getattr(Settings, f.name, "")) if f.name != "redis_url" else str
    for section, kind in _SECTIONS.items():
        defaults = kind()
        for f in fields(kind):
            flat = f.metadata.get("flat") or kind.FLAT_PREFIX + f.name
            if flat in where:
                raise RuntimeError(f"two settings are named {flat!r}")
            where[flat] = (section, f.name)
            kinds[flat] = type(getattr(defaults, f.name))
    return where, kinds


_FLAT, _KINDS = _flat_names()


def _coerce(kind: type, raw: str) -> Any:
    if kind is bool:
        return raw.lower() in ("1", "true", "yes")
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if kind is tuple:
        return tuple(o.strip() for o in raw.split(",") if o.strip())
    return raw
