"""Who spoke each final of a FunASR-protocol stream: `spk_name` / `spk_score`, as FunASR's Python server sends.

Asked for in the first message with `speaker_ids` (the tenant's enrolled speakers: a list or a comma string) and/or
`diarize: true`. Each final's utterance audio is embedded (the speaker engine, loaded once per process) in the
inference pool. With voiceprints, `spk_name` is the enrolled name whose cosine is at least VOICEPRINT_THRESHOLD
(else "unknown", or the diarization label when `diarize` is also set) and `spk_score` the best cosine. With
`diarize`, running centroids per session: a final joins the most similar speaker at SPEAKER_CLUSTER_THRESHOLD or
more, else starts a new one; names are S1, S2... in order of first appearance, `spk_score` the cosine to the
speaker joined (1.0 for a new one).
"""

from __future__ import annotations

import numpy as np
from django.conf import settings

from transcription.constants import SAMPLE_RATE
from transcription.diarize import UNKNOWN, speech_windows
from transcription.streaming import StreamEvent, _Audio

KEEP_S = 60.0  # audio kept for the next final (finals are at most MAX_SEGMENT_S long)


def stream_speakers_for(message: dict, *, tenant) -> StreamSpeakers | None:
    """The speaker labelling the first message asks for, or None. Raises DomainError (NotFound for an id that is
    not the tenant's) on bad options. Database work: run it off the event loop."""
    from transcription.engines import get_speaker_engine
    from transcription.selectors import speaker_voiceprints
    from transcription.services.speakers import speaker_options_normalize

    asked = {key: message[key] for key in ("diarize", "speaker_ids") if key in message}
    options = speaker_options_normalize(asked, tenant=tenant)
    ids = options.get("speaker_ids") or []
    if not options.get("diarize") and not ids:
        return None
    engine = get_speaker_engine()
    prints = speaker_voiceprints(tenant=tenant, speaker_ids=ids, model=engine.name) if ids else ()
    return StreamSpeakers(engine, diarize=bool(options.get("diarize")), voiceprints=prints)


class StreamSpeakers:
    """One stream's speaker state. Not thread-safe: push() and label() run in order, one at a time."""

    def __init__(self, engine, *, diarize: bool, voiceprints=()) -> None:
        self.engine, self.diarize, self.voiceprints = engine, diarize, tuple(voiceprints)
        self.cluster_threshold = settings.SPEAKER_CLUSTER_THRESHOLD
        self.voiceprint_threshold = settings.VOICEPRINT_THRESHOLD
        self.sums: list[np.ndarray] = []  # per diarized speaker, the sum of its finals' embeddings
        self.restart()

    def restart(self) -> None:
        """A new recognizer (its timeline starts at sample 0 again)."""
        self.audio = _Audio(0)

    def push(self, samples: np.ndarray) -> None:
        """Keep the audio the recognizer is fed (same timeline), for the finals to come."""
        self.audio.append(samples)
        self.audio.trim(self.audio.end - int(KEEP_S * SAMPLE_RATE))

    def _embedding(self, event: StreamEvent) -> np.ndarray | None:
        start, end = int(round(event.start_s * SAMPLE_RATE)), int(round(event.end_s * SAMPLE_RATE))
        audio = self.audio.slice(start, end)
        pieces = speech_windows([(0, audio.shape[0])])
        if not pieces:
            return None
        vector = self.engine.embed([audio[s:e] for s, e in pieces]).mean(0)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    def _cluster(self, vector: np.ndarray) -> tuple[str, float]:
        if self.sums:
            cents = np.stack([s / max(float(np.linalg.norm(s)), 1e-12) for s in self.sums])
            sims = cents @ vector
            best = int(np.argmax(sims))
            if sims[best] >= self.cluster_threshold:
                self.sums[best] = self.sums[best] + vector
                return f"S{best + 1}", float(sims[best])
        self.sums.append(vector.copy())
        return f"S{len(self.sums)}", 1.0

    def label(self, events: list[StreamEvent]) -> dict[int, dict]:
        """{index of a final: {"spk_name", "spk_score"}} for the finals among `events` (blocks on inference)."""
        out: dict[int, dict] = {}
        for i, event in enumerate(events):
            if event.kind != "final":
                continue
            vector = self._embedding(event)
            name, score = UNKNOWN, None
            if vector is not None:
                if self.diarize:
                    name, score = self._cluster(vector)
                if self.voiceprints:
                    sims = np.stack([v.embedding for v in self.voiceprints]) @ vector
                    best = int(np.argmax(sims))
                    score = float(sims[best])
                    if score >= self.voiceprint_threshold:
                        name = self.voiceprints[best].name
            out[i] = {"spk_name": name, "spk_score": None if score is None else round(score, 3)}
        return out
