"""Upkeep that must happen even when no web process is looking."""
from __future__ import annotations

from tasks import celery_app


@celery_app.task(name="tasks.maintenance.reap_presence")
def reap_presence() -> list[str]:
    """Take the users of crashed web processes offline (broadcast/presence.py)."""
    from broadcast.presence import RedisPresence
    from services import announce, get_services
    services = get_services()
    if services.redis is None:
        return []
    presence = RedisPresence(services.redis, services.settings.redis_prefix,
                             services.settings.presence_ttl_seconds)
    gone = presence.reap()
    for user_id in gone:
        announce(services, user_id, False)
    return gone
