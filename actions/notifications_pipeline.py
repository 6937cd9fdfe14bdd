"""The delivery pipeline on the `notifications` queue (PROTOCOL.md section 5).

create → dispatch (render, ttl, digest, preferences; the websocket channel at
once; one `deliver` task per other channel) → deliver (one delivery row per
target, each sent at most once). Idempotent throughout: a rerun of dispatch
or deliver, or a duplicate task, finds the rows it already wrote.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

import broadcast
from actions.effects import enqueue
from actions.notifications import (DEFAULT_CHANNELS, channel_enabled, escape_text_as_html, iso,
                                   item_json, render, templates_for)
from broadcast.bus import Outgoing
from models import Notification, NotificationDelivery, NotificationPreference, User, new_id, utcnow
from models.notifications import CHANNELS
from providers.base import Content, Gone, Permanent, Transient
from providers.channels import providers_for
from providers.websocket import idempotency_key
from settings import Settings

log = logging.getLogger(__name__)
OpenSession = Callable[[], AbstractContextManager[Session]]
DISPATCH = "tasks.notifications.dispatch_batch"
DELIVER_MANY = "tasks.notifications.deliver_many"
FLUSH_DIGEST = "tasks.notifications.flush_digest"


class RetryLater(Exception):
    """Some target failed transiently; the task retries with backoff and jitter."""


# -- create ------------------------------------------------------------------------------

def clean_channels(channels: Iterable[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(channels)) if channels else list(DEFAULT_CHANNELS)
    return [c for c in chosen if c in CHANNELS]


def create_many(session: Session, items: list[dict[str, Any]], batch_size: int = 100) -> list[str]:
    """Store notifications in one multi-row insert; dispatch in batches after commit."""
    now = utcnow()
    rows = [{"id": new_id(), "user_id": it["user_id"], "type": it["type"], "data": it.get("data") or {},
             "channels": clean_channels(it.get("channels")), "title": "", "body": "",
             "created_at": now} for it in items]
    if rows and session.get_bind().dialect.name == "postgresql":
        _copy_notifications(session, rows)
    elif rows:
        session.execute(insert(Notification), rows)
    ids = [r["id"] for r in rows]
    for i in range(0, len(ids), batch_size):
        enqueue(DISPATCH, ids[i:i + batch_size], session=session)
    return ids


def _copy_notifications(session: Session, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL's COPY: 10,000 rows in one statement, in the session's transaction."""
    cols = ("id", "user_id", "type", "data", "channels", "title", "body", "created_at")
    driver = session.connection().connection.driver_connection
    assert driver is not None, "a connection checked out of the pool has its driver's"
    cursor = driver.cursor()
    with cursor.copy(f"COPY notifications ({', '.join(cols)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row((r["id"], r["user_id"], r["type"], json.dumps(r["data"]),
                            json.dumps(r["channels"]), "", "", r["created_at"]))


def _count(n: Notification) -> int:
    return int(n.data.get("count", 1)) if isinstance(n.data, dict) and "digest_of" in n.data else 1


def ensure_rendered(n: Notification, tpl, user_name: str | None) -> None:  # noqa: ANN001
    """Render title, body and links once, from the template in force at the first render."""
    if n.title:
        return
    r = render(tpl, n.data, {"id": n.user_id, "name": user_name}, _count(n))
    # render() always gives a title and a body (str); the links may be None.
    n.title, n.body = r["title"] or "", r["body"] or ""
    n.action_url, n.icon_url = r["action_url"], r["icon_url"]


# -- dispatch ----------------------------------------------------------------------------

def _insert_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert delivery rows; one that exists already (a rerun) is left as it is."""
    if not rows:
        return
    now = utcnow()
    values = [{"id": new_id(), "target": "", "attempts": 0, "error": None, "provider_id": None,
               "created_at": now, "updated_at": now, **r} for r in rows]
    if session.get_bind().dialect.name == "postgresql":
        # One statement for the whole batch: arrays unnested into rows.
        cols = {"id": "text", "notification_id": "text", "channel": "text", "target": "text",
                "status": "text", "attempts": "int", "error": "text", "provider_id": "text",
                "created_at": "timestamptz", "updated_at": "timestamptz"}
        params = {c: [v[c] for v in values] for c in cols}
        unnest = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in cols.items())
        session.execute(text(f"INSERT INTO notification_deliveries ({', '.join(cols)}) "
                             f"SELECT * FROM unnest({unnest}) "
                             "ON CONFLICT (notification_id, channel, target) DO NOTHING"), params)
        return
    stmt = sqlite_insert(NotificationDelivery).on_conflict_do_nothing(
        index_elements=["notification_id", "channel", "target"])
    session.execute(stmt, values)


def _bulk_update(session: Session, values: list[dict[str, Any]]) -> None:
    if not values:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(update(Notification), values)
        return
    cols = {"id": "text", "title": "text", "body": "text", "action_url": "text", "icon_url": "text",
            "expires_at": "timestamptz", "digest_key": "text"}
    params = {c: [v[c] for v in values] for c in cols}
    unnest = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in cols.items())
    sets = ", ".join(f"{c} = v.{c}" for c in cols if c != "id")
    session.execute(text(f"UPDATE notifications AS n SET {sets} FROM unnest({unnest}) "
                         f"AS v({', '.join(cols)}) WHERE n.id = v.id"), params)


def dispatch(open_session: OpenSession, ids: list[str], *, bypass_digest: bool = False) -> dict[str, int]:
    """Render, check ttl, digest and preferences for these notifications, then send.

    The websocket channel is a publish on our own bus, so it is done here for
    the whole batch (one transaction for the rows, one publish per user
    event); every other channel becomes one `deliver_many` task for the batch,
    so a slow or failing provider never holds up another channel.
    """
    counts = {"websocket": 0, "queued": 0, "skipped": 0, "expired": 0, "digested": 0}
    published: list[Notification] = []
    to_deliver: dict[str, list[str]] = {}   # channel -> the batch's notifications to send on it
    with open_session() as session:
        notes = session.scalars(select(Notification).where(Notification.id.in_(ids))).all()
        if not notes:
            return counts
        templates = templates_for(session, {n.type for n in notes})
        user_ids = {n.user_id for n in notes}
        users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
        prefs = {p.user_id: {"channels": p.channels, "types": p.types} for p in session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id.in_(user_ids)))}
        now = utcnow()
        rows: list[dict[str, Any]] = []
        changed: list[Notification] = []
        for n in notes:
            tpl = templates[n.type]
            user = users.get(n.user_id)
            if not n.title or n.expires_at is None or (tpl.digest_seconds and not n.digest_key):
                changed.append(n)
            ensure_rendered(n, tpl, user.name if user else None)
            if n.expires_at is None:
                n.expires_at = n.created_at + timedelta(seconds=tpl.ttl or 86400)
            if now > n.expires_at:
                rows += [{"notification_id": n.id, "channel": ch, "status": "expired",
                          "error": f"older than the template's ttl ({tpl.ttl} s)"} for ch in n.channels]
                counts["expired"] += 1
                continue
            is_digest = isinstance(n.data, dict) and "digest_of" in n.data
            if tpl.digest_seconds and not tpl.critical and not bypass_digest and not is_digest:
                window = int(tpl.digest_seconds)
                if not n.digest_key:
                    bucket = int(n.created_at.timestamp() // window)
                    n.digest_key = f"{n.user_id}:{n.type}:{bucket}:{window}"
                end = (int(n.digest_key.split(":")[-2]) + 1) * window
                enqueue(FLUSH_DIGEST, n.digest_key, session=session,
                         countdown=max(0.0, end - now.timestamp()) + 0.2)
                counts["digested"] += 1
                continue
            for ch in n.channels:
                if not tpl.critical and not channel_enabled(prefs.get(n.user_id), n.type, ch):
                    rows.append({"notification_id": n.id, "channel": ch, "status": "skipped",
                                 "error": "disabled by the user's preferences"})
                    counts["skipped"] += 1
                elif ch == "websocket":
                    published.append(n)
                    rows.append({"notification_id": n.id, "channel": "websocket", "status": "sent",
                                 "attempts": 1})
                else:
                    to_deliver.setdefault(ch, []).append(n.id)
                    counts["queued"] += 1
        # One task per channel for the batch: a slow or failing provider holds up only its channel.
        for ch, channel_ids in to_deliver.items():
            enqueue(DELIVER_MANY, channel_ids, ch, session=session)
        # One statement for the batch's renders and one for its rows, not one per row.
        session.expunge_all()
        _bulk_update(session, [{"id": n.id, "title": n.title, "body": n.body, "action_url": n.action_url,
                                "icon_url": n.icon_url, "expires_at": n.expires_at,
                                "digest_key": n.digest_key} for n in changed])
        _insert_rows(session, rows)
    if published:
        # After the commit, so a client that reacts by fetching the inbox finds the item.
        # The rows already say `sent`: if this publish fails, the task's retry publishes
        # again, and the idempotency key keeps what did go out from going out twice.
        broadcast.publish_many([Outgoing(f"user:{n.user_id}", "notification", item_json(n),
                                         idempotency_key=idempotency_key(n.id)) for n in published])
        counts["websocket"] = len(published)
    return counts


def flush_digest(open_session: OpenSession, digest_key: str) -> str | None:
    """At the end of a digest window: one notification that counts what arrived in it.

    The digest's id comes from the window's key, so a second flush finds it;
    a notification that arrived after the first flush goes out on its own.
    """
    with open_session() as session:
        members = session.scalars(select(Notification).where(Notification.digest_key == digest_key)
                                  .order_by(Notification.created_at, Notification.id)).all()
        if not members:
            return None
        digest_id = "dg" + hashlib.sha256(digest_key.encode()).hexdigest()[:40]
        existing = session.get(Notification, digest_id)
        if existing is not None:
            covered = set(existing.data.get("digest_of", []))
            late = [m.id for m in members if m.id not in covered]
            if late:
                enqueue(DISPATCH, late, True, session=session)
            enqueue(DISPATCH, [digest_id], True, session=session)
            return digest_id
        if len(members) == 1:
            enqueue(DISPATCH, [members[0].id], True, session=session)
            return members[0].id
        last = members[-1]
        channels = list(dict.fromkeys(ch for m in members for ch in m.channels))
        session.add(Notification(
            id=digest_id, user_id=last.user_id, type=last.type, channels=channels,
            data={**(last.data or {}), "count": len(members), "digest_of": [m.id for m in members]},
            created_at=utcnow(), read_at=utcnow()))  # the members are the inbox's items
        enqueue(DISPATCH, [digest_id], True, session=session)
        return digest_id


# -- deliver -----------------------------------------------------------------------------

def content_of(n: Notification, tpl, now=None) -> Content:  # noqa: ANN001
    now = now or utcnow()
    remaining = int((n.expires_at - now).total_seconds()) if n.expires_at else int(tpl.ttl or 86400)
    html = None
    if tpl.html_template:
        html = render(tpl, n.data, {"id": n.user_id}, _count(n))["html"]
    return Content(notification_id=n.id, user_id=n.user_id, type=n.type, title=n.title, body=n.body,
                   html=html or escape_text_as_html(n.title, n.body, n.action_url),
                   action_url=n.action_url, icon_url=n.icon_url, badge_count=tpl.badge_count,
                   sound=tpl.sound, priority=tpl.priority or "normal", ttl=max(0, remaining),
                   data=n.data if isinstance(n.data, dict) else {}, item=item_json(n))


def deliver(open_session: OpenSession, settings: Settings, notification_id: str, channel: str,
            final: bool = False) -> dict[str, str]:
    """Send one notification on one channel to each of the user's targets, once each
    (`deliver_many` for one)."""
    return deliver_many(open_session, settings, [notification_id], channel, final).get(notification_id, {})


def deliver_many(open_session: OpenSession, settings: Settings, notification_ids: list[str], channel: str,
                 final: bool = False) -> dict[str, dict[str, str]]:
    """Send these notifications on one channel to each of their users' targets, once each.

    One transaction renders them all and writes every target's row `queued`. Then each
    target's row is taken with SELECT ... FOR UPDATE SKIP LOCKED and kept locked during its
    send, so a duplicate task running at the same time skips it; the row says `sent` in the
    same commit that ends the send, so a retry after a crash skips every target already
    done. A worker killed during a send rolls back only that target's attempt, which the
    retry makes again. Raises RetryLater when a target failed transiently and `final` is
    False. Returns each notification's outcome by target.
    """
    outcome: dict[str, dict[str, str]] = {nid: {} for nid in notification_ids}
    work: list[tuple[str, Any, Any, Content, Any]] = []   # (notification id, provider, target, content, expiry)
    with open_session() as session:
        notes = session.scalars(select(Notification).where(Notification.id.in_(notification_ids))).all()
        if not notes:
            return {}
        templates = templates_for(session, {n.type for n in notes})
        user_ids = {n.user_id for n in notes}
        users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
        providers = providers_for(channel, settings)
        unconfigured = [p.name for p in providers if not p.configured()]
        ready = [p for p in providers if p.configured()]
        # One query per provider for the batch's users, not one per user.
        found = [(p, p.targets(session, user_ids)) for p in ready]
        targets_of = {uid: [(p, t) for p, by_user in found for t in by_user.get(uid, ())] for uid in user_ids}
        rows: list[dict[str, Any]] = []
        now = utcnow()
        for n in notes:
            tpl = templates[n.type]
            if n.expires_at is None:
                n.expires_at = n.created_at + timedelta(seconds=tpl.ttl or 86400)
            user = users.get(n.user_id)
            ensure_rendered(n, tpl, user.name if user else None)
            if now > n.expires_at:
                session.execute(update(NotificationDelivery).where(
                    NotificationDelivery.notification_id == n.id, NotificationDelivery.channel == channel,
                    NotificationDelivery.status == "queued").values(status="expired", updated_at=now))
                rows.append({"notification_id": n.id, "channel": channel, "status": "expired",
                             "error": "expired before delivery"})
                outcome[n.id] = {"": "expired"}
                continue
            pairs = targets_of[n.user_id]
            if not pairs:
                why = ("no target registered" if not unconfigured
                       else f"not configured: {', '.join(unconfigured)}")
                rows.append({"notification_id": n.id, "channel": channel, "status": "skipped", "error": why})
                outcome[n.id] = {"": "skipped"}
                continue
            content = content_of(n, tpl)
            rows += [{"notification_id": n.id, "channel": channel, "target": t.key, "status": "queued"}
                     for _, t in pairs]
            work += [(n.id, p, t, content, n.expires_at) for p, t in pairs]
        _insert_rows(session, rows)
    retry = False
    for notification_id, provider, target, content, expires_at in work:
        status = _send_once(open_session, notification_id, channel, provider, target, content, expires_at, final)
        if status is None:
            retry = retry or not final
            continue
        if status == "retry":
            retry = True
            continue
        if status:
            outcome[notification_id][target.key] = status
    if retry:
        raise RetryLater(f"{len(notification_ids)} notification(s) on {channel}: a target failed transiently")
    return outcome


def _send_once(open_session: OpenSession, notification_id: str, channel: str, provider: Any, target: Any,
               content: Content, expires_at: Any, final: bool) -> str | None:
    """One target's send, its row locked through it: the row's new status; "" when there was
    nothing to do; None when the row is locked by another task (look again on the retry);
    "retry" after a transient failure."""
    d = NotificationDelivery
    with open_session() as session:
        # Core statements on the session's connection: the ORM's per-statement work was a
        # third of a push's worker CPU (BENCHMARKS.md), and these rows are never loaded.
        conn = session.connection()
        row = conn.execute(select(d.id, d.attempts).where(
            d.notification_id == notification_id, d.channel == channel, d.target == target.key,
            d.status == "queued").with_for_update(skip_locked=True)).first()
        if row is None:
            # Done already, or locked: by a duplicate task sending right now, or by a
            # killed worker whose transaction the database has not rolled back yet.
            # A locked row still queued is looked at again on the retry.
            still_queued = conn.scalar(select(d.id).where(
                d.notification_id == notification_id, d.channel == channel, d.target == target.key,
                d.status == "queued"))
            return None if still_queued is not None else ""
        values: dict[str, Any] = {"attempts": row.attempts + 1}
        again = False
        if utcnow() > expires_at:
            values.update(status="expired", error="expired before delivery")
        else:
            try:
                values.update(provider_id=provider.send(target, content), status="sent", error=None)
            except Gone as exc:
                values.update(status="failed", error=f"{exc} (target removed)")
                provider.forget(session, target)
            except Permanent as exc:
                values.update(status="failed", error=str(exc))
            except Exception as exc:  # noqa: BLE001 - Transient, or a provider's own surprise
                error = str(exc) if isinstance(exc, Transient) else f"{exc.__class__.__name__}: {exc}"
                log.warning("%s to %s failed: %s", channel, target.key, error)
                values["error"] = error
                if final:
                    values["status"] = "failed"
                else:
                    again = True
        values["updated_at"] = utcnow()
        conn.execute(update(d).where(d.id == row.id).values(**values))
        return "retry" if again else values.get("status", "queued")


def deliveries(session: Session, notification_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(NotificationDelivery).where(
        NotificationDelivery.notification_id == notification_id).order_by(
        NotificationDelivery.channel, NotificationDelivery.target)).all()
    return [{"channel": r.channel, "target": r.target, "status": r.status, "attempts": r.attempts,
             "error": r.error, "provider_id": r.provider_id, "created_at": iso(r.created_at),
             "updated_at": iso(r.updated_at)} for r in rows]


def delivery_stats(session: Session) -> dict[str, Any]:
    by_channel: dict[str, dict[str, int]] = {}
    for channel, status, count in session.execute(
            select(NotificationDelivery.channel, NotificationDelivery.status, func.count())
            .group_by(NotificationDelivery.channel, NotificationDelivery.status)):
        by_channel.setdefault(channel, {s: 0 for s in ("queued", "sent", "failed", "skipped", "expired")})
        by_channel[channel][status] = count
    total = session.scalar(select(func.count()).select_from(Notification))
    return {"notifications": total, "deliveries_by_channel": by_channel}


def stuck_deliveries(session: Session, older_than_seconds: float) -> list[tuple[str, str]]:
    """(notification, channel) pairs with a row still queued long after its last change."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return list(session.execute(select(NotificationDelivery.notification_id, NotificationDelivery.channel)
                                .where(NotificationDelivery.status == "queued",
                                       NotificationDelivery.updated_at < cutoff)
                                .distinct().limit(1000)).tuples())
