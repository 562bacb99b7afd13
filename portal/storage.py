"""Where stored files live: local disk (the embedded default) or an S3-compatible bucket (AWS, MinIO, Ceph, OSS).

Everything reaches stored audio through Django's storage API (`storage.open/save/delete/listdir`), so a second
machine needs no shared disk. `StreamingS3Storage` differs from django-storages' S3Storage in one thing: a file
opened for reading streams from the bucket with ranged GETs (seekable, a small read buffer) instead of being
downloaded whole into memory first, so a worker decodes a 4-hour upload in bounded memory.
"""

from __future__ import annotations

from botocore.exceptions import ClientError
from django.core.files.base import File
from smart_open.s3 import open as s3_open
from storages.backends.s3 import S3Storage
from storages.utils import clean_name


def _reader(storage, key: str, buffer_size: int):
    """A seekable binary stream over one object (smart_open: ranged GETs, reopened at the new offset on seek)."""
    try:
        return s3_open(storage.bucket_name, key, "rb", buffer_size=buffer_size, client=storage.connection.meta.client)
    except OSError as exc:
        cause = exc.__cause__
        code = cause.response.get("Error", {}).get("Code") if isinstance(cause, ClientError) else None
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(f"No such object in the bucket: {key}") from exc
        raise


class StreamingS3Storage(S3Storage):
    """django-storages' S3Storage whose files opened for reading stream (bounded memory, seekable)."""

    read_buffer_size = 1024 * 1024

    def _open(self, name, mode="rb"):
        if any(flag in mode for flag in "wa+"):
            return super()._open(name, mode)
        key = self._normalize_name(clean_name(name))
        return File(_reader(self, key, self.read_buffer_size), name=name)
