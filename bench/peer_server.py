"""Run funasr's own runtime WebSocket server (the streaming bench's peer), unmodified, on today's libraries.

    .venv/bin/python bench/peer_server.py [--end-silence-ms MS] PATH/funasr_wss_server.py [its own arguments]

The script is not part of Tingxie (FunASR's runtime/python/websocket/funasr_wss_server.py, commit 0d6e6a2fb,
fetched by whoever runs the bench). It is run as it is, with runpy; this adapter only changes its surroundings:
- it was written for websockets' legacy API (a handler taking `(websocket, path)`): `websockets.serve` is pointed
  at `websockets.legacy.server.serve`, which websockets 17 still ships;
- funasr's AutoModel gets `disable_update=True` (no version check over the network; the bench runs offline);
- `--end-silence-ms MS` passes `max_end_silence_time=MS` to every call of its FSMN-VAD, as a client of funasr's
  VAD would; without it funasr 1.4.16 applies its dynamic schedule (2 s of end silence below 10 s of speech).
"""

from __future__ import annotations

import runpy
import sys
import warnings


def _patch_websockets() -> None:
    import websockets
    import websockets.legacy.server

    websockets.serve = websockets.legacy.server.serve


def _patch_funasr(end_silence_ms: int | None) -> None:
    import funasr

    real = funasr.AutoModel

    def auto_model(**kwargs):
        kwargs.setdefault("disable_update", True)
        model = real(**kwargs)
        if end_silence_ms is not None and type(model.model).__name__ == "FsmnVADStreaming":
            generate = model.generate

            def vad_generate(*args, **call_kwargs):
                return generate(*args, **{"max_end_silence_time": end_silence_ms, **call_kwargs})

            model.generate = vad_generate
        return model

    funasr.AutoModel = auto_model


def main(argv: list[str]) -> None:
    end_silence_ms = None
    if argv[:1] == ["--end-silence-ms"]:
        end_silence_ms, argv = int(argv[1]), argv[2:]
    if not argv:
        raise SystemExit(__doc__)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the legacy API and get_event_loop()
    _patch_websockets()
    _patch_funasr(end_silence_ms)
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
