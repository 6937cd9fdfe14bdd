"""`GET /api/v1/stats` (admin): figures from every domain.

Each domain adds a section with `@stats_section("name")`: a function of a
session returning a JSON-able dict.
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app
from sqlalchemy.orm import Session

from actions import dashboard
from api.auth import require

bp = Blueprint("stats", __name__, url_prefix="/api/v1")
SECTIONS: dict[str, Callable[[Session], dict]] = {}


def stats_section(name: str):
    def decorator(fn: Callable[[Session], dict]):
        SECTIONS[name] = fn
        return fn
    return decorator


@bp.get("/stats/day")
@require("admin")
def stats_day(me):
    """The last 24 hours, hour by hour: waiting conversations, agents online, first response
    times and ratings against their goals; orders by status; deliveries by channel."""
    settings = current_app.config["SB_SETTINGS"]
    with current_app.extensions["switchboard"].session() as session:
        return dashboard.day(session, first_response_goal=settings.chat.first_response_goal_seconds,
                             csat_goal=settings.chat.csat_goal)


@bp.get("/stats")
@require("admin")
def stats(me):
    """Figures for the admin dashboard: every domain's section."""
    with current_app.extensions["switchboard"].session() as session:
        return {name: fn(session) for name, fn in SECTIONS.items()}
