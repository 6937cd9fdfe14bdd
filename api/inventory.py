"""HTTP API for inventory (PROTOCOL.md). Thin: parse, authorise, call actions.inventory."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("inventory", __name__, url_prefix="/api/v1")
