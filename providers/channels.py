"""Which providers deliver a notification channel (push has three: web push, FCM, APNs)."""
from __future__ import annotations

from providers.apns import ApnsProvider
from providers.base import Provider
from providers.email import EmailProvider
from providers.fcm import FcmProvider
from providers.sms import SmsProvider
from providers.webpush import WebPushProvider
from providers.websocket import WebSocketProvider
from settings import Settings

_CHANNELS = {
    "push": (WebPushProvider, FcmProvider, ApnsProvider),
    "email": (EmailProvider,),
    "sms": (SmsProvider,),
    "websocket": (WebSocketProvider,),
}


def providers_for(channel: str, settings: Settings) -> list[Provider]:
    kinds = _CHANNELS.get(channel)
    if kinds is None:
        raise ValueError(f"unknown channel {channel!r}")
    return [kind(settings) for kind in kinds]
