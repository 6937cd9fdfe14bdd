"""JWT identity (PROTOCOL.md section 2): who is calling, and may they."""
from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from flask import current_app, g, request

from api.errors import ApiError

ROLES = ("customer", "agent", "admin", "service")


@dataclass(frozen=True)
class Principal:
    id: str
    role: str
    name: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in ("admin", "service")


def issue_token(secret: str, sub: str, role: str, name: str | None = None,
                ttl: int = 3600) -> str:
    claims = {"sub": sub, "role": role, "exp": int(time.time()) + ttl}
    if name:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_token(token: str, secret: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "the token has expired") from None
    except jwt.PyJWTError as exc:
        raise ApiError(401, "invalid_token", f"invalid token: {exc}") from None
    sub, role = claims.get("sub"), claims.get("role")
    if not isinstance(sub, str) or not sub or len(sub) > 64:
        raise ApiError(401, "invalid_token", "sub must be a string of at most 64 characters")
    if role not in ROLES:
        raise ApiError(401, "invalid_token", f"role must be one of {', '.join(ROLES)}")
    name = claims.get("name")
    return Principal(sub, role, name if isinstance(name, str) else None)


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
