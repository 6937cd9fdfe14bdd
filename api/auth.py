"""JWT identity (PROTOCOL.md section 2): who is calling, and may they."""
from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
from jwt.utils import base64url_decode
from flask import current_app, g, request

from api.errors import ApiError

ROLES = ("customer", "agent", "admin", "service")


@dataclass(frozen=True)
class Principal:
    id: str
    role: str
    name: str | None = None
    exp: float = field(default=math.inf, compare=False)   # the token's expiry (epoch seconds)


def issue_token(secret: str, sub: str, role: str, name: str | None = None,
                ttl: int = 3600) -> str:
    claims = {"sub": sub, "role": role, "exp": int(time.time()) + ttl}
    if name:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm="HS256")


@functools.lru_cache(maxsize=16384)
def _signed_claims(token: str, secret: str) -> dict:
    """The claims of a token whose signature checks out (raises PyJWT's errors otherwise).

    Cached because a client sends the same token with every request; the
    times (`exp`, `nbf`) are not part of what is cached: `claims` checks them
    on every use. The dict is shared: read it, never change it.
    """
    fast = _hs256_claims(token, secret)
    if fast is not None:
        return fast
    return reference_claims(token, secret)


def reference_claims(token: str, secret: str) -> dict:
    """PyJWT's verification: the reference the fast path is held to (tests/unit/test_tokens.py)."""
    return jwt.decode(token, secret, algorithms=["HS256"],
                      options={"require": ["exp", "sub"], "verify_exp": False,
                               "verify_nbf": False, "verify_iat": False})


# Headers seen to be plain HS256 (`alg` and `typ` only), by their encoded form.
_PLAIN_HEADERS: dict[str, bool] = {}


def _hs256_claims(token: str, secret: str) -> dict | None:
    """The common token (a plain HS256 header) verified by hand: 6 us, PyJWT's decode 50.

    A connect pays it once per connection (BENCHMARKS.md, issue 11). None means
    "not the common case": PyJWT decides. Refusals raise PyJWT's errors.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    head, body, sig = parts
    plain = _PLAIN_HEADERS.get(head)
    if plain is None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        plain = header.get("alg") == "HS256" and set(header) <= {"alg", "typ"} and \
            header.get("typ", "JWT") == "JWT"
        if len(_PLAIN_HEADERS) < 64:
            _PLAIN_HEADERS[head] = plain
    if not plain:
        return None
    try:
        signature = base64url_decode(sig.encode("ascii"))
        payload = json.loads(base64url_decode(body.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        return None   # PyJWT words the refusal
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, signature):
        raise jwt.InvalidSignatureError("Signature verification failed")
    # Only the claims Switchboard's tokens carry, of their types: PyJWT checks the
    # rest (aud, iss, jti, ...) by rules of its own.
    if not isinstance(payload, dict) or not _COMMON_CLAIMS.issuperset(payload) or \
            "exp" not in payload or not isinstance(payload.get("sub"), str):
        return None
    return payload


_COMMON_CLAIMS = frozenset({"sub", "role", "exp", "nbf", "name"})


def claims(token: str, secret: str) -> dict:
    """Verified, unexpired claims of `token`; ApiError 401 otherwise."""
    try:
        found = _signed_claims(token, secret)
    except jwt.PyJWTError as exc:
        raise ApiError(401, "invalid_token", f"invalid token: {exc}") from None
    now = time.time()
    exp, nbf = found.get("exp"), found.get("nbf", 0)
    if not isinstance(exp, (int, float)) or isinstance(exp, bool) or \
            not isinstance(nbf, (int, float)) or isinstance(nbf, bool):
        raise ApiError(401, "invalid_token", "invalid token: exp and nbf must be numbers")
    if exp <= now:
        raise ApiError(401, "token_expired", "the token has expired")
    if nbf > now:
        raise ApiError(401, "invalid_token", "invalid token: the token is not yet valid")
    return found


def decode_token(token: str, secret: str) -> Principal:
    found = claims(token, secret)
    sub, role = found.get("sub"), found.get("role")
    if not isinstance(sub, str) or not sub or len(sub) > 64:
        raise ApiError(401, "invalid_token", "sub must be a string of at most 64 characters")
    if role not in ROLES:
        raise ApiError(401, "invalid_token", f"role must be one of {', '.join(ROLES)}")
    name = found.get("name")
    return Principal(sub, role, name if isinstance(name, str) else None, float(found["exp"]))


def token_from_request(allow_query: bool = False) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if allow_query:
        return request.args.get("token")
    return None


def authenticate(allow_query: bool = False, realtime: bool = False) -> Principal:
    """The caller's identity; their user row exists once this returns (or soon, for `realtime`)."""
    token = token_from_request(allow_query)
    if not token:
        raise ApiError(401, "missing_token", "send Authorization: Bearer <token>")
    principal = decode_token(token, current_app.config["SB_SETTINGS"].jwt_secret)
    users = current_app.extensions["switchboard"].users
    if realtime:
        users.ensure_later(principal)
    else:
        users.ensure(principal)
    g.principal = principal
    return principal


def require(*roles: str, allow_query: bool = False) -> Callable:
    """Authenticate the caller and pass them as `me`; 403 unless their role is in `roles`."""
    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            me = authenticate(allow_query)
            if roles and me.role not in roles:
                raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}")
            return view(*args, me=me, **kwargs)
        wrapper._sb_roles = roles or ROLES  # read by the OpenAPI builder
        return wrapper
    return decorator
