"""The web tier's CPU per request, by kind, one client at a time (no contention): what each request costs the
uvicorn process, from /proc, over `--n` requests of each kind, `--rounds` times (the minimum is the figure to
compare; this box is noisy). Redis broker and a fresh PostgreSQL database, as deployed.

Kinds: a job (submit, then the long-poll GET that waits for it: the Tingxie API's two requests per job), a submit
alone, a long-poll GET of a finished job, GET /api/v1/balance, and /healthz.

    .venv/bin/python bench/web_cpu.py [--n 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import requests
from cpu import session_cpu
from harness import FreshPostgres, Stack, fixture_speech, variant

CLIP_S = 1.7


def web_cpu_s(stack: Stack) -> float:
    return sum(cpu for _parent, cpu in session_cpu(stack.web_pid).values())


class Client:
    """One client, sequential requests; `submitted` numbers the clips (every upload differs: no cached result)."""

    def __init__(self, stack: Stack):
        self.stack, self.session, self.headers = stack, requests.Session(), stack.headers
        self.samples, self.submitted, self.finished = fixture_speech(CLIP_S), 0, []

    def submit(self) -> str:
        job, _ms = self.stack.submit(self.session, variant(self.samples, self.submitted))
        self.submitted += 1
        return job["id"]

    def job(self) -> None:
        job_id = self.submit()
        self.stack.wait(self.session, job_id)
        self.finished.append(job_id)

    def get(self, path: str, **params) -> None:
        self.session.get(f"{self.stack.url}{path}", params=params, headers=self.headers)


def measure(stack: Stack, n: int, rounds: int) -> dict[str, list[float]]:
    client = Client(stack)
    kinds = {
        "job (submit + waited GET)": client.job,
        "submit": client.submit,
        "GET of a finished job": lambda: client.get(f"/api/v1/transcriptions/{client.finished.pop()}", wait=30),
        "GET /api/v1/balance": lambda: client.get("/api/v1/balance"),
        "GET /healthz": lambda: client.get("/healthz"),
    }
    out: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, request in kinds.items():
            before = web_cpu_s(stack)
            for _ in range(n):
                request()
            out.setdefault(name, []).append((web_cpu_s(stack) - before) * 1000 / n)
            if name == "submit":
                time.sleep(2)  # their jobs run now, not during the requests measured next
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=150, help="requests of each kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    database = FreshPostgres()
    stack = Stack(broker="redis", database_url=database.url)
    try:
        stack.warm_up(variant(fixture_speech(CLIP_S), 99_999))
        results = measure(stack, args.n, args.rounds)
    finally:
        stack.stop()
        database.drop()
    print(f"== web CPU per request (ms), one client, {args.n} of each per round, {args.rounds} rounds ==")
    for name, values in results.items():
        print(f"{name:28s} " + "  ".join(f"{v:6.2f}" for v in values) + f"   min {min(values):6.2f}")


if __name__ == "__main__":
    main()
