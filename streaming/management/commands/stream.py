"""Run a stream worker: FunASR's runtime WebSocket protocol on STREAM_HOST:STREAM_PORT (uvicorn, one process)."""

import logging
import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve live recognition (FunASR runtime WebSocket protocol) on STREAM_HOST:STREAM_PORT."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help="Default: STREAM_HOST (127.0.0.1).")
        parser.add_argument("--port", type=int, default=None, help="Default: STREAM_PORT (10095).")

    def handle(self, *args, host=None, port=None, **options):
        import uvicorn

        uvicorn.run(
            "streaming.server:application",
            host=host or settings.STREAM_HOST,
            port=port or settings.STREAM_PORT,
            ws="websockets-sansio",
            # Above our own frame limit, so that a too-large frame gets a clear answer from us first.
            ws_max_size=2 * settings.STREAM_MAX_FRAME_BYTES,
            lifespan="on",
            timeout_graceful_shutdown=3,
            log_level="warning",
        )
        # uvicorn has closed every stream (each settled its session) and run the lifespan shutdown: end now,
        # without the seconds an interpreter holding torch spends tearing down (SIGTERM must end `make run`
        # within 10 s, even on a busy machine).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
