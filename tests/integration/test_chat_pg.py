"""The chat send on PostgreSQL: the unit tier's message tests again, plus a client_id race.

On PostgreSQL a customer's message is one statement in an autocommit session
(`actions.chat.messages.send_at_once`); SQLite takes the two-statement path,
so these tests run the same assertions where the one statement runs.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from settings import Settings
from tests.conftest import fresh_pg_database
from tests.unit.test_chat import (  # noqa: F401  (collected here, on PostgreSQL)
    assigned, events, h, services, test_a_send_keeps_the_conversation_up_to_date,
    test_agent_reply_records_first_response_and_notifies_offline_customer, test_bad_messages,
    test_messages_client_id_idempotency, test_non_participants_get_403_and_unknown_404,
    test_private_notes_never_reach_the_customer, test_resolve_rate_once,
    test_ws_commands_call_the_same_actions)


@pytest.fixture
def make_app():
    """An app on a fresh migrated PostgreSQL database and the in-memory bus."""
    from app import create_app
    with fresh_pg_database("sb_chatpg") as url:
        def factory(**overrides):
            return create_app(Settings.of(database_url=url, redis_url=None, **overrides),
                              background=False)
        yield factory


def test_racing_sends_with_one_client_id_store_one_message(client, assigned, services, events):
    from sqlalchemy import func, select

    from models import Message
    cid = assigned["id"]

    def send(_):
        r = client.post(f"/api/v1/conversations/{cid}/messages", headers=h("cust-1"),
                        json={"client_id": "same", "content": {"text": "once"}})
        return r.status_code, r.get_json()["id"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(16)))
    assert sorted(status for status, _ in answers) == [200] * 15 + [201]
    assert len({mid for _, mid in answers}) == 1
    with services.session() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == cid, Message.client_id == "same")) == 1
    assert len([e for e in events.named("message:receive") if e.data["client_id"] == "same"]) == 1
