"""The chat send on PostgreSQL only: sends racing in threads with one client_id store one message.

The message tests of tests/unit/test_chat.py run on both engines (marked
BOTH_ENGINES there); on PostgreSQL a customer's message is one statement on an
autocommit connection (`actions.chat.messages.send_at_once`), and this race is
what that statement has to settle.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.chat import h

pytestmark = pytest.mark.engines("postgresql")


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
