"""HTTP API for chat (PROTOCOL.md). Thin: parse, authorise, call actions.chat."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("chat", __name__, url_prefix="/api/v1")
