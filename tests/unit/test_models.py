"""Every mapped table takes a row through the ORM, and the constraints that keep the
domain honest (idempotent messages, deliveries and reservations; held <= on_hand) hold."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

import models as m
from models.migrate import upgrade


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('models') / 'sb.db'}"
    upgrade(url)
    engine = m.make_engine(url)
    yield m.make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def session(factory):
    s = factory()
    yield s
    s.rollback()
    s.close()


def test_every_table_takes_a_row(factory):
    now = m.utcnow()
    with m.session_scope(factory) as s:
        s.add(m.User(id="u-cust", role="customer", name="Cust", email="c@example.com"))
        s.add(m.User(id="u-agent", role="agent", name="Agent"))
        s.flush()
        s.add(m.Customer(user_id="u-cust", is_vip=True, lifetime_value=Decimal("1234.50"),
                         language="th"))
        s.add(m.Agent(user_id="u-agent", name="Agent", skills=["th", "billing"],
                      status="online", concurrent_limit=3))
        conv = m.Conversation(customer_id="u-cust", priority="high", tags=["billing"],
                              meta={"source": "web", "language": "th"}, waiting_since=now)
        s.add(conv)
        s.flush()
        msg = m.Message(conversation_id=conv.id, client_id="c1", sender_id="u-cust",
                        sender_type="customer", content={"text": "hello"})
        s.add(msg)
        s.flush()
        s.add(m.MessageReceipt(message_id=msg.id, user_id="u-agent", status="read"))
        s.add(m.CannedResponse(shortcut="/hi", text="Hello!", created_by="u-agent"))
        s.add(m.Attachment(conversation_id=conv.id, uploader_id="u-cust", filename="a.png",
                           content_type="image/png", size=10, storage_key="k/a.png"))
        s.add(m.NotificationTemplate(type="chat_message", title_template="{{ x }}",
                                     body_template="b", priority="high", ttl=60))
        note = m.Notification(user_id="u-cust", type="chat_message", data={"x": 1},
                              title="t", body="b")
        s.add(note)
        s.flush()
        s.add(m.NotificationDelivery(notification_id=note.id, channel="websocket"))
        s.add(m.NotificationPreference(user_id="u-cust", channels={"sms": {"enabled": False}}))
        s.add(m.WebPushSubscription(user_id="u-cust", endpoint="https://push.example/abc",
                                    p256dh="key", auth="auth"))
        s.add(m.DeviceToken(user_id="u-cust", token="fcm-token", platform="android"))
        order = m.Order(id="o-1", customer_id="u-cust", status="shipped", carrier="simulated",
                        tracking_number="T1", next_poll_at=now)
        s.add(order)
        s.flush()
        s.add(m.OrderStatusHistory(order_id="o-1", previous_status="pending", status="shipped",
                                   location={"latitude": 1.0, "longitude": 2.0}, source="api"))
        s.add(m.Product(id="p-1", name="Widget"))
        s.flush()
        s.add(m.StockLevel(product_id="p-1", on_hand=10))
        s.add(m.Reservation(product_id="p-1", quantity=2, owner_id="u-cust",
                            idempotency_key="k1", expires_at=now + timedelta(minutes=15)))
        s.add(m.StockChange(product_id="p-1", change_type="restock", delta=10,
                            previous_quantity=0, current_quantity=10))
        s.add(m.AnalyticsEvent(name="conversation.created", subject_type="conversation",
                               subject_id=conv.id, data={}))

    with m.session_scope(factory) as s:
        for cls in (m.User, m.Customer, m.Agent, m.Conversation, m.Message, m.MessageReceipt,
                    m.CannedResponse, m.Attachment, m.NotificationTemplate, m.Notification,
                    m.NotificationDelivery, m.NotificationPreference, m.WebPushSubscription,
                    m.DeviceToken, m.Order, m.OrderStatusHistory, m.Product, m.StockLevel,
                    m.Reservation, m.StockChange, m.AnalyticsEvent):
            assert s.scalars(select(cls)).first() is not None, cls.__tablename__

        conv = s.scalars(select(m.Conversation)).one()
        assert conv.meta == {"source": "web", "language": "th"}
        assert conv.status == "waiting" and conv.tags == ["billing"]
        # Times come back aware and in UTC, on SQLite too.
        assert conv.created_at.tzinfo is not None
        assert conv.waiting_since == now
        stock = s.scalars(select(m.StockLevel)).one()
        assert (stock.variant_id, stock.location, stock.held) == ("", "default", 0)
        sub = s.scalars(select(m.WebPushSubscription)).one()
        assert sub.endpoint_hash == m.endpoint_hash("https://push.example/abc")
        delivery = s.scalars(select(m.NotificationDelivery)).one()
        assert (delivery.target, delivery.status, delivery.attempts) == ("", "queued", 0)
        assert s.get(m.Customer, "u-cust").lifetime_value == Decimal("1234.50")
        assert [h.status for h in s.get(m.Order, "o-1").history] == ["shipped"]


def test_aware_times_are_stored_in_utc(session):
    bangkok = timezone(timedelta(hours=7))
    at = datetime(2026, 1, 1, 12, 0, tzinfo=bangkok)
    session.add(m.Order(id="o-tz", customer_id="c", next_poll_at=at))
    session.flush()
    found = session.scalars(
        select(m.Order).where(m.Order.next_poll_at <= datetime(2026, 1, 1, 5, 0,
                                                               tzinfo=timezone.utc))).all()
    assert [o.id for o in found] == ["o-tz"]
    session.expire_all()
    assert session.get(m.Order, "o-tz").next_poll_at == at


def test_message_client_id_is_unique_per_conversation(session):
    conv = m.Conversation(customer_id="c")
    other = m.Conversation(customer_id="c")
    session.add_all([conv, other])
    session.flush()
    for cid in (conv.id, other.id):  # the same client_id in another conversation is fine
        session.add(m.Message(conversation_id=cid, client_id="dup", sender_id="c",
                              sender_type="customer", content={"text": "x"}))
    # NULL client_ids never collide
    for _ in range(2):
        session.add(m.Message(conversation_id=conv.id, sender_id="c", sender_type="customer",
                              content={"text": "x"}))
    session.flush()
    session.add(m.Message(conversation_id=conv.id, client_id="dup", sender_id="c",
                          sender_type="customer", content={"text": "again"}))
    with pytest.raises(IntegrityError):
        session.flush()


def test_delivery_is_unique_per_channel_and_target(session):
    note = m.Notification(user_id="u", type="t", title="t", body="b")
    session.add(note)
    session.flush()
    session.add_all([
        m.NotificationDelivery(notification_id=note.id, channel="push", target="a"),
        m.NotificationDelivery(notification_id=note.id, channel="push", target="b"),
        m.NotificationDelivery(notification_id=note.id, channel="email", target="a"),
    ])
    session.flush()
    session.add(m.NotificationDelivery(notification_id=note.id, channel="push", target="a"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_reservation_idempotency_key_is_unique_per_owner(session):
    exp = m.utcnow() + timedelta(minutes=15)
    session.add_all([
        m.Reservation(product_id="p", quantity=1, owner_id="a", idempotency_key="k", expires_at=exp),
        m.Reservation(product_id="p", quantity=1, owner_id="b", idempotency_key="k", expires_at=exp),
        m.Reservation(product_id="p", quantity=1, owner_id="a", expires_at=exp),
        m.Reservation(product_id="p", quantity=1, owner_id="a", expires_at=exp),
    ])
    session.flush()
    session.add(m.Reservation(product_id="p", quantity=1, owner_id="a", idempotency_key="k",
                              expires_at=exp))
    with pytest.raises(IntegrityError):
        session.flush()


def test_reservation_quantity_must_be_positive(session):
    session.add(m.Reservation(product_id="p", quantity=0, owner_id="a",
                              expires_at=m.utcnow()))
    with pytest.raises(IntegrityError):
        session.flush()


def _stock(session, on_hand: int) -> m.StockLevel:
    session.add(m.Product(id="p-check"))
    level = m.StockLevel(product_id="p-check", variant_id="v", on_hand=on_hand)
    session.add(level)
    session.flush()
    return level


def test_held_cannot_exceed_on_hand(session):
    level = _stock(session, 3)
    session.execute(update(m.StockLevel).where(m.StockLevel.id == level.id)
                    .values(held=m.StockLevel.held + 3))
    with pytest.raises(IntegrityError):
        session.execute(update(m.StockLevel).where(m.StockLevel.id == level.id)
                        .values(held=m.StockLevel.held + 1))


def test_on_hand_cannot_drop_below_held_or_zero(session):
    level = _stock(session, 3)
    level.held = 2
    session.flush()
    level.on_hand = 1
    with pytest.raises(IntegrityError):
        session.flush()


def test_stock_level_is_unique_per_variant_and_location(session):
    _stock(session, 1)
    session.add(m.StockLevel(product_id="p-check", variant_id="v", on_hand=1))
    with pytest.raises(IntegrityError):
        session.flush()


def test_stock_level_needs_its_product(session):
    session.add(m.StockLevel(product_id="nope", on_hand=1))
    with pytest.raises(IntegrityError):
        session.flush()


def test_enum_like_columns_are_checked(session):
    session.add(m.Conversation(customer_id="c", status="bogus"))
    with pytest.raises(IntegrityError):
        session.flush()
