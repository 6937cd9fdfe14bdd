"""Chat attachments: size and type limits, bytes behind a small storage interface.

`LocalStorage` keeps files under a directory (the default); another backend
(S3, GCS) needs only `save` and `load`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from actions.chat.access import access_conversation
from actions.chat.errors import ChatError
from actions.errors import DomainError
from models import Attachment, new_id
from settings import ROOT


class StorageError(DomainError):
    """A refused upload (type, size, key)."""


class Storage(Protocol):
    def save(self, key: str, data: bytes) -> None: ...

    def load(self, key: str) -> bytes: ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not re.fullmatch(r"[a-f0-9]{32}", key):
            raise StorageError(400, "invalid_key", "bad storage key")
        return self.root / key[:2] / key

    def save(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)

    def load(self, key: str) -> bytes:
        return self._path(key).read_bytes()


def storage_for(settings: Any) -> Storage:
    return LocalStorage(Path(settings.chat.attachment_dir) if settings.chat.attachment_dir
                        else ROOT / "var" / "attachments")


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-120:].strip("._")
    return cleaned or "file"


def attachment_json(att: Attachment) -> dict[str, Any]:
    return {"id": att.id, "filename": att.filename, "content_type": att.content_type,
            "size": att.size, "url": f"/api/v1/attachments/{att.id}", "safe_name": _safe_name(att.filename)}


def upload_attachment(session: Session, me: Any, conversation_id: str, filename: str,
                      content_type: str, data: bytes, storage: Storage, settings: Any) -> dict[str, Any]:
    conv = access_conversation(session, me, conversation_id, write=True)
    allowed = {t.strip() for t in settings.chat.attachment_types.split(",") if t.strip()}
    if content_type not in allowed:
        raise StorageError(415, "unsupported_type",
                           f"{content_type} is not accepted; use one of {', '.join(sorted(allowed))}")
    if len(data) > settings.chat.attachment_max_bytes:
        raise StorageError(413, "too_large",
                           f"attachments are limited to {settings.chat.attachment_max_bytes} bytes")
    if not data:
        raise StorageError(400, "empty_file", "the file is empty")
    att = Attachment(id=new_id(), conversation_id=conv.id, uploader_id=me.id,
                     filename=filename[:255], content_type=content_type, size=len(data),
                     storage_key=new_id())
    storage.save(att.storage_key, data)
    session.add(att)
    session.flush()
    return attachment_json(att)


def read_attachment(session: Session, me: Any, attachment_id: str,
                    storage: Storage) -> tuple[dict[str, Any], bytes]:
    att = session.get(Attachment, attachment_id)
    if att is None:
        raise ChatError(404, "attachment_not_found", f"no attachment {attachment_id!r}")
    access_conversation(session, me, att.conversation_id)
    return attachment_json(att), storage.load(att.storage_key)
