"""The `email` channel over SMTP: a text part and an HTML part from the template."""
from __future__ import annotations

import smtplib
from collections.abc import Collection
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy.orm import Session

from providers.base import Content, Permanent, Target, Transient, contacts_of
from settings import Settings

PRIORITY_HEADERS = {"high": ("1", "urgent"), "normal": ("3", "normal"), "low": ("5", "non-urgent")}


class EmailProvider:
    channel = "email"
    name = "smtp"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def configured(self) -> bool:
        return bool(self.settings.notifications.smtp_host)

    def targets(self, session: Session, user_ids: Collection[str]) -> dict[str, list[Target]]:
        return {uid: [Target(email, email)] for uid, (email, _) in contacts_of(session, user_ids).items()
                if email}

    def build(self, target: Target, content: Content) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.notifications.email_from
        msg["To"] = target.address
        msg["Subject"] = content.title
        msg["Date"] = formatdate(usegmt=True)
        # Stable per notification and address: a receiving system can drop a resend.
        msg["Message-ID"] = make_msgid(idstring=content.notification_id, domain="switchboard.local")
        msg["X-Switchboard-Notification"] = content.notification_id
        msg["X-Priority"], msg["Priority"] = PRIORITY_HEADERS.get(content.priority, PRIORITY_HEADERS["normal"])
        text = content.body + (f"\n\n{content.action_url}" if content.action_url else "")
        msg.set_content(text)
        if content.html:
            msg.add_alternative(content.html, subtype="html")
        return msg

    def send(self, target: Target, content: Content) -> str | None:
        s = self.settings.notifications
        msg = self.build(target, content)
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.provider_timeout_seconds) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            err = f"recipient refused: {code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
            raise (Permanent if code >= 500 else Transient)(err, code) from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            raise (Permanent if exc.smtp_code >= 500 else Transient)(
                f"smtp {exc.smtp_code} {text}", exc.smtp_code) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Transient(f"smtp: {exc.__class__.__name__}: {exc}") from None
        return msg["Message-ID"]

    def forget(self, session: Session, target: Target) -> None:
        pass
