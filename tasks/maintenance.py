"""Upkeep that must happen even when no web process is looking."""
from __future__ import annotations

from actions.presence import announce_many
from broadcast.presence import RedisPresence
from tasks import celery_app


@celery_app.task(name="tasks.maintenance.reap_presence", bind=True)
def reap_presence(self) -> list[str]:
    """Take the users of crashed web processes offline (realtime/presence.py)."""
    services = self.services
    if services.redis is None:
        return []
    settings = services.settings
    store = RedisPresence(services.redis, settings.redis_prefix, settings.realtime.presence_ttl_seconds)
    gone = store.reap()
    if gone:
        with services.session() as session:
            announce_many(session, [(user_id, False) for user_id in gone],
                          settings.chat.agent_grace_seconds)
    return gone
