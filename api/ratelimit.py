"""HTTP rate limits per user (or per address without a token), on Redis when configured."""
from __future__ import annotations

import jwt
from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from settings import Settings

_EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics", "/ws", "/events", "/poll", "/static/")


def init_limiter(app: Flask, settings: Settings) -> Limiter:
    def caller() -> str:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            try:
                claims = jwt.decode(header[7:].strip(), settings.jwt_secret, algorithms=["HS256"])
                return f"user:{claims.get('sub')}"
            except jwt.PyJWTError:
                pass
        return f"addr:{get_remote_address()}"

    def exempt() -> bool:
        if request.path.startswith(_EXEMPT_PATHS):
            return True
        # The store's backend publishes and notifies in bulk: it is not throttled per call.
        return _role() == "service"

    def _role() -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        try:
            return jwt.decode(header[7:].strip(), settings.jwt_secret, algorithms=["HS256"]).get("role")
        except jwt.PyJWTError:
            return None

    storage = settings.redis_url or "memory://"
    limiter = Limiter(
        key_func=caller, app=app, storage_uri=storage,
        default_limits=[settings.rate_limit_user],
        default_limits_exempt_when=exempt,
        headers_enabled=True, key_prefix=settings.redis_prefix + "rl",
        strategy="moving-window")
    return limiter
