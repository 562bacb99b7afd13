"""A local S3-compatible endpoint for tests: moto's standalone server (real S3 HTTP protocol) on a free port.

One server per test session, in a process of its own (worker and web subprocesses reach it like a real bucket);
every test that uses it gets a bucket of its own, so nothing is shared between tests.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ACCESS_KEY = "tingxie-test"
SECRET_KEY = "tingxie-test-secret"
REGION = "us-east-1"
_buckets = itertools.count(1)


class S3Server:
    def __init__(self, log_dir: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        log_dir.mkdir(exist_ok=True)
        self.log_path = log_dir / f"s3-{os.getpid()}-{time.time_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                requests.get(self.endpoint, timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.1)

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def new_bucket(self) -> str:
        name = f"tingxie-test-{os.getpid()}-{next(_buckets)}"
        self.client().create_bucket(Bucket=name)
        return name

    def storage_url(self, bucket: str) -> str:
        """STORAGE_URL for a process that should store audio in `bucket` (portal.env.storage_from_url)."""
        return f"s3://{ACCESS_KEY}:{SECRET_KEY}@{bucket}?endpoint_url={self.endpoint}&region={REGION}"

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
