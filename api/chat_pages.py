"""Chat pages: the agent console and a demo shop page that embeds the customer widget.

The widget itself is `static/chat/widget.js`: any shop page embeds it with one
script tag (`data-token` carries the customer's JWT, issued by the shop's
backend). The demo pages get tokens from the development endpoint.
"""
from __future__ import annotations


from flask import Blueprint, render_template, request

from api.ids import is_id

bp = Blueprint("chat_pages", __name__)


def _id_arg(name: str, default: str) -> str:
    value = request.args.get(name, "")
    return value if is_id(value) else default


@bp.get("/chat/console")
def console():
    """The agent console (development tokens: ?agent=<id>)."""
    return render_template("chat/console.html", agent=_id_arg("agent", "agent-ann"))


@bp.get("/chat/shop")
def shop():
    """A demo shop page with the chat widget embedded by one script tag (?customer=<id>)."""
    return render_template("chat/shop.html", customer=_id_arg("customer", ""))
