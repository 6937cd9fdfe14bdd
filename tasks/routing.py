"""Tasks of the `routing` queue: each a few lines around actions/routing.py.

`BEAT_SCHEDULE` here is merged into Celery beat's schedule (tasks/__init__.py).
Every task is safe to run twice: assignments and re-queues are conditional
updates, so a repeat finds nothing left to do.
"""
from __future__ import annotations

from actions.routing_stats import LearnedCache
from tasks import celery_app


def _sweep_interval() -> float:
    try:
        from settings import Settings
        return Settings.from_env().routing_sweep_seconds
    except Exception:  # noqa: BLE001 - beat must start even with odd settings
        return 15.0


BEAT_SCHEDULE: dict = {
    "routing-sweep": {"task": "tasks.routing.sweep", "schedule": _sweep_interval()},
}


def _services():
    # Not `self.services`: when that property fails inside, Celery reports a missing
    # attribute instead of the real error (seen in the embedded mode).
    from services import get_services
    return get_services()


# Handling times learned from resolved conversations, read again every 30 s per worker process.
_LEARNED = LearnedCache()


def _route(services) -> list[str]:
    from actions.routing import route_waiting, routing_config
    priors, goal = routing_config(services.settings)
    return route_waiting(services.session, priors, goal, _LEARNED)


@celery_app.task(name="tasks.routing.route_conversation", bind=True, autoretry_for=(Exception,))
def route_conversation(self, conversation_id: str) -> list[str]:
    """A new conversation: route the queue best-first (it may not be the one that goes first)."""
    return _route(_services())


@celery_app.task(name="tasks.routing.route_waiting", bind=True, autoretry_for=(Exception,))
def route_waiting(self) -> list[str]:
    """A freed slot, an agent online, a transfer back to the queue."""
    return _route(_services())


@celery_app.task(name="tasks.routing.release_offline_agent", bind=True, autoretry_for=(Exception,))
def release_offline_agent(self, agent_id: str) -> list[str]:
    """The grace period of an offline agent is over: their conversations go back to routing."""
    from actions.routing import release_offline_agent as release
    services = _services()
    with services.session() as session:
        return release(session, agent_id, services.settings.agent_grace_seconds)


@celery_app.task(name="tasks.routing.sweep", bind=True, autoretry_for=(Exception,), max_retries=2)
def sweep(self) -> dict:
    """Periodic: offline agents past grace, unanswered conversations, re-score and route the queue.

    Also the safety net for a lost countdown or a routing task that never ran.
    """
    from actions.routing import offline_agents_past_grace, release_offline_agent as release
    from actions.routing import requeue_unanswered
    services = _services()
    settings = services.settings
    released: list[str] = []
    with services.session() as session:
        agents = offline_agents_past_grace(session, settings.agent_grace_seconds)
    for agent_id in agents:
        with services.session() as session:
            released += release(session, agent_id, settings.agent_grace_seconds)
    with services.session() as session:
        unanswered = requeue_unanswered(session, settings.unanswered_timeout_seconds)
    return {"released": released, "unanswered": unanswered, "assigned": _route(services)}
