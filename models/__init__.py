"""Switchboard's SQLAlchemy mappings, one module per domain, and the session helpers."""
from models.analytics import AnalyticsEvent
from models.base import Base, new_id, utcnow
from models.chat import Agent, Attachment, AttachmentBlob, CannedResponse, Conversation, Message, MessageReceipt
from models.identity import Customer, User
from models.inventory import Product, Reservation, StockChange, StockLevel
from models.notifications import (
                         DeviceToken,
                         Notification,
                         NotificationDelivery,
                         NotificationPreference,
                         NotificationTemplate,
                         WebPushSubscription,
                         endpoint_hash,
)
from models.orders import Order, OrderStatusHistory
from models.session import after_commit, make_engine, make_session_factory, session_scope
from models.types import UTCDateTime

__all__ = [
    "Base", "new_id", "utcnow", "UTCDateTime",
    "make_engine", "make_session_factory", "session_scope", "after_commit",
    "User", "Customer",
    "Agent", "Conversation", "Message", "MessageReceipt", "CannedResponse", "Attachment", "AttachmentBlob",
    "NotificationTemplate", "Notification", "NotificationPreference", "WebPushSubscription",
    "DeviceToken", "NotificationDelivery", "endpoint_hash",
    "Order", "OrderStatusHistory",
    "Product", "StockLevel", "Reservation", "StockChange",
    "AnalyticsEvent",
]
