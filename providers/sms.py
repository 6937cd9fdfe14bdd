"""The `sms` channel over a provider's HTTP API: Twilio's REST shape by default.

POST {base}/2010-04-01/Accounts/{sid}/Messages.json, form-encoded To, From,
Body, basic auth sid:token; 201 with {"sid": ...}; errors {"code", "message",
"status"}. `SB_SMS_BASE_URL` points it at any provider with that shape.
"""
from __future__ import annotations

from collections.abc import Collection

import requests
from sqlalchemy.orm import Session

from providers.base import Content, Permanent, Target, Transient, contacts_of
from settings import Settings

# Twilio error codes that mean "this number will never work".
INVALID_NUMBER_CODES = {21211, 21214, 21610, 21612, 21614}


class SmsProvider:
    channel = "sms"
    name = "twilio"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = requests.Session()

    def configured(self) -> bool:
        s = self.settings.notifications
        return bool(s.sms_base_url and s.sms_account_sid and s.sms_auth_token and s.sms_from)

    def targets(self, session: Session, user_ids: Collection[str]) -> dict[str, list[Target]]:
        return {uid: [Target(phone, phone)] for uid, (_, phone) in contacts_of(session, user_ids).items()
                if phone}

    def send(self, target: Target, content: Content) -> str | None:
        s = self.settings.notifications
        url = f"{s.sms_base_url.rstrip('/')}/2010-04-01/Accounts/{s.sms_account_sid}/Messages.json"
        body = content.title if not content.body else f"{content.title}: {content.body}"
        if content.action_url:
            body += f" {content.action_url}"
        form = {"To": target.address, "From": s.sms_from, "Body": body[:1600],
                "ValidityPeriod": str(max(1, min(content.ttl, 36000)))}
        try:
            resp = self.http.post(url, data=form, auth=(s.sms_account_sid, s.sms_auth_token),
                                  timeout=s.provider_timeout_seconds)
        except requests.RequestException as exc:
            raise Transient(f"sms: {exc.__class__.__name__}: {exc}") from None
        if resp.status_code in (200, 201):
            return resp.json().get("sid")
        try:
            err = resp.json()
        except ValueError:
            err = {"message": resp.text[:200]}
        message = f"sms {resp.status_code}: {err.get('code', '')} {err.get('message', '')}".strip()
        if resp.status_code == 429 or resp.status_code >= 500:
            raise Transient(message, resp.status_code)
        raise Permanent(message, resp.status_code)

    def forget(self, session: Session, target: Target) -> None:
        pass
