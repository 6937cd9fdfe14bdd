"""What a WebSocket client's ops do (PROTOCOL.md section 3), and how a refusal is answered.

`handle(services, conn, text)` runs one text frame: its shape is checked
(broadcast/frames.py), then subscribe, unsubscribe, emit, ping or refresh
runs. Every refusal (refusals.py) is answered here and only here: a failed
ack when the frame carried a `ref`, else an `error` frame; a dependency
outage is `unavailable`; an unexpected exception is `internal_error`, and the
connection stays open in every case.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import outages
from api.auth import decode_token
from broadcast.events import BadCursor
from broadcast.frames import FrameError, parse_op
from realtime.commands import CommandError, run_command
from realtime.topics import authorize, needs_lookup, parse_topic
from refusals import Refusal

log = logging.getLogger(__name__)


def fail(conn, ref: Any, code: str, message: str) -> None:
    error = {"code": code, "message": message}
    if ref is not None:
        conn.send({"event": "ack", "ref": ref, "ok": False, "error": error})
    else:
        conn.send({"event": "error", "error": error})


def handle(services, conn, text: str) -> None:
    try:
        op = parse_op(text)
    except FrameError as exc:
        fail(conn, exc.ref, exc.code, exc.message)
        return
    ref = op.ref

    def ok(data: Any = None) -> None:
        if ref is not None:
            conn.send({"event": "ack", "ref": ref, "ok": True, "data": data if data is not None else {}})

    try:
        if op.op == "subscribe":
            subscribe(services, conn, op.get("topic"), op.get("since"),
                      lambda recovered, cursor: ok({"recovered": recovered, "cursor": cursor}))
        elif op.op == "unsubscribe":
            topic = op.get("topic")
            parse_topic(topic)
            if topic == f"user:{conn.user.id}":
                raise CommandError("cannot_unsubscribe", "your own user topic stays subscribed")
            services.hub.leave(conn, topic)
            ok()
        elif op.op == "emit":
            ok(run_command(conn.user, op.get("event"), op.get("data")))
        elif op.op == "refresh":
            ok({"exp": refresh(services, conn, op.get("token"))})
        elif op.op == "ping":
            if ref is not None:
                ok({"ts": int(time.time() * 1000)})
            else:
                conn.send({"event": "pong", "data": {"ts": int(time.time() * 1000)}})
    except Refusal as exc:
        fail(conn, ref, exc.code, exc.message)
    except BadCursor as exc:
        fail(conn, ref, "invalid_cursor", str(exc))
    except outages.TYPES as exc:
        name = outages.dependency_down(exc)
        log.warning("ws op %s: %s unavailable: %s", op.op, name, exc)
        fail(conn, ref, "unavailable", outages.outage_message(name))
    except Exception:  # noqa: BLE001 - one bad command must not end the connection
        log.exception("ws op %s failed", op.op)
        fail(conn, ref, "internal_error", "internal error")


def subscribe(services, conn, topic: str, since: str | None, ack) -> None:
    if needs_lookup(conn.user, topic):
        with services.session() as session:
            authorize(session, conn.user, topic)
    else:
        authorize(None, conn.user, topic)
    services.hub.join(conn, topic, since, ack)


def refresh(services, conn, token: str) -> int:
    """Extend `conn` to the new token's `exp`: the same user in the same role only."""
    new = decode_token(token, services.settings.jwt_secret)
    if (new.id, new.role) != (conn.user.id, conn.user.role):
        raise CommandError("token_mismatch", "a refresh token must be for the same sub and role")
    services.hub.extend(conn, new.exp)
    return int(new.exp)
