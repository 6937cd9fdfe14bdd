"""Chat attachments: what may be uploaded, who may read it, and where the bytes live.

The bytes go to a storage every process shares, never a web host's disk: the
database by default (`DatabaseStorage`, a row committed with the attachment's own),
or an S3-compatible store (`providers/s3_storage.py`); the wiring chooses by
`SB_ATTACHMENT_STORAGE`. Each attachment remembers which one holds it, so a shop
that moves to S3 still serves what it stored before.

A message names its attachments by id; the server writes their description into
the message (`resolve`), so a client can neither point at another conversation's
file nor describe a file as something it is not.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import filetype
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.chat.access import access_conversation
from actions.chat.errors import ChatError
from actions.errors import DomainError
from models import Attachment, AttachmentBlob, new_id

MAX_PER_MESSAGE = 10


class StorageError(DomainError):
    """A refused upload (type, size) or bytes that cannot be found."""


class Storage(Protocol):
    name: str

    def save(self, session: Session, key: str, data: bytes) -> None: ...

    def load(self, session: Session, key: str) -> bytes: ...


class DatabaseStorage:
    """The bytes in `attachment_blobs`, written in the upload's own transaction."""
    name = "database"

    def save(self, session: Session, key: str, data: bytes) -> None:
        session.add(AttachmentBlob(attachment_id=key, data=data))

    def load(self, session: Session, key: str) -> bytes:
        blob = session.get(AttachmentBlob, key)
        if blob is None:
            raise StorageError(404, "attachment_not_found", "the attachment's bytes are gone")
        return blob.data


@dataclass(frozen=True)
class Storages:
    """Where new files go (`current`) and every storage an older one may be in."""
    current: Storage
    others: Mapping[str, Storage] = field(default_factory=dict)

    def named(self, name: str) -> Storage:
        if name == self.current.name:
            return self.current
        if name in self.others:
            return self.others[name]
        raise StorageError(503, "storage_unavailable", f"attachments in {name!r} storage are not reachable here")


# ---- what may be uploaded ---------------------------------------------------------

def allowed_types(settings: Any) -> set[str]:
    return {t.strip() for t in settings.chat.attachment_types.split(",") if t.strip()}


def content_type_of(data: bytes) -> str | None:
    """The type the bytes are, by their signature: what a browser would take them for.
    The type a client declares is not trusted: a page renamed .png is still a page."""
    found = filetype.guess_mime(data)
    if found is not None:
        return found
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain" if "\x00" not in text else None


def clean_filename(name: str) -> str:
    """The name as the uploader gave it (Thai included), without a path or control characters."""
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    return name.strip().strip(".")[:255] or "file"


def _ascii_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-120:].strip("._")
    return cleaned or "file"


def disposition(att: dict[str, Any]) -> str:
    """`Content-Disposition`: images shown in place, other files saved; the name in UTF-8
    (RFC 6266) with an ASCII fallback for old clients."""
    kind = "inline" if att["content_type"].startswith("image/") else "attachment"
    return f"{kind}; filename=\"{_ascii_name(att['filename'])}\"; filename*=UTF-8''{quote(att['filename'], safe='')}"


def attachment_json(att: Attachment) -> dict[str, Any]:
    return {"id": att.id, "filename": att.filename, "content_type": att.content_type,
            "size": att.size, "url": f"/api/v1/attachments/{att.id}"}


def upload_attachment(session: Session, me: Any, conversation_id: str, filename: str,
                      data: bytes, storages: Storages, settings: Any) -> dict[str, Any]:
    """Store a file for `conversation_id` (a participant who may write there); its JSON."""
    conv = access_conversation(session, me, conversation_id, write=True)
    if not data:
        raise StorageError(400, "empty_file", "the file is empty")
    if len(data) > settings.chat.attachment_max_bytes:
        raise StorageError(413, "too_large",
                           f"attachments are limited to {settings.chat.attachment_max_bytes} bytes")
    allowed = allowed_types(settings)
    content_type = content_type_of(data)
    if content_type not in allowed:
        raise StorageError(415, "unsupported_type",
                           f"the file is {content_type or 'of no type known here'}; "
                           f"accepted: {', '.join(sorted(allowed))}")
    name = clean_filename(filename)
    kind = filetype.get_type(mime=content_type)
    if "." not in name and kind is not None:   # LINE's images come without a name
        name = f"{name}.{kind.extension}"
    att = Attachment(id=new_id(), conversation_id=conv.id, uploader_id=me.id,
                     filename=name, content_type=content_type, size=len(data),
                     storage=storages.current.name)
    att.storage_key = att.id
    session.add(att)
    session.flush()   # the row first: the database's blob refers to it
    storages.current.save(session, att.storage_key, data)
    return attachment_json(att)


def find_attachment(session: Session, me: Any, attachment_id: str) -> Attachment:
    """An attachment a participant of its conversation (or an admin) may read."""
    att = session.get(Attachment, attachment_id)
    if att is None:
        raise ChatError(404, "attachment_not_found", f"no attachment {attachment_id!r}")
    access_conversation(session, me, att.conversation_id)
    return att


def read_attachment(session: Session, me: Any, attachment_id: str,
                    storages: Storages) -> tuple[dict[str, Any], bytes]:
    """An attachment and its bytes, for whom `find_attachment` lets read it."""
    att = find_attachment(session, me, attachment_id)
    return attachment_json(att), storages.named(att.storage).load(session, att.storage_key)


# ---- attachments in a message -------------------------------------------------------

def attachment_ids(items: list[Any]) -> list[str]:
    """The ids a message's `content.attachments` names ({"id": ...} each); 400 otherwise."""
    if len(items) > MAX_PER_MESSAGE:
        raise ChatError(400, "too_many_attachments", f"a message carries at most {MAX_PER_MESSAGE} attachments")
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    if not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
        raise ChatError(400, "invalid_attachment",
                        "each of content.attachments is {\"id\": ...}, an id from the upload")
    if len(set(ids)) != len(ids):
        raise ChatError(400, "invalid_attachment", "an attachment is named twice")
    return ids  # type: ignore[return-value]


def resolve(session: Session, conversation_id: str, message_type: str,
            items: list[Any]) -> list[dict[str, Any]]:
    """The description of each attachment named, uploaded to this conversation; 400 for
    any other id (another conversation's file is not found here)."""
    ids = attachment_ids(items)
    if not ids:
        return []
    found = {a.id: a for a in session.scalars(select(Attachment).where(
        Attachment.id.in_(ids), Attachment.conversation_id == conversation_id))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ChatError(400, "invalid_attachment", f"no attachment {missing[0]!r} in this conversation")
    if message_type == "image" and not all(found[i].content_type.startswith("image/") for i in ids):
        raise ChatError(400, "invalid_attachment", "an image message carries images only")
    return [attachment_json(found[i]) for i in ids]
