"""FunASR engine: the only module that imports funasr and torch, always lazily, inside methods."""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import re
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from portal import metrics
from transcription.constants import LANGUAGES, SAMPLE_RATE
from transcription.engines.base import (
    BaseEngine,
    BatchLimits,
    EngineResult,
    EngineUnavailable,
    ProgressCallback,
    Segment,
    TranscribeOptions,
    Window,
    join_texts,
)
from transcription.engines.funasr_details import (
    SCORE_MODELS,
    SCORES_KWARG,
    WORD_MODELS,
    WORDS_KWARG,
    Recognized,
    ScoreCapture,
    piece_segments,
    recognized,
)
from transcription.engines.funasr_runtime import import_funasr, looks_like_path, malloc_trim, model_ref, resolve_device
from transcription.engines.funasr_text import plan_batches, plan_pieces
from transcription.engines.load_errors import load_failure_message

logger = logging.getLogger(__name__)

_NANO_LANGUAGE = {"zh": "中文", "en": "英文", "yue": "粤语", "ja": "日文", "ko": "韩文"}

MAX_SEGMENT_S = 30.0  # longest piece given to the model in one go (VAD regions longer than this are split)
MERGE_GAP_S = 0.5  # VAD regions closer than this are recognized together (keeps sentences whole)
LONG_JOB_S = 600.0  # after this much audio on CUDA, hand cached blocks back to the driver


class FunASREngine(BaseEngine):
    """SenseVoice, Paraformer, SeACo-Paraformer or Fun-ASR-Nano through funasr's AutoModel.

    OPTIONS: model (hub id or local dir), device (auto, cpu, cuda:N, mps), threads (torch threads
    in this process), batch_size_s (seconds of speech recognized per batch, between progress calls),
    batching (per device kind: the limits of cross-recording batches, see BatchLimits).
    """

    def __init__(
        self,
        *,
        model: str,
        device: str = "auto",
        threads: int = 1,
        batch_size_s: float = 60,
        hub: str = "ms",
        batching: dict | None = None,
        **extra,
    ) -> None:
        super().__init__(model=model, device=device, threads=threads, batch_size_s=batch_size_s, hub=hub, **extra)
        self.batching = dict(batching or {})  # device kind (cpu, cuda, mps) -> BatchLimits fields
        self.name = str(model)
        self.model_ref = model_ref(
            model, missing="Set ASR_MODEL to an existing local model directory or to a hub id such as "
            "'iic/SenseVoiceSmall'.",
        )  # fmt: skip
        self.requested_device = str(device)
        self.threads = max(1, int(threads))
        self.batch_size_s = float(batch_size_s)
        self.hub = hub
        self.device = ""
        self.model_class = ""
        self._model = None
        self._lock = threading.Lock()

    # --- model ------------------------------------------------------------------------------------------
    def _configured_class(self) -> str:
        """The architecture name, from the loaded model or (before loading) a local config.yaml or the hub id."""
        if self.model_class:
            return self.model_class
        config = Path(self.model_ref) / "config.yaml"
        if config.is_file():
            match = re.search(r"^model:\s*(\S+)", config.read_text(errors="replace"), re.MULTILINE)
            if match:
                return match.group(1)
        ref = self.model_ref.lower()
        if "seaco" in ref or ref in {"paraformer-zh", "iic/paraformer-zh"}:
            return "SeacoParaformer"
        if "nano" in ref:
            return "FunASRNano"
        if "sensevoice" in ref:
            return "SenseVoiceSmall"
        return "Paraformer" if "paraformer" in ref else ""

    @property
    def hotword_mode(self) -> str:
        """'string' (SeACo `hotword`), 'list' (Fun-ASR-Nano `hotwords`) or '' when the model has none."""
        kind = self._configured_class()
        if kind == "SeacoParaformer":
            return "string"
        if kind == "FunASRNano":
            return "list"
        return ""

    @property
    def supports_hotwords(self) -> bool:
        return bool(self.hotword_mode)

    @property
    def supports_word_timestamps(self) -> bool:
        return self._configured_class() in WORD_MODELS

    LOAD_RETRY_AFTER_S = 60.0

    def load(self):
        """Load the model once per process (first transcribe calls this; django-q2 workers are forked first).

        A failed load raises EngineUnavailable, and for LOAD_RETRY_AFTER_S later calls fail at once
        instead of each job waiting on another slow hub attempt.
        """
        if self._model is not None:
            return self._model
        with self._lock:
            failed = getattr(self, "_load_failure", None)
            if self._model is None and failed and time.monotonic() - failed[0] < self.LOAD_RETRY_AFTER_S:
                raise EngineUnavailable(failed[1])
            if self._model is None:
                said = io.StringIO()
                try:
                    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
                        self._load_locked()
                except Exception as exc:
                    message = load_failure_message(
                        model=self.model_ref, local=looks_like_path(self.model_ref), device=self.requested_device,
                        exc=exc, output=said.getvalue(),
                    )  # fmt: skip
                    logger.error("%s", message)  # the one line an operator needs (funasr's output is dropped)
                    self._load_failure = (time.monotonic(), message)
                    raise EngineUnavailable(message) from exc
        return self._model

    def _load_locked(self) -> None:
        """The actual load; called with the lock held."""
        started = time.perf_counter()
        auto_model = import_funasr()
        import torch

        torch.set_num_threads(self.threads)
        self.device = resolve_device(self.requested_device)
        root, hub_log = logging.getLogger(), logging.getLogger("modelscope_hub")
        level, hub_level = root.level, hub_log.level
        root.setLevel(max(level, logging.WARNING))  # funasr logs every checkpoint detail at INFO on root
        hub_log.setLevel(logging.ERROR)  # one warning per download retry; a failure is reported once, by load()
        try:
            self._model = auto_model(
                model=self.model_ref,
                device=self.device,
                ncpu=self.threads,
                hub=self.hub,
                disable_update=True,
                disable_pbar=True,
                frontend_conf={"dither": 0.0},
            )
        finally:
            root.setLevel(level)
            hub_log.setLevel(hub_level)
        self.model_class = type(self._model.model).__name__
        if self.device == "cpu":
            gc.collect()
            malloc_trim()
        seconds = time.perf_counter() - started
        metrics.model_loaded(model=self.name, seconds=seconds)
        logger.info("Loaded ASR model %s (%s) on %s in %.1f s", self.name, self.model_class, self.device, seconds)

    def close(self) -> None:
        with self._lock:
            if self._model is None:
                return
            self._model = None
            gc.collect()
            if self.device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()
            else:
                malloc_trim()

    # --- recognition ------------------------------------------------------------------------------------
    def _generate_kwargs(self, options: TranscribeOptions) -> tuple[dict, tuple[str, ...]]:
        """funasr generate() arguments for these options, and warnings for what the model cannot honour."""
        kwargs: dict = {}
        warnings: tuple[str, ...] = ()
        language = options.language if options.language in LANGUAGES else "auto"
        kind = self._configured_class()
        if kind == "FunASRNano":
            kwargs["itn"] = options.itn
            if language != "auto":
                kwargs["language"] = _NANO_LANGUAGE[language]
        else:
            kwargs["language"] = language
            kwargs["use_itn"] = options.itn
        if options.hotwords:
            mode = self.hotword_mode
            if mode == "string":
                kwargs["hotword"] = " ".join(options.hotwords)
            elif mode == "list":
                kwargs["hotwords"] = list(options.hotwords)
            else:
                warnings = (f"The model {kind or self.name} does not support hotwords; they were not used.",)
        if options.word_timestamps:
            if kind in SCORE_MODELS:  # SenseVoice: aligned from the CTC output by our hooks (funasr_align.py)
                kwargs[WORDS_KWARG] = True
            elif kind in WORD_MODELS:
                kwargs["output_timestamp"] = True
            else:
                warnings += (f"The model {kind or self.name} does not give word timestamps; segments have no words.",)
        if options.scores and kind in SCORE_MODELS:
            kwargs[SCORES_KWARG] = True
        return kwargs, warnings

    def _recognize(self, pieces: list[np.ndarray], kwargs: dict, offset: int) -> list[Recognized]:
        keys = [f"piece{offset + i}" for i in range(len(pieces))]  # explicit keys avoid funasr's random ones
        return self._generate(pieces, keys, kwargs, batch_size=1)

    def _generate(
        self, pieces: list[np.ndarray], keys: list[str], kwargs: dict, *, batch_size: int
    ) -> list[Recognized]:
        """One generate() call; scores and words are read by hooks during it when SCORES_KWARG / WORDS_KWARG ask
        (SenseVoiceSmall)."""
        model = self.load()
        kwargs = dict(kwargs)
        scores, words = kwargs.pop(SCORES_KWARG, False), kwargs.pop(WORDS_KWARG, False)
        capture = None
        if scores or words:
            capture = ScoreCapture(model.model, model.kwargs.get("tokenizer"), scores=scores, words=words)
        with self._lock:  # AutoModel mutates its kwargs during generate: one call at a time
            with capture.active() if capture is not None else contextlib.nullcontext():
                results = model.generate(input=pieces, key=keys, batch_size=batch_size, **kwargs)
        # Results come back in input order; funasr repeats the first key for every item, so keys cannot be used.
        if len(results) != len(pieces):
            raise RuntimeError(f"funasr returned {len(results)} results for {len(pieces)} audio pieces.")
        return recognized(results, self.model_class, capture)

    def transcribe_regions(
        self,
        audio: np.ndarray,
        *,
        regions: list[tuple[int, int]] | None,
        options: TranscribeOptions,
        offset_s: float = 0.0,
        progress: ProgressCallback | None = None,
    ) -> EngineResult:
        """Recognize the speech regions the pipeline found (regions=None: all of it); times shifted by offset_s."""
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        total = samples.shape[0]
        clipped = [(max(0, int(s)), min(total, int(e))) for s, e in regions] if regions is not None else None
        clipped = [(s, e) for s, e in clipped if e > s] if clipped is not None else None
        offset = int(round(offset_s * SAMPLE_RATE))
        return self._run(samples, clipped, options, progress, offset=offset)

    def _plan(self, total: int, found: list[tuple[int, int]] | None) -> list[tuple[int, int]]:
        """Pieces to recognize: the speech regions merged and split to MAX_SEGMENT_S (None: the whole audio)."""
        max_len = int(MAX_SEGMENT_S * SAMPLE_RATE)
        if total == 0:
            return []
        if found is not None:
            return plan_pieces(found, merge_gap=int(MERGE_GAP_S * SAMPLE_RATE), max_len=max_len)
        return plan_pieces([(0, total)], merge_gap=0, max_len=min(max_len, int(self.batch_size_s * SAMPLE_RATE)))

    def _run(
        self,
        samples: np.ndarray,
        found: list[tuple[int, int]] | None,
        options: TranscribeOptions,
        progress: ProgressCallback | None,
        *,
        offset: int,
    ) -> EngineResult:
        """Recognize the planned pieces in batches and build the result; `offset` (samples) places the audio
        on the original timeline."""
        audio_s = samples.shape[0] / SAMPLE_RATE
        regions = self._plan(samples.shape[0], found)
        speech = sum(e - s for s, e in regions)
        kwargs, warnings = self._generate_kwargs(options)
        batches = plan_batches(regions, budget=max(1, int(self.batch_size_s * SAMPLE_RATE)))
        if batches:
            self.load()  # not counted in asr_ms
        segments: list[Segment] = []
        done = 0
        asr_started = time.perf_counter()
        for batch in batches:
            found = self._recognize([samples[s:e] for s, e in batch], kwargs, offset=len(segments))
            segments.extend(piece_segments(batch, found, offset))
            done += sum(e - s for s, e in batch)
            if progress is not None:
                progress(min(1.0, done / speech) if speech else 1.0)
        asr_ms = int((time.perf_counter() - asr_started) * 1000)
        if progress is not None and not batches:
            progress(1.0)
        if self.device.startswith("cuda"):
            self._cuda_after_job(long_job=audio_s >= LONG_JOB_S)
        return self.result(segments, options, audio_s=audio_s, pieces=regions, asr_ms=asr_ms, warnings=warnings)

    def result(self, segments, options, *, audio_s: float, pieces, asr_ms: int, warnings) -> EngineResult:
        """The EngineResult of one window: its segments, the language they vote for, the speech recognized."""
        weights = Counter()
        for seg in segments:
            if seg.language:
                weights[seg.language] += seg.end - seg.start
        language = weights.most_common(1)[0][0] if weights else ("" if options.language == "auto" else options.language)
        return EngineResult(
            text=join_texts([seg.text for seg in segments]),
            segments=tuple(segments),
            language=language,
            audio_s=round(audio_s, 3),
            speech_s=round(sum(e - s for s, e in pieces) / SAMPLE_RATE, 3),
            vad_ms=0,
            asr_ms=asr_ms,
            model=self.name,
            extra={"device": self.device, "model_class": self.model_class, "pieces": len(pieces)},
            warnings=warnings,
        )

    # --- cross-recording batches (the worker's scheduler) --------------------------------------------------
    def batch_limits(self) -> BatchLimits:
        device = self.device or self.requested_device  # loaded: the resolved device ("auto" before that)
        kind = device.split(":", 1)[0]
        limits = dict(self.batching.get(kind) or self.batching.get("cpu") or {})
        if self._configured_class() == "FunASRNano":
            limits["max_items"] = 1  # its LLM decode takes one prompt per call
        return BatchLimits(**limits)

    def transcribe_windows(self, windows: list[Window]) -> list[EngineResult | Exception]:
        from transcription.engines.funasr_batch import transcribe_windows

        return transcribe_windows(self, windows)

    def generate_batch(self, pieces: list[np.ndarray], kwargs: dict) -> list[Recognized]:
        """One funasr call over `pieces` (padded into one forward): raw results in input order."""
        return self._generate(pieces, [f"b{i}" for i in range(len(pieces))], kwargs, batch_size=len(pieces))

    def _cuda_after_job(self, *, long_job: bool) -> None:
        import torch

        if long_job:
            torch.cuda.empty_cache()
        device = torch.device(self.device)
        metrics.gpu_memory(device=self.device, allocated=torch.cuda.memory_allocated(device),
                           reserved=torch.cuda.memory_reserved(device))  # fmt: skip
