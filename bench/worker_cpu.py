"""The ASR worker's CPU per job outside the model, in process: N jobs of the 1.7 s clip are submitted through the
API (test client, a fresh test database), then `transcription_run` is called for each id as the queued tasks
would be (the first claims a batch, the others of that batch skip), under time.process_time(). The model's own
CPU is what the 'ASR batch' log lines report; the rest is the worker's (claim, decode, VAD, heartbeats,
finalize, billing, logs, the skipped tasks).

    DJANGO_SETTINGS_MODULE=portal.settings.test DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
      .venv/bin/python bench/worker_cpu.py [--jobs 40] [--rounds 3] [--max-jobs 16] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after the project: bench/streaming.py is not the app
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")

CLIP_S = 1.7
BATCH_CPU = re.compile(r"ASR batch: (\d+) transcriptions.*\(([\d.]+) ms CPU\)")


class _ModelCpu(logging.Handler):
    """Sums the model's CPU from the batch log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.ms = 0.0
        self.batches: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = BATCH_CPU.search(record.getMessage())
        if m:
            self.batches.append(int(m.group(1)))
            self.ms += float(m.group(2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-jobs", type=int, default=16, help="jobs per batch (1: batching off)")
    parser.add_argument("--profile", help="write a cProfile of the measured calls here")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from harness import fixture_speech, variant

        from billing.services import tokens_grant
        from tenants.services import api_key_create
        from tests.factories import TenantFactory
        from transcription import services
        from transcription.engines import get_engine

        engine = get_engine()
        engine.load()
        kind = engine.device.split(":")[0]
        engine.batching = {kind: {**engine.batching.get(kind, {}), "max_jobs": args.max_jobs}}
        tenant = TenantFactory(slug="bench", name="Bench")
        tokens_grant(tenant=tenant, tokens=10_000_000, memo="bench")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant, name='bench')[1]}")
        clip = fixture_speech(CLIP_S)
        handler = _ModelCpu()
        logging.getLogger("transcription.batches").addHandler(handler)
        logging.getLogger("transcription.batches").setLevel(logging.INFO)
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        serial = 0
        per_job = []
        for round_no in range(args.rounds + 1):  # round 0 warms up (imports, first VAD session, caches)
            ids = []
            for _ in range(args.jobs):
                serial += 1
                response = client.post(
                    "/api/v1/transcriptions",
                    {"file": SimpleUploadedFile(f"{serial}.wav", variant(clip, serial))},
                    format="multipart",
                )
                assert response.status_code == 202, response.content
                ids.append(response.json()["id"])
            handler.ms, handler.batches = 0.0, []
            if profiler is not None and round_no:
                profiler.enable()
            started, wall = time.process_time(), time.perf_counter()
            outcomes = [services.transcription_run(transcription_id=tid) for tid in ids]
            cpu_ms, wall_ms = (time.process_time() - started) * 1000, (time.perf_counter() - wall) * 1000
            if profiler is not None:
                profiler.disable()
            assert outcomes.count("succeeded") == len(handler.batches) or sum(handler.batches) == len(ids), outcomes
            if not round_no:
                continue
            worker = (cpu_ms - handler.ms) / len(ids)
            per_job.append(worker)
            print(
                f"round {round_no}: {len(ids)} jobs in {len(handler.batches)} batches; CPU {cpu_ms / len(ids):.2f} ms/job,"
                f" model {handler.ms / len(ids):.2f}, worker outside the model {worker:.2f} ms/job"
                f" (wall {wall_ms / len(ids):.2f} ms/job)",
                flush=True,
            )
        print(f"worker CPU outside the model: median {statistics.median(per_job):.2f} ms/job over {args.rounds} rounds")
        if profiler is not None:
            profiler.dump_stats(args.profile)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
