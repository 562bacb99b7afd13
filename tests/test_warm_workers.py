"""Warm workers (issue 12.6): each ASR worker process loads its model when the cluster starts, not on the first
job; a cluster whose model cannot load says so in one line, exits with status 1 and takes no job."""

from __future__ import annotations

import re
import shutil

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.audio_helpers_core import tone_wav
from tests.conftest import ROOT, WorkerProcess, wait_for
from transcription import services
from transcription.models import Transcription

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MODEL = ROOT / "tests" / "fixtures" / "models" / "sensevoice_trained"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _job(tenant, seconds: float = 1.0) -> Transcription:
    return services.transcription_create(
        tenant=tenant, uploaded_file=SimpleUploadedFile("a.wav", tone_wav(seconds)), options={"vad": False}
    )


def test_each_worker_loads_its_model_when_the_cluster_starts(tenant, grant, media):
    grant(tenant, 10_000)
    worker = WorkerProcess(extra_env={"ASR_WORKERS": "2"})
    try:
        wait_for(lambda: "taking tasks" in worker.log(), timeout=600, interval=0.5, message="the cluster to be warm")
        from portal.management.commands.qcluster import _descendants

        processes = set(_descendants(worker.proc.pid))
        before = worker.log()
        warm = re.findall(r"Worker (\d+) warm: model \S+ on cpu in [\d.]+ s, (\d+) objects frozen", before)
        loads = before.count("Loaded ASR model")
        job = _job(tenant)  # submitted only now: the loads above happened before any job existed
        wait_for(lambda: Transcription.objects.filter(pk=job.pk, status="succeeded").exists(), timeout=60,
                 message="the job")  # fmt: skip
    finally:
        worker.stop()
    assert len(warm) == 2 and len({pid for pid, _frozen in warm}) == 2, before[-3000:]
    assert {int(pid) for pid, _frozen in warm} <= processes  # both are worker processes of this cluster
    assert loads == 2
    # Each froze its model and modules (portal.gc_freeze): a full collection no longer walks them.
    assert all(int(frozen) > 100_000 for _pid, frozen in warm), warm
    assert worker.log().count("Loaded ASR model") == 2, "the first job loaded nothing more"


def _corrupt_model(tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(MODEL, broken)
    (broken / "model.pt").write_bytes((MODEL / "model.pt").read_bytes()[:1000])
    return broken


@pytest.mark.parametrize(
    ("case", "cause"),
    [("missing", "does not exist"), ("corrupt", "could not be loaded")],
)
def test_a_cluster_whose_model_cannot_load_exits_saying_why_and_takes_no_job(
    case, cause, tenant, grant, media, tmp_path
):
    grant(tenant, 10_000)
    job = _job(tenant)  # queued before the cluster starts: it must stay queued, not fail
    model = tmp_path / "no-such-model" if case == "missing" else _corrupt_model(tmp_path)
    worker = WorkerProcess(extra_env={"ASR_MODEL": str(model), "ASR_WORKERS": "2"})
    try:
        code = worker.proc.wait(timeout=600)
    finally:
        worker.stop()
    log = worker.log()
    lines = [line for line in log.splitlines() if "cannot take tasks" in line]
    assert code == 1, log[-3000:]
    assert len(lines) == 1, log[-3000:]
    assert cause in lines[0] and "Set ASR_MODEL" in lines[0] and str(model) in lines[0], lines[0]
    assert "Traceback" not in log, log[-3000:]
    job.refresh_from_db()
    assert (job.status, job.attempt, job.error_code) == ("queued", 0, "")
