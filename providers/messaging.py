"""The messaging platforms' send APIs: an agent's answer to a customer who wrote from LINE
or Facebook Messenger (PROTOCOL.md section 4). One `send(user_id, text)` per platform;
a refusal raises PlatformError, saying whether trying again may help."""
from __future__ import annotations

import requests
from linebot.v3.messaging import ApiClient, ApiException, Configuration, MessagingApi, PushMessageRequest, TextMessage

from settings import Settings

TIMEOUT = 10


class PlatformError(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class LinePush:
    """LINE's push API through line-bot-sdk (`SB_LINE_API_BASE`, `SB_LINE_CHANNEL_ACCESS_TOKEN`)."""

    def __init__(self, settings: Settings) -> None:
        self.config = Configuration(host=settings.chat.line_api_base.rstrip("/"),
                                    access_token=settings.chat.line_channel_access_token)

    def send(self, user_id: str, text: str) -> None:
        try:
            with ApiClient(self.config) as client:
                MessagingApi(client).push_message(
                    PushMessageRequest(to=user_id, messages=[TextMessage(text=text[:5000])]))
        except ApiException as exc:
            raise PlatformError(f"LINE answered {exc.status}: {(exc.body or '')[:300]}",
                                _retryable(exc.status or 500)) from None
        except OSError as exc:   # urllib3's connection errors are OSErrors
            raise PlatformError(f"LINE unreachable: {exc}", True) from None


class MessengerSend:
    """Messenger's Send API over HTTP (`SB_MESSENGER_API_BASE`, `SB_MESSENGER_PAGE_TOKEN`)."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.chat.messenger_api_base.rstrip("/") + "/me/messages"
        self.token = settings.chat.messenger_page_token

    def send(self, user_id: str, text: str) -> None:
        try:
            res = requests.post(self.url, params={"access_token": self.token}, timeout=TIMEOUT, json={
                "recipient": {"id": user_id}, "messaging_type": "RESPONSE", "message": {"text": text[:2000]}})
        except requests.RequestException as exc:
            raise PlatformError(f"Messenger unreachable: {exc}", True) from None
        if res.status_code >= 300:
            raise PlatformError(f"Messenger answered {res.status_code}: {res.text[:300]}",
                                _retryable(res.status_code))


def sender_for(platform: str, settings: Settings) -> LinePush | MessengerSend:
    return LinePush(settings) if platform == "line" else MessengerSend(settings)
