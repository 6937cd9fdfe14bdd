"""Live chat: agents, conversations, messages, receipts, canned responses, attachments."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (JSON, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, LargeBinary,
                        String, Text, UniqueConstraint, false, text)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow
from models.types import BigIntPK, UTCDateTime, one_of

AGENT_STATUSES = ("online", "busy", "offline")
CONVERSATION_STATUSES = ("active", "waiting", "resolved", "archived")
PRIORITIES = ("low", "medium", "high", "urgent")
SENDER_TYPES = ("customer", "agent", "system")
MESSAGE_TYPES = ("text", "image", "file", "system", "quick_reply")
MESSAGE_STATUSES = ("sent", "delivered", "read")
RECEIPT_STATUSES = ("delivered", "read")


class Agent(Base):
    """An agent profile; `user_id` is the `sub` of the agent's token.

    `current_conversations` is the live load: change it only with conditional
    updates (`... WHERE current_conversations < concurrent_limit`), never by
    read-modify-write in Python.
    """

    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint(one_of("status", AGENT_STATUSES), name="status"),
        CheckConstraint("current_conversations >= 0", name="load_not_negative"),
        CheckConstraint("concurrent_limit >= 0", name="limit_not_negative"),
        Index(None, "status"),
    )

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="offline", server_default="offline")
    concurrent_limit: Mapped[int] = mapped_column(Integer, default=3, server_default=text("3"))
    current_conversations: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    response_time_avg: Mapped[float | None] = mapped_column(Float)
    satisfaction_rating: Mapped[float | None] = mapped_column(Float)
    ratings_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    offline_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The status to restore when a dropped connection comes back (set when
    # presence, not the agent, took them offline).
    resume_status: Mapped[str | None] = mapped_column(String(16))
    responses_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint(one_of("status", CONVERSATION_STATUSES), name="status"),
        CheckConstraint(one_of("priority", PRIORITIES), name="priority"),
        CheckConstraint("rating_score IS NULL OR (rating_score BETWEEN 1 AND 5)",
                        name="rating_score"),
        Index("ix_conversations_customer_created", "customer_id", "created_at"),
        Index("ix_conversations_agent_status", "agent_id", "status"),
        Index("ix_conversations_status_waiting", "status", "waiting_since"),
        # Routing reads the latest resolved and the latest created (migration 0004).
        Index("ix_conversations_resolved_at", "resolved_at"),
        Index("ix_conversations_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    priority: Mapped[str] = mapped_column(String(16), default="medium")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # `metadata` is reserved on declarative classes: the attribute is `meta`.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Oldest customer message the assigned agent has not answered yet.
    awaiting_reply_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rating_score: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # A repeated client_id returns the first message (PROTOCOL.md 4).
        UniqueConstraint("conversation_id", "client_id"),
        CheckConstraint(one_of("sender_type", SENDER_TYPES), name="sender_type"),
        CheckConstraint(one_of("message_type", MESSAGE_TYPES), name="message_type"),
        CheckConstraint(one_of("status", MESSAGE_STATUSES), name="status"),
        Index("ix_messages_conversation_created_id", "conversation_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("conversations.id", ondelete="CASCADE"))
    client_id: Mapped[str | None] = mapped_column(String(64))
    sender_id: Mapped[str] = mapped_column(String(64))
    sender_type: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message_type: Mapped[str] = mapped_column(String(16), default="text")
    status: Mapped[str] = mapped_column(String(16), default="sent")
    is_private: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class MessageReceipt(Base):
    """Per-user delivered/read state of a message."""

    __tablename__ = "message_receipts"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id"),
        CheckConstraint(one_of("status", RECEIPT_STATUSES), name="status"),
        Index(None, "user_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CannedResponse(Base):
    __tablename__ = "canned_responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    shortcut: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Attachment(Base):
    __tablename__ = "attachments"
    __table_args__ = (Index(None, "conversation_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("conversations.id", ondelete="CASCADE"))
    uploader_id: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(512))
    # Where the bytes are: "database" (AttachmentBlob) or "s3"; a shop that moves to S3
    # still serves what it stored before.
    storage: Mapped[str] = mapped_column(String(16), default="database", server_default="database")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AttachmentBlob(Base):
    """An attachment's bytes, in the database every process shares (the default storage)."""
    __tablename__ = "attachment_blobs"

    attachment_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("attachments.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
