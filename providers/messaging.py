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


def _download(url: str, limit: int, headers: dict[str, str] | None = None) -> bytes:
    """A platform's file, at most `limit` bytes (more is refused without reading it all)."""
    try:
        with requests.get(url, headers=headers, timeout=TIMEOUT, stream=True) as res:
            if res.status_code >= 300:
                raise PlatformError(f"the platform answered {res.status_code} for the file",
                                    _retryable(res.status_code))
            data = bytearray()
            for chunk in res.iter_content(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise PlatformError(f"the file is over {limit} bytes", False)
            return bytes(data)
    except requests.RequestException as exc:
        raise PlatformError(f"the file could not be fetched: {exc}", True) from None


def line_content(settings: Settings, message_id: str, limit: int) -> bytes:
    """What a LINE user sent as an image or a file, from LINE's content API
    (`SB_LINE_DATA_API_BASE`; line-bot-sdk's blob client cannot be pointed anywhere else)."""
    url = f"{settings.chat.line_data_api_base.rstrip('/')}/v2/bot/message/{message_id}/content"
    return _download(url, limit, {"Authorization": f"Bearer {settings.chat.line_channel_access_token}"})


def url_content(url: str, limit: int) -> bytes:
    """A file the platform hosts (Messenger's attachment URLs, LINE's external content)."""
    if not url.startswith(("https://", "http://")):
        raise PlatformError("the file's address is not http(s)", False)
    return _download(url, limit)


def sender_for(platform: str, settings: Settings) -> LinePush | MessengerSend:
    return LinePush(settings) if platform == "line" else MessengerSend(settings)
