"""The ASR worker's CPU per job outside the model, in process: N jobs of the 1.7 s clip are submitted through the
API (test client, a fresh test database, the ORM broker), their queued tasks are taken from the broker (the
pusher's work, not measured), and django-q2's own worker loop (django_q.worker.worker) runs them here under
time.process_time(), as an ASR worker process would: the first task claims a batch, the tasks of its batch-mates
find them taken and skip. The model's own CPU is what the 'ASR batch' log lines report; the rest is the worker's
(django-q2's task handling, claim, decode, VAD, heartbeats, finalize, billing, logs, the skipped tasks).

    DJANGO_SETTINGS_MODULE=portal.settings.test DATABASE_URL=postgres://postgres@127.0.0.1:5432/test Q_BROKER=orm \
      .venv/bin/python bench/worker_cpu.py [--jobs 40] [--rounds 3] [--max-jobs 16] [--profile out.prof]

`--raw` also prints the service's speed against the raw model's: the worker's jobs per second (wall, one process,
everything a job costs it) next to funasr's own AutoModel.generate() on the same clip, batched as the service's
median batch, in the same process on the same device. That is issue 13's GPU check (service >= 0.9 of the raw
model's batched speed), prepared for a machine with CUDA (SQLite test database, no server needed):

    ASR_MODEL=var/bench-models/sensevoice_full ASR_DEVICE=cuda Q_BROKER=orm DJANGO_SETTINGS_MODULE=portal.settings.test \
      .venv/bin/python bench/worker_cpu.py --jobs 64 --rounds 2 --raw
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
import statistics
import sys
import time
from multiprocessing import Value
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after the project: bench/streaming.py is not the app
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")

CLIP_S = 1.7
BATCH_CPU = re.compile(r"ASR batch: (\d+) transcriptions.*\(([\d.]+) ms CPU\)")


# --breakdown: CPU inside these calls (inclusive; module attribute, as the callers look them up)
BREAKDOWN = [
    ("transcription.services.lifecycle", "claim_with_row"),
    ("transcription.services.batching", "transcription_claim_ready"),
    ("transcription.services.lifecycle", "transcription_finalize"),
    ("transcription.services.finalize", "hold_settle_with_row"),
    ("transcription.services.finalize", "hold_settle"),
    ("transcription.services.lifecycle", "transcription_lock"),
    ("transcription.services.lifecycle", "transcription_heartbeat"),
    ("transcription.pipeline", "speech_regions"),
    ("transcription.pipeline", "decode_stream"),
    ("transcription.instruments", "job_claimed"),
    ("transcription.instruments", "job_finished"),
    ("transcription.services.lifecycle", "recognition_steps"),
    ("transcription.services.finalize", "transcription_lock_state"),
    ("transcription.services.finalize", "transcription_write"),
    ("transcription.services.batching", "segment_dicts"),
    ("transcription.services.lifecycle", "transcription_runnable"),
    ("transcription.services.batching", "transcription_leases_renew"),
]


def _timed(totals: dict, name: str, fn):
    def timed(*args, **kwargs):
        started = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.process_time() - started

    return timed


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


def _queued_tasks(n: int) -> list[bytes]:
    """The round's tasks as the pusher hands them to a worker process (pickled through a multiprocessing queue)."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker("asr")
    out = []
    while len(out) < n:
        for ack_id, payload in broker.dequeue() or []:
            task = SignedPackage.loads(payload)
            task["cluster"], task["ack_id"] = "asr", ack_id
            out.append(pickle.dumps(task))
            broker.acknowledge(ack_id)
    return out


class _Tasks:
    """A worker process's task queue: unpickles each task (as multiprocessing.Queue.get does), then STOP."""

    def __init__(self, pickled: list[bytes]) -> None:
        self.pickled = list(pickled)

    def get(self):
        return pickle.loads(self.pickled.pop(0)) if self.pickled else "STOP"


class _Results:
    """A worker process's result queue: pickles each finished task (as multiprocessing.Queue.put does)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.outcomes: list[str] = []

    def put(self, task: dict) -> None:
        pickle.dumps(task)
        assert task["success"], task["result"]
        self.ids.append(task["args"][0])
        self.outcomes.append(task["result"])


def _raw_clips_per_s(engine, samples, batch: int, rounds: int = 5) -> float:
    """funasr's own batched generate() on the clip's samples: clips per second (wall), after a warm-up call."""
    model = engine.load()  # the funasr AutoModel the engine loaded: same weights, device and threads
    pieces = [samples] * batch
    model.generate(input=pieces, batch_size=batch, language="auto", use_itn=True, disable_pbar=True)
    started = time.perf_counter()
    for _ in range(rounds):
        model.generate(input=pieces, batch_size=batch, language="auto", use_itn=True, disable_pbar=True)
    return rounds * batch / (time.perf_counter() - started)


def _report_device_memory(engine) -> None:
    """On CUDA: what the model holds, then what is left once the engine is closed (it must give it back)."""
    if not str(engine.device).startswith("cuda"):
        return
    import torch

    device = torch.device(engine.device)
    print(f"{torch.cuda.get_device_name(device)}: {torch.cuda.memory_allocated(device) / 2**20:.0f} MiB allocated "
          "with the model loaded", end="")  # fmt: skip
    engine.close()
    print(f", {torch.cuda.memory_allocated(device) / 2**20:.0f} MiB after close "
          f"({torch.cuda.memory_reserved(device) / 2**20:.0f} MiB reserved)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-jobs", type=int, default=16, help="jobs per batch (1: batching off)")
    parser.add_argument("--profile", help="write a cProfile (CPU time) of the measured calls here")
    parser.add_argument("--queries", action="store_true", help="print the SQL of the last round")
    parser.add_argument("--breakdown", action="store_true", help="CPU per job inside the main worker calls")
    parser.add_argument("--raw", action="store_true", help="the service's jobs/s against the raw model's clips/s")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django_q.worker import worker as q_worker
    from rest_framework.test import APIClient

    from portal.management.commands.qcluster import _keep_connections

    setup_test_environment()
    _keep_connections()  # as `manage.py qcluster` does: a worker keeps its connection from task to task
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from harness import fixture_speech, variant

        from billing.services import tokens_grant
        from tenants.services import api_key_create
        from tests.factories import TenantFactory
        from transcription.engines import get_engine
        from transcription.models import Transcription

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
        totals: dict = {}
        if args.breakdown:
            import importlib

            for module_name, attr in BREAKDOWN:
                module = importlib.import_module(module_name)
                setattr(module, attr, _timed(totals, attr, getattr(module, attr)))
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the database
        serial = 0
        per_job, walls, sizes = [], [], []
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
            totals.clear()
            tasks = _queued_tasks(len(ids))
            if profiler is not None and round_no:
                profiler.enable()
            results = _Results()
            with CaptureQueriesContext(connection) as queries:
                started, wall = time.process_time(), time.perf_counter()
                q_worker(_Tasks(tasks), results, Value("f", -1), timeout=600)
                cpu_ms, wall_ms = (time.process_time() - started) * 1000, (time.perf_counter() - wall) * 1000
            outcomes = results.outcomes
            if profiler is not None:
                profiler.disable()
            assert sorted(results.ids) == sorted(ids) and set(outcomes) <= {"succeeded", "skipped"}, outcomes
            assert Transcription.objects.filter(pk__in=ids, status="succeeded").count() == len(ids)
            if not round_no:
                continue
            worker = (cpu_ms - handler.ms) / len(ids)
            per_job.append(worker)
            walls.append(wall_ms / len(ids))
            sizes += handler.batches
            print(
                f"round {round_no}: {len(ids)} jobs in {len(handler.batches)} batches; CPU {cpu_ms / len(ids):.2f} ms/job,"
                f" model {handler.ms / len(ids):.2f}, worker outside the model {worker:.2f} ms/job"
                f" (wall {wall_ms / len(ids):.2f} ms/job, {len(queries) / len(ids):.1f} queries/job)",
                flush=True,
            )
            if totals:
                print(
                    "   ", ", ".join(f"{k} {v * 1000 / len(ids):.2f}" for k, v in totals.items()), "(ms/job, inclusive)"
                )
            if args.queries and round_no == args.rounds:
                for query in queries.captured_queries:
                    print("   ", query["sql"][:160])
        print(f"worker CPU outside the model: median {statistics.median(per_job):.2f} ms/job over {args.rounds} rounds")
        # The queued task of a transcription a batch already took: the last round's tasks again (all final now)
        skipped = []
        for _ in range(3):
            results = _Results()
            started = time.process_time()
            q_worker(_Tasks(tasks), results, Value("f", -1), timeout=600)
            skipped.append((time.process_time() - started) * 1000 / len(tasks))
            assert set(results.outcomes) == {"skipped"}, results.outcomes
        print(f"a skipped task (django-q2's handling and the check): median {statistics.median(skipped):.3f} ms CPU")
        if profiler is not None:
            profiler.dump_stats(args.profile)
        if args.raw:
            batch = max(1, round(statistics.median(sizes or [1])))
            raw = _raw_clips_per_s(engine, clip, batch)
            service = 1000 / statistics.median(walls)
            print(f"device {engine.device}: service {service:.1f} jobs/s (one worker process, wall) vs the raw model "
                  f"{raw:.1f} clips/s (AutoModel.generate, batch {batch}): ratio {service / raw:.2f} "
                  "(target on a GPU: >= 0.90)")  # fmt: skip
            _report_device_memory(engine)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
