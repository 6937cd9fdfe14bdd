"""FCM (Firebase Cloud Messaging) with firebase-admin: the `push` channel for app devices.

Credentials are a service-account JSON (`SB_FCM_CREDENTIALS_FILE`); its
`token_uri` is where firebase-admin gets its OAuth token. `SB_FCM_BASE_URL`
replaces Google's endpoint (a local stand-in in tests, a proxy in production).
The template's priority and ttl fill the android, apns and webpush blocks.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Collection
from datetime import timedelta

import firebase_admin
from firebase_admin import credentials, exceptions, messaging
from sqlalchemy.orm import Session

from providers.base import Content, Gone, Permanent, Target, Transient, device_targets, forget_device
from settings import Settings

ANDROID_PRIORITY = {"low": "normal", "normal": "normal", "high": "high"}
APNS_PRIORITY = {"low": "1", "normal": "5", "high": "10"}
WEBPUSH_URGENCY = {"low": "low", "normal": "normal", "high": "high"}
_apps: dict[tuple[str, str], firebase_admin.App] = {}
_lock = threading.Lock()


def _app(settings: Settings) -> firebase_admin.App:
    """One firebase App per credentials file and endpoint, made once per process."""
    key = (settings.notifications.fcm_credentials_file, settings.notifications.fcm_base_url)
    with _lock:
        app = _apps.get(key)
        if app is None:
            cred = credentials.Certificate(settings.notifications.fcm_credentials_file)
            app = firebase_admin.initialize_app(
                cred, {"httpTimeout": settings.notifications.provider_timeout_seconds},
                name=f"switchboard-fcm-{len(_apps)}")
            if settings.notifications.fcm_base_url:
                service = messaging._get_messaging_service(app)
                service._fcm_url = (f"{settings.notifications.fcm_base_url.rstrip('/')}/v1/projects/"
                                    f"{app.project_id}/messages:send")
            _apps[key] = app
        return app


class FcmProvider:
    channel = "push"
    name = "fcm"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def configured(self) -> bool:
        return bool(self.settings.notifications.fcm_credentials_file)

    def targets(self, session: Session, user_ids: Collection[str]) -> dict[str, list[Target]]:
        return device_targets(session, user_ids, "fcm") if self.configured() else {}

    def message(self, target: Target, content: Content) -> messaging.Message:
        ttl = max(0, content.ttl)
        data = {k: v if isinstance(v, str) else str(v) for k, v in content.data.items()}
        data.update(notification_id=content.notification_id, type=content.type)
        if content.action_url:
            data["action_url"] = content.action_url
        link = content.action_url if (content.action_url or "").startswith("https://") else None
        return messaging.Message(
            token=target.address,
            notification=messaging.Notification(title=content.title, body=content.body),
            data=data,
            android=messaging.AndroidConfig(
                priority=ANDROID_PRIORITY.get(content.priority, "normal"), ttl=timedelta(seconds=ttl),
                collapse_key=content.type,
                notification=messaging.AndroidNotification(
                    sound=content.sound, icon=content.icon_url, click_action=content.action_url,
                    notification_count=content.badge_count)),
            apns=messaging.APNSConfig(
                headers={"apns-priority": APNS_PRIORITY.get(content.priority, "5"),
                         "apns-expiration": str(int(time.time()) + ttl)},
                payload=messaging.APNSPayload(aps=messaging.Aps(
                    badge=content.badge_count, sound=content.sound))),
            webpush=messaging.WebpushConfig(
                headers={"Urgency": WEBPUSH_URGENCY.get(content.priority, "normal"), "TTL": str(ttl)},
                notification=messaging.WebpushNotification(
                    title=content.title, body=content.body, icon=content.icon_url),
                fcm_options=messaging.WebpushFCMOptions(link=link) if link else None),
        )

    def send(self, target: Target, content: Content) -> str | None:
        if not self.configured():
            raise Permanent("fcm: no credentials configured")
        try:
            return messaging.send(self.message(target, content), app=_app(self.settings))
        except (messaging.UnregisteredError, messaging.SenderIdMismatchError) as exc:
            raise Gone(f"fcm: {exc.__class__.__name__}: {exc}", 404) from None
        except (exceptions.UnavailableError, exceptions.InternalError, exceptions.DeadlineExceededError,
                exceptions.ResourceExhaustedError, exceptions.UnknownError) as exc:
            raise Transient(f"fcm: {exc.__class__.__name__}: {exc}") from None
        except exceptions.FirebaseError as exc:
            raise Permanent(f"fcm: {exc.__class__.__name__}: {exc}") from None
        except ValueError as exc:  # rejected by the SDK before sending
            raise Permanent(f"fcm: {exc}") from None

    def forget(self, session: Session, target: Target) -> None:
        forget_device(session, "fcm", target.address)
