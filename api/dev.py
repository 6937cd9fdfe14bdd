"""Development helpers for the demo pages: a token for a chosen user and role.

Registered only when SWITCHBOARD_ENV is not `production`.
"""
from __future__ import annotations

from flask import Blueprint, current_app
from pydantic import BaseModel, Field

from api.auth import issue_token
from api.ids import ID
from api.openapi import body, responds

bp = Blueprint("dev", __name__, url_prefix="/api/v1/dev")


class TokenIn(BaseModel):
    sub: str = Field(pattern=ID)
    role: str = Field(pattern=r"^(customer|agent|admin|service)$")
    name: str | None = Field(default=None, max_length=100)
    ttl: int = Field(default=3600, ge=2, le=86400)   # short ones show refreshes in the demo


class TokenOut(BaseModel):
    token: str


@bp.post("/token")
@body(TokenIn)
@responds(200, TokenOut, "a signed JWT (development only)")
def dev_token(payload: TokenIn):
    """Issue a token (development only: absent in production)."""
    secret = current_app.config["SB_SETTINGS"].jwt_secret
    return {"token": issue_token(secret, payload.sub, payload.role, payload.name, payload.ttl)}
