"""Upload handlers that hash the audio while Django receives it: submit never reads the file again to hash it.

The same two handlers Django uses by default (in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, else a temporary
file), each feeding what it keeps to SHA-256; the finished upload carries `sha256` (hex).
"""

from __future__ import annotations

import hashlib

from django.core.files.uploadhandler import MemoryFileUploadHandler, TemporaryFileUploadHandler


class _Hashing:
    def new_file(self, *args, **kwargs):
        self._sha256 = hashlib.sha256()
        return super().new_file(*args, **kwargs)

    def _hash(self, raw_data: bytes, kept: bool) -> None:
        if kept:
            self._sha256.update(raw_data)

    def file_complete(self, file_size):
        uploaded = super().file_complete(file_size)
        if uploaded is not None:
            uploaded.sha256 = self._sha256.hexdigest()
        return uploaded


class HashingMemoryFileUploadHandler(_Hashing, MemoryFileUploadHandler):
    def receive_data_chunk(self, raw_data, start):
        self._hash(raw_data, self.activated)
        return super().receive_data_chunk(raw_data, start)


class HashingTemporaryFileUploadHandler(_Hashing, TemporaryFileUploadHandler):
    def receive_data_chunk(self, raw_data, start):
        self._hash(raw_data, True)
        return super().receive_data_chunk(raw_data, start)
