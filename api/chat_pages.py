"""The agent console. The customer widget (`static/chat/widget.js`) is embedded by the
shop's pages (api/shop_pages.py) with one script tag.

The console signs in with a development token for the agent picked (`?agent=<id>`),
so it exists where that endpoint does (not in production).
"""
from __future__ import annotations

from flask import Blueprint, render_template, request
from sqlalchemy import select

from api.ids import is_id
from api.shop_pages import shop_redirect
from models import Agent
from services import current_services

bp = Blueprint("chat_pages", __name__)


@bp.get("/chat/console")
def console():
    """The agent console for ?agent=<id>; without it, the sign-in: pick one of the shop's agents."""
    agent_id = request.args.get("agent", "")
    with current_services().session() as session:
        if is_id(agent_id):
            agent = session.get(Agent, agent_id)
            return render_template("chat/console.html", agent=agent_id,
                                   agent_name=(agent.name if agent and agent.name else agent_id),
                                   section="chat")
        agents = [{"id": a.user_id, "name": a.name or a.user_id, "skills": list(a.skills or []),
                   "limit": a.concurrent_limit}
                  for a in session.scalars(select(Agent).order_by(Agent.name).limit(100)).all()]
    return render_template("chat/console.html", agent=None, agents=agents, section="chat")


bp.add_url_rule("/chat/shop", "shop", shop_redirect)
