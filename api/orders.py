"""HTTP API for orders (PROTOCOL.md). Thin: parse, authorise, call actions.orders."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("orders", __name__, url_prefix="/api/v1")
