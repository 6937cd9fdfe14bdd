"""Attachments' bytes in an S3-compatible store (AWS S3, MinIO, Cloudflare R2, ...), through
boto3: `SB_ATTACHMENT_STORAGE=s3` with `SB_ATTACHMENT_S3_BUCKET` (README: attachments)."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from actions.chat.attachments import StorageError


class S3Storage:
    name = "s3"

    def __init__(self, settings: Any) -> None:
        # boto3 costs a process 26 MB and a quarter of a second to import: only a shop that
        # keeps attachments in S3 pays for it, when this store is made.
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
        self._errors = (BotoCoreError, ClientError)
        self._client_error = ClientError
        chat = settings.chat
        if not chat.attachment_s3_bucket:
            raise RuntimeError("SB_ATTACHMENT_STORAGE=s3 needs SB_ATTACHMENT_S3_BUCKET")
        self.bucket, self.prefix = chat.attachment_s3_bucket, chat.attachment_s3_prefix
        # Bounded, so that a store that does not answer fails an upload instead of holding it.
        self.client = boto3.client(
            "s3", endpoint_url=chat.attachment_s3_endpoint_url or None,
            region_name=chat.attachment_s3_region or None,
            config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"}))

    def save(self, session: Session, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        except self._errors as exc:
            raise StorageError(503, "storage_unavailable", f"the attachment store refused the file: {exc}") from None

    def load(self, session: Session, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except self._errors as exc:
            code = exc.response.get("Error", {}).get("Code") if isinstance(exc, self._client_error) else None
            if code in ("NoSuchKey", "404"):
                raise StorageError(404, "attachment_not_found", "the attachment's bytes are gone") from None
            raise StorageError(503, "storage_unavailable", f"the attachment store failed: {exc}") from None
