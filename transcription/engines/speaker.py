"""Speaker embeddings (CAM++, ERes2NetV2) through funasr's AutoModel; funasr and torch are imported lazily."""

from __future__ import annotations

import gc
import logging
import threading
import time

import numpy as np

from transcription.constants import SAMPLE_RATE
from transcription.engines.base import BaseSpeakerEngine, EngineUnavailable
from transcription.engines.funasr_runtime import import_funasr, malloc_trim, model_ref, resolve_device

logger = logging.getLogger(__name__)


class FunASRSpeakerEngine(BaseSpeakerEngine):
    """A funasr speaker-verification model (`iic/speech_campplus_sv_zh-cn_16k-common` or a local directory).

    OPTIONS: model (hub id or local dir), device, threads, batch (pieces of equal length per forward), hub.
    """

    def __init__(
        self, *, model: str, device: str = "auto", threads: int = 1, batch: int = 16, hub: str = "ms", **extra
    ) -> None:
        super().__init__(model=model, device=device, threads=threads, batch=batch, hub=hub, **extra)
        self.name = str(model)
        self.model_ref = model_ref(
            model, missing="Set SPEAKER_MODEL to an existing local model directory or to a hub id such as "
            "'iic/speech_campplus_sv_zh-cn_16k-common'.",
        )  # fmt: skip
        self.requested_device = str(device)
        self.threads = max(1, int(threads))
        self.batch = max(1, int(batch))
        self.hub = hub
        self.device = ""
        self._model = None
        self._lock = threading.Lock()

    def load(self):
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                try:
                    self._load_locked()
                except Exception as exc:
                    raise EngineUnavailable(
                        f"Speaker model {self.model_ref!r} could not be loaded on {self.requested_device}: {exc}. "
                        "Set SPEAKER_MODEL to a local model directory or a hub id this worker can reach."
                    ) from exc
        return self._model

    def _load_locked(self) -> None:
        started = time.perf_counter()
        auto_model = import_funasr()
        import torch

        torch.set_num_threads(self.threads)
        self.device = resolve_device(self.requested_device)
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.WARNING))  # funasr logs every checkpoint detail at INFO on root
        try:
            self._model = auto_model(
                model=self.model_ref,
                device=self.device,
                ncpu=self.threads,
                hub=self.hub,
                disable_update=True,
                disable_pbar=True,
            )
        finally:
            root.setLevel(level)
        if self.device == "cpu":
            gc.collect()
            malloc_trim()
        logger.info("Loaded speaker model %s on %s in %.1f s", self.name, self.device, time.perf_counter() - started)

    def close(self) -> None:
        with self._lock:
            self._model = None
            gc.collect()

    def embed(self, pieces: list[np.ndarray]) -> np.ndarray:
        """One L2-normalized embedding per piece (rows in input order); pieces of one length share a forward."""
        if not pieces:
            return np.zeros((0, 0), dtype=np.float32)
        model = self.load()
        out: list[np.ndarray | None] = [None] * len(pieces)
        by_length: dict[int, list[int]] = {}
        for i, piece in enumerate(pieces):
            by_length.setdefault(int(piece.shape[0]), []).append(i)
        with self._lock:  # AutoModel mutates its kwargs during generate: one call at a time
            for length, indices in sorted(by_length.items()):
                if length < SAMPLE_RATE // 10:
                    raise ValueError("Speaker pieces must be at least 0.1 s long.")
                for at in range(0, len(indices), self.batch):
                    chunk = indices[at : at + self.batch]
                    arrays = [np.ascontiguousarray(pieces[i], dtype=np.float32) for i in chunk]
                    results = model.generate(input=arrays, batch_size=len(arrays), key=[f"p{i}" for i in chunk])
                    rows = np.concatenate([r["spk_embedding"].detach().cpu().float().numpy() for r in results])
                    for i, row in zip(chunk, rows, strict=True):
                        out[i] = row
        matrix = np.stack(out).astype(np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.maximum(norms, 1e-12)
