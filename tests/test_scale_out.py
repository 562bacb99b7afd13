"""Scale-out on one box (issue 12.2): a web server and two ASR worker clusters as separate process trees that
share nothing but PostgreSQL, the Redis broker and the S3 endpoint; each has an empty MEDIA_ROOT and temp dir
of its own, as separate machines would. 100 jobs submitted over HTTP: every one succeeds, each task ran
exactly once on exactly one cluster, both clusters did work, and the ledger equals the job rows
(`manage.py ledger_verify`). The broker is Redis database TINGXIE_SCALE_REDIS_URL (default db 12): the test
refuses one that already holds an asr queue and deletes only its own keys afterwards.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import numpy as np
import pytest
import requests
from django.core.management import call_command

from billing.models import LedgerEntry
from tests.audio_samples import silence, speak_fixture, write_wav
from tests.conftest import WorkerProcess, assert_ledger_consistent, require_postgresql, wait_for
from tests.transcription.test_async_wait import Uvicorn
from transcription.models import Transcription

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

JOBS = 100
ASR_QUEUE_KEY = "django_q:asr:q"
# Each claim logs one line: a job taken by its own task or by a batch that took it along (cross-job batching;
# that job's own task then finds it claimed and skips, or is still queued when the test stops).
CLAIM_LINE = re.compile(r"Job ([0-9a-f-]{36}) claimed \(attempt 1\)")


def _files(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_two_clusters_share_only_the_database_broker_and_bucket(tenant, api_key, grant, s3_storage, tmp_path):
    require_postgresql()  # fails, not skips, when CI asks for PostgreSQL (TINGXIE_REQUIRE_POSTGRES=1)
    import redis

    redis_url = os.environ.get("TINGXIE_SCALE_REDIS_URL", "redis://127.0.0.1:6379/12")
    r = redis.from_url(redis_url)
    assert r.llen(ASR_QUEUE_KEY) == 0, f"{ASR_QUEUE_KEY} in {redis_url} is not empty: not this test's own database"
    prefix = f"scale-{os.getpid()}-{time.time_ns()}"
    shared = {"Q_BROKER": "redis", "REDIS_URL": redis_url, "CACHE_KEY_PREFIX": prefix, "STORAGE_URL": s3_storage.url}
    machines = {}
    for name in ("web", "a", "b"):
        media, temp = tmp_path / name / "media", tmp_path / name / "tmp"
        media.mkdir(parents=True)
        temp.mkdir()
        machines[name] = {
            **shared, "MEDIA_ROOT": str(media), "FILE_UPLOAD_TEMP_DIR": str(temp / "uploads"), "TMPDIR": str(temp),
        }  # fmt: skip
    grant(tenant, 10_000_000)
    unit = np.concatenate([speak_fixture("zh_park"), silence(0.3)])
    clips = [
        write_wav(tmp_path / f"c{i}.wav", np.concatenate([silence(0.01 * (i + 1)), unit])).read_bytes()
        for i in range(JOBS)
    ]  # distinct audio: no cache hits
    web = Uvicorn(tmp_path / "web" / "media", extra_env=machines["web"])
    clusters = {}
    try:
        clusters = {name: WorkerProcess(extra_env={**machines[name], "ASR_WORKERS": "1"}) for name in ("a", "b")}
        for worker in clusters.values():
            wait_for(lambda w=worker: "taking tasks" in w.log(), timeout=600, interval=0.5, message="a warm cluster")
        headers = {"Authorization": f"Bearer {api_key[1]}"}

        def submit(clip: bytes) -> str:
            with requests.Session() as session:
                response = session.post(f"{web.url}/api/v1/transcriptions", headers=headers,
                                        files={"file": ("c.wav", clip, "audio/wav")}, timeout=60)  # fmt: skip
            assert response.status_code == 202, response.text[:300]
            return response.json()["id"]

        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(submit, clips))
        submitted = time.monotonic() - t0
        wait_for(lambda: Transcription.objects.filter(pk__in=ids, status__in=["succeeded", "failed"]).count() == JOBS,
                 timeout=300, interval=0.5, message="every job to finish")  # fmt: skip
        drained = time.monotonic() - t0
    finally:
        for worker in clusters.values():
            worker.stop()
        web.stop()
        r.delete(ASR_QUEUE_KEY)
        for key in r.scan_iter(match=f"{prefix}:*", count=1000):
            r.delete(key)

    rows = Transcription.objects.filter(pk__in=ids)
    assert Counter(rows.values_list("status", flat=True)) == {"succeeded": JOBS}
    assert set(rows.values_list("attempt", flat=True)) == {1}
    ran = {name: Counter(CLAIM_LINE.findall(worker.log())) for name, worker in clusters.items()}
    per_job = ran["a"] + ran["b"]
    assert set(per_job) == set(ids) and set(per_job.values()) == {1}, "each job claimed exactly once, by one cluster"
    assert ran["a"] and ran["b"], {name: len(c) for name, c in ran.items()}
    debited = sum(-e.held_delta for e in LedgerEntry.objects.filter(transcription_id__in=ids, kind="debit"))
    assert debited == sum(rows.values_list("billed_tokens", flat=True)) > 0
    assert_ledger_consistent(tenant)
    out = StringIO()
    call_command("ledger_verify", stdout=out)
    assert "Ledger OK" in out.getvalue()
    assert len(s3_storage.keys()) == JOBS  # the audio is in the bucket ...
    for name in ("web", "a", "b"):  # ... and on no machine's own disk
        assert _files(tmp_path / name / "media") == [], name
    print(
        f"scale-out: {JOBS} jobs submitted in {submitted:.1f}s, drained in {drained:.1f}s; "
        f"cluster a ran {len(ran['a'])}, cluster b ran {len(ran['b'])}"
    )
