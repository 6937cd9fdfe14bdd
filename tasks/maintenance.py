"""Upkeep that must happen even when no web process is looking."""
from __future__ import annotations

from actions.presence import announce_many
from broadcast.presence import RedisPresence
from tasks import celery_app


@celery_app.task(name="tasks.maintenance.reap_presence")
def reap_presence() -> list[str]:
    """Take the users of crashed web processes offline (realtime/presence.py)."""
    from services import get_services
    services = get_services()
    if services.redis is None:
        return []
    store = RedisPresence(services.redis, services.settings.redis_prefix,
                          services.settings.presence_ttl_seconds)
    gone = store.reap()
    if gone:
        with services.session() as session:
            announce_many(session, [(user_id, False) for user_id in gone],
                          services.settings.agent_grace_seconds)
    return gone
