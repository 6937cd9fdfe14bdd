"""The user's notification preferences page and the service worker (served from the root,
so it may control the whole origin)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("notification_pages", __name__)


@bp.get("/notifications/preferences")
def preferences_page():
    """The notification preferences page (channels on and off, browser push)."""
    return render_template("notifications/preferences.html")


@bp.get("/sw.js")
def service_worker():
    """The web push service worker."""
    response = current_app.send_static_file("sw.js")
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache"
    return response
