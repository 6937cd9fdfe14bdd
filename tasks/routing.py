"""Tasks of the `routing` queue: each a few lines around actions/routing.py.

Every task is safe to run twice: assignments and re-queues are conditional
updates, so a repeat finds nothing left to do. The sweep runs every
`settings.routing.sweep_seconds` (celeryconfig.py).
"""
from __future__ import annotations

from actions import routing
from actions.routing_stats import LearnedCache
from tasks import celery_app

# Handling times learned from resolved conversations, read again every 30 s per worker process.
_LEARNED = LearnedCache()


def _route(services) -> list[str]:
    priors, goal = routing.routing_config(services.settings)
    return routing.route_waiting(services.session, priors, goal, _LEARNED)


@celery_app.task(name="tasks.routing.route_conversation", bind=True, autoretry_for=(Exception,))
def route_conversation(self, conversation_id: str) -> list[str]:
    """A new conversation: route the queue best-first (it may not be the one that goes first)."""
    return _route(self.services)


@celery_app.task(name="tasks.routing.route_waiting", bind=True, autoretry_for=(Exception,))
def route_waiting(self) -> list[str]:
    """A freed slot, an agent online, a transfer back to the queue."""
    return _route(self.services)


@celery_app.task(name="tasks.routing.release_offline_agent", bind=True, autoretry_for=(Exception,))
def release_offline_agent(self, agent_id: str) -> list[str]:
    """The grace period of an offline agent is over: their conversations go back to routing."""
    services = self.services
    with services.session() as session:
        return routing.release_offline_agent(session, agent_id, services.settings.chat.agent_grace_seconds)


@celery_app.task(name="tasks.routing.sweep", bind=True, autoretry_for=(Exception,), max_retries=2)
def sweep(self) -> dict:
    """Periodic: offline agents past grace, unanswered conversations, re-score and route the queue.

    Also the safety net for a lost countdown or a routing task that never ran.
    """
    services = self.services
    chat = services.settings.chat
    released: list[str] = []
    with services.session() as session:
        agents = routing.offline_agents_past_grace(session, chat.agent_grace_seconds)
    for agent_id in agents:
        with services.session() as session:
            released += routing.release_offline_agent(session, agent_id, chat.agent_grace_seconds)
    with services.session() as session:
        unanswered = routing.requeue_unanswered(session, chat.unanswered_timeout_seconds)
    return {"released": released, "unanswered": unanswered, "assigned": _route(services)}
