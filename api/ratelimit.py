"""HTTP rate limits: per user (per address without a token) and per address, on Redis when configured."""
from __future__ import annotations

import time

from flask import Flask, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse

from api.auth import claims as token_claims
from api.errors import ApiError, error_body
from settings import Settings

_EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics", "/ws", "/events", "/poll", "/static/")


def init_limiter(app: Flask, settings: Settings) -> Limiter:
    def claims() -> dict:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            try:
                return token_claims(header[7:].strip(), settings.jwt_secret)
            except ApiError:
                pass
        return {}

    def caller() -> str:
        sub = claims().get("sub")
        return f"user:{sub}" if sub else f"addr:{get_remote_address()}"

    def exempt() -> bool:
        if request.path.startswith(_EXEMPT_PATHS):
            return True
        # The store's backend publishes and notifies in bulk: it is not throttled per call.
        return claims().get("role") == "service"

    limiter = Limiter(
        key_func=caller, app=app, storage_uri=settings.redis_url or "memory://",
        default_limits=[settings.rate_limit_user], default_limits_exempt_when=exempt,
        # No X-RateLimit-* headers: each costs a Redis round trip on every
        # request; a refusal still says when to come back (Retry-After, below).
        headers_enabled=False, key_prefix=settings.redis_prefix + "rl", strategy="moving-window")
    per_address = parse(settings.rate_limit_address)

    @app.errorhandler(RateLimitExceeded)
    def _refused(exc: RateLimitExceeded):
        current = limiter.current_limit
        wait = max(1, int(current.reset_at - time.time())) if current else 1
        body = error_body("rate_limited", f"rate limit exceeded ({exc.description})")
        return jsonify(body), 429, {"Retry-After": str(wait)}

    @app.before_request
    def _per_address_ceiling():
        # Many users behind one address (or one client minting tokens) share this ceiling.
        if exempt():
            return
        key = f"addr:{get_remote_address()}"
        if not limiter.limiter.hit(per_address, key):
            reset = limiter.limiter.get_window_stats(per_address, key).reset_time
            raise ApiError(429, "rate_limited",
                           f"rate limit exceeded ({settings.rate_limit_address} per address)",
                           headers={"Retry-After": str(max(1, int(reset - time.time())))})

    return limiter
