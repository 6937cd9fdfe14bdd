"""What every page shares: the shop's name, the navigation, the icon."""
from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, Flask, current_app, send_file

from settings import Settings

# (path, label, section): the header of every page, in this order.
NAV = (("/shop/", "Shop", "shop"), ("/shop/orders", "Orders", "orders"), ("/chat/console", "Chat", "chat"),
       ("/shop/admin", "Operations", "ops"), ("/notifications/preferences", "Notifications", "notifications"),
       ("/docs", "API", "api"))

PLOTLY_JS = str(files("plotly") / "package_data" / "plotly.min.js")

bp = Blueprint("shell", __name__)


@bp.get("/favicon.ico")
@bp.get("/favicon.svg")
def favicon():
    """The icon, as SVG (browsers asking for /favicon.ico take it too)."""
    response = current_app.send_static_file("favicon.svg")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@bp.get("/vendor/plotly.min.js")
def plotly_js():
    """The dashboard's charts: plotly.js as the `plotly` package ships it (a pinned dependency,
    not a copy in this tree)."""
    return send_file(PLOTLY_JS, mimetype="text/javascript", max_age=7 * 86400, conditional=True)


def init_shell(app: Flask, settings: Settings) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def _shell():
        return {"shop_name": settings.shop_name, "nav": NAV}
