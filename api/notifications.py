"""HTTP API for notifications (PROTOCOL.md). Thin: parse, authorise, call actions.notifications."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("notifications", __name__, url_prefix="/api/v1")
