"""Orphans a killed server leaves: stored audio that no transcription references, and temporary upload files."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.utils import timezone

from transcription.models import AUDIO_DIR, Transcription

logger = logging.getLogger(__name__)


ORPHAN_SWEEP_BATCH = 1000  # stored files examined (and temporary files removed) per run at most
_ORPHAN_CURSOR_KEY = "transcription:orphan-sweep:cursor"


def transcription_orphans_sweep() -> dict:
    """Remove what a server killed mid-upload leaves: stored audio that no transcription references and
    Django's temporary upload files, both older than ORPHAN_AUDIO_MAX_AGE_SECONDS.

    The audio is stored before the row commits, so a kill in between leaves a file nothing points at. Stored
    audio is reached through the storage API only (works on S3); a file a row references is never removed. At
    most ORPHAN_SWEEP_BATCH files per run; a cursor (in the cache) carries on from there the next run.
    Temporary upload files are local: those of the host this runs on (the default cluster runs on web hosts).
    """
    cutoff = timezone.now() - timedelta(seconds=settings.ORPHAN_AUDIO_MAX_AGE_SECONDS)
    return {"audio": _orphan_audio_remove(cutoff), "temp_uploads": _temp_uploads_remove(cutoff)}


def _listdir(path: str) -> tuple[list[str], list[str]]:
    try:
        dirs, files = default_storage.listdir(path)
    except FileNotFoundError:  # FileSystemStorage before the first upload
        return [], []
    return sorted(dirs), sorted(files)


def _stored_audio_after(cursor: tuple[str, str] | None):
    """(tenant folder, file) pairs in order, after the cursor."""
    for folder in _listdir(AUDIO_DIR)[0]:
        if cursor is not None and folder < cursor[0]:
            continue
        for name in _listdir(f"{AUDIO_DIR}/{folder}")[1]:
            if cursor is None or (folder, name) > cursor:
                yield folder, name


def _orphan_audio_remove(cutoff) -> int:
    cursor = cache.get(_ORPHAN_CURSOR_KEY)
    batch = []
    for folder, name in _stored_audio_after(tuple(cursor) if cursor else None):
        batch.append((folder, name))
        if len(batch) >= ORPHAN_SWEEP_BATCH:
            break
    # A full batch may have more after it: carry on from its end next run; otherwise start over.
    cache.set(_ORPHAN_CURSOR_KEY, list(batch[-1]) if len(batch) >= ORPHAN_SWEEP_BATCH else None, None)
    names = [f"{AUDIO_DIR}/{folder}/{name}" for folder, name in batch]
    referenced = set()
    for i in range(0, len(names), 500):
        referenced.update(Transcription.objects.filter(audio__in=names[i : i + 500]).values_list("audio", flat=True))
    removed = 0
    for name in names:
        if name in referenced:
            continue
        try:
            # Only old files: the upload being stored right now has no row yet either.
            if default_storage.get_modified_time(name) >= cutoff:
                continue
        except FileNotFoundError:  # deleted meanwhile
            continue
        default_storage.delete(name)
        removed += 1
        logger.info("Removed stored audio no transcription references: %s", name)
    return removed


def _temp_uploads_remove(cutoff) -> int:
    """Django's temporary upload files (`*.upload*`; it deletes them itself unless the process dies)."""
    directory = settings.FILE_UPLOAD_TEMP_DIR
    if not directory:
        return 0
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if removed >= ORPHAN_SWEEP_BATCH:
            break
        if ".upload" not in entry.name or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff.timestamp():
                continue
            os.unlink(entry.path)
        except FileNotFoundError:  # the request that owned it ended meanwhile
            continue
        removed += 1
    if removed:
        logger.info("Removed %d stale temporary upload files from %s", removed, directory)
    return removed
