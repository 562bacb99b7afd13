"""The streaming engine: a streaming Paraformer for partials and the offline engine for finals, per process.

Like transcription.engines.funasr, the only place that touches funasr/torch for streams (always lazily).
One instance per stream-worker process holds `replicas` copies of both models and a thread pool of
THREADS_PER_REPLICA times that: funasr's AutoModel mutates its kwargs in generate() and is not thread-safe, so
each model call borrows a replica of its own; finals that wait at the same time are decoded in one batch. Per-session state (the Paraformer cache dict) is owned by the caller and passed
in; a cache can go to any replica, but only one call at a time may use it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from transcription.engines.base import EngineResult, EngineUnavailable, TranscribeOptions, Window
from transcription.engines.funasr import FunASREngine
from transcription.engines.funasr_runtime import import_funasr, malloc_trim, model_ref, resolve_device
from transcription.engines.funasr_text import tidy_spaces

logger = logging.getLogger(__name__)


# Finals that end at the same moment (many streams, one worker) are decoded together in one padded forward.
FINALS_BATCH = {"budget_s": 120.0, "max_items": 16}
THREADS_PER_REPLICA = 4  # feeds in flight per replica: the others' finals can join a batch while one runs


@dataclass
class _Final:
    window: Window
    done: threading.Event = field(default_factory=threading.Event)
    result: EngineResult | Exception | None = None


@dataclass
class _Replica:
    offline: FunASREngine
    online: object | None = None  # funasr AutoModel of the streaming Paraformer
    calls: dict = field(default_factory=lambda: {"online": 0, "offline": 0})


class StreamingEngine:
    """OPTIONS: offline_model (ASR_MODEL), online_model (STREAM_ONLINE_MODEL; '' = no partials), device,
    threads (torch threads per replica), replicas (inference threads, each with its own model copies)."""

    def __init__(
        self, *, offline_model: str, online_model: str = "", device: str = "auto", threads: int = 1, replicas: int = 1
    ) -> None:
        self.offline_model = str(offline_model)
        self.online_model = str(online_model or "") and model_ref(
            online_model, missing="Set STREAM_ONLINE_MODEL to a local streaming Paraformer directory, a hub id, "
            "or '' (no partials).",
        )  # fmt: skip
        self.requested_device = str(device)
        self.device = ""
        self.threads = max(1, int(threads))
        self.replicas = max(1, int(replicas))
        self.executor = ThreadPoolExecutor(
            max_workers=self.replicas * THREADS_PER_REPLICA, thread_name_prefix="stream-infer"
        )
        self._free: queue.SimpleQueue[_Replica] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._finals: list[_Final] = []  # waiting for a replica; the first thread to get one decodes them all
        self._finals_lock = threading.Lock()
        self._loaded = False
        self._failure = ""
        self.offline_hotwords = False  # whether the offline model (the finals) uses hotwords; known once loaded

    @property
    def has_online(self) -> bool:
        return bool(self.online_model)

    @property
    def failure(self) -> str:
        return self._failure

    def load(self) -> None:
        """Load every replica once (idempotent); raises EngineUnavailable with a clear message on failure."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            if self._failure:
                raise EngineUnavailable(self._failure)
            try:
                self._load_locked()
            except Exception as exc:
                self._failure = (
                    f"Streaming models could not be loaded (ASR_MODEL={self.offline_model!r}, "
                    f"STREAM_ONLINE_MODEL={self.online_model!r}): {exc}"
                )
                raise EngineUnavailable(self._failure) from exc
            self._loaded = True

    def _load_locked(self) -> None:
        started = time.perf_counter()
        auto_model = import_funasr()
        import torch

        torch.set_num_threads(self.threads)
        self.device = resolve_device(self.requested_device)
        root = logging.getLogger()
        level = root.level
        for _ in range(self.replicas):
            offline = FunASREngine(
                model=self.offline_model,
                device=self.device,
                threads=self.threads,
                batching={"cpu": FINALS_BATCH, "cuda": FINALS_BATCH, "mps": FINALS_BATCH},
            )
            offline.load()
            self.offline_hotwords = offline.supports_hotwords
            online = None
            if self.online_model:
                root.setLevel(max(level, logging.WARNING))  # funasr logs every checkpoint detail at INFO
                try:
                    online = auto_model(
                        model=self.online_model,
                        device=self.device,
                        ncpu=self.threads,
                        disable_update=True,
                        disable_pbar=True,
                        frontend_conf={"dither": 0.0},
                    )
                finally:
                    root.setLevel(level)
            self._free.put(_Replica(offline=offline, online=online))
        if self.device == "cpu":
            malloc_trim()
        logger.info(
            "Loaded %d streaming replica(s) (offline %s, online %s) on %s in %.1f s",
            self.replicas,
            self.offline_model,
            self.online_model or "-",
            self.device,
            time.perf_counter() - started,
        )

    def _borrow(self) -> _Replica:
        self.load()
        return self._free.get()

    def online_step(
        self,
        cache: dict,
        samples: np.ndarray,
        *,
        is_final: bool,
        chunk_size: tuple[int, int, int],
        encoder_look_back: int,
        decoder_look_back: int,
    ) -> str:
        """Feed samples (16 kHz float32, any length) to the streaming Paraformer; the text new in this call."""
        if not self.online_model:
            return ""
        replica = self._borrow()
        try:
            result = replica.online.generate(
                input=np.ascontiguousarray(samples, dtype=np.float32),
                cache=cache,
                is_final=is_final,
                chunk_size=list(chunk_size),
                encoder_chunk_look_back=encoder_look_back,
                decoder_chunk_look_back=decoder_look_back,
                disable_pbar=True,
            )
            replica.calls["online"] += 1
        finally:
            self._free.put(replica)
        return tidy_spaces(str(result[0].get("text", ""))) if result else ""

    def offline_decode(self, samples: np.ndarray, options: TranscribeOptions, *, offset_s: float = 0.0) -> EngineResult:
        """Recognize one closed utterance with the offline model (tags parsed, ITN and hotwords as in batch).

        The utterance waits with the other streams' finals; whichever caller gets a replica first decodes every
        final waiting then in shared calls (each gets the result it would get alone), the others just wait.
        """
        mine = _Final(Window(audio=samples, regions=None, options=options, offset_s=offset_s))
        with self._finals_lock:
            self._finals.append(mine)
        while not mine.done.is_set():
            replica = self._borrow()
            try:
                with self._finals_lock:
                    batch, self._finals = (
                        self._finals[: FINALS_BATCH["max_items"]],
                        self._finals[FINALS_BATCH["max_items"] :],
                    )
                if batch:
                    self._decode(replica, batch)
            finally:
                self._free.put(replica)
            if not batch:
                mine.done.wait()  # another thread took it and is decoding it
        if isinstance(mine.result, Exception):
            raise mine.result
        return mine.result

    @staticmethod
    def _decode(replica: _Replica, batch: list[_Final]) -> None:
        try:
            results = replica.offline.transcribe_windows([final.window for final in batch])
        except Exception as exc:  # noqa: BLE001 - each waiting caller raises it
            results = [exc] * len(batch)
        replica.calls["offline"] += len(batch)
        for final, result in zip(batch, results, strict=True):
            final.result = result
            final.done.set()

    @contextmanager
    def borrowed_offline(self) -> Iterator[FunASREngine]:
        """A replica's offline engine for the caller's thread (e.g. the batch pipeline on a whole utterance)."""
        replica = self._borrow()
        try:
            yield replica.offline
            replica.calls["offline"] += 1
        finally:
            self._free.put(replica)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
