"""Who may subscribe to what (PROTOCOL.md section 3, Topics)."""
from __future__ import annotations

import re

from sqlalchemy.orm import Session

from actions.customers import may_see
from models import Conversation, Order
from refusals import Refusal

_ID = r"[A-Za-z0-9_.:-]{1,64}"
TOPIC_PATTERN = rf"^(user|conversation|product|order):({_ID})$|^(agents|admin)$"   # also in OpenAPI
_TOPIC = re.compile(TOPIC_PATTERN)


class TopicError(Refusal):
    """A topic that does not exist (400) or that the caller may not follow (403)."""


def parse_topic(topic: object) -> tuple[str, str | None]:
    if not isinstance(topic, str):
        raise TopicError(400, "invalid_topic", "topic must be a string")
    m = _TOPIC.match(topic)
    if not m:
        raise TopicError(400, "invalid_topic",
                         f"unknown topic {topic[:80]!r}: use user:, conversation:, product:, "
                         "order:<id>, agents or admin")
    if m.group(3):
        return m.group(3), None
    return m.group(1), m.group(2)


def needs_lookup(me, topic: str) -> bool:
    """Whether deciding on `topic` takes the database (who a conversation or order belongs to)."""
    return me.role not in ("admin", "service") and topic.startswith(("conversation:", "order:"))


def authorize(session: Session | None, me, topic: str) -> None:
    """Raise TopicError unless `me` (a Principal) may subscribe to `topic`.

    `session` may be None when `needs_lookup` says no row is read.
    """
    kind, ident = parse_topic(topic)
    if me.role in ("admin", "service"):
        return
    allowed = False
    if kind == "user":
        allowed = ident == me.id
    elif kind == "product":
        allowed = True
    elif kind == "agents":
        allowed = me.role == "agent"
    elif kind == "conversation":
        conv = session.get(Conversation, ident)
        allowed = conv is not None and me.id in (conv.customer_id, conv.agent_id)
    elif kind == "order":
        order = session.get(Order, ident)
        # The agent chatting with its customer follows it too (the console's customer panel).
        allowed = order is not None and (order.customer_id == me.id or (
            me.role == "agent" and may_see(session, me, order.customer_id)))
    if not allowed:
        raise TopicError(403, "forbidden_topic", f"you may not subscribe to {topic}")
