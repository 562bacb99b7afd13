"""Diarization with the trained tiny CAM++ on two-voice espeak clips (voices and sentences it never heard),
through the one recognition path (recognize_samples with a SpeakerTrack)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.audio_samples import SR, has_tool
from tests.speaker_samples import EASY_PAIR, HARD_PAIR, TURN_SENTENCES, conversation
from transcription.diarize import SpeakerOptions, SpeakerTrack

pytestmark = pytest.mark.skipif(not (has_tool("espeak-ng") and has_tool("sox")), reason="needs espeak-ng and sox")


def turn_labels(segments, turns) -> list[str]:
    """The speaker of the segment that overlaps each ground-truth turn most ("" when none does)."""
    out = []
    for turn in turns:
        best, label = 0.0, ""
        for seg in segments:
            overlap = min(seg.end, turn.end) - max(seg.start, turn.start)
            if overlap > best:
                best, label = overlap, seg.speaker
        out.append(label)
    return out


def turns_right(labels: list[str], turns) -> int:
    """Turns labelled right under the best one-to-one mapping of labels to true speakers."""
    truth = [t.speaker for t in turns]
    names = sorted(set(truth))
    found = sorted({label for label in labels if label})
    best = 0
    for first in found or [""]:
        mapping = {first: names[0]}
        for other in found:
            if other != first:
                mapping.setdefault(other, names[1])
        best = max(best, sum(mapping.get(label) == who for label, who in zip(labels, truth, strict=True)))
    return best


def diarize(samples: np.ndarray, **options):
    from django.conf import settings

    from transcription.engines import get_engine, get_speaker_engine
    from transcription.engines.base import TranscribeOptions
    from transcription.pipeline import recognize_samples

    track = SpeakerTrack(
        engine=get_speaker_engine(),
        options=SpeakerOptions(diarize=True, cluster_threshold=settings.SPEAKER_CLUSTER_THRESHOLD, **options),
    )
    return recognize_samples(samples, engine=get_engine(), options=TranscribeOptions(), speakers=track)


def test_easy_clip_every_turn_right():
    samples, turns = conversation(EASY_PAIR)
    result = diarize(samples)
    labels = turn_labels(result.segments, turns)
    assert labels[0] == "S1" and set(labels) == {"S1", "S2"}
    assert turns_right(labels, turns) == len(turns)
    assert result.speaker_ms > 0


def test_hard_clip_at_least_80_percent_of_turns():
    samples, turns = conversation(HARD_PAIR)
    labels = turn_labels(diarize(samples).segments, turns)
    assert turns_right(labels, turns) >= 0.8 * len(turns), labels


def test_a_12_second_clip_still_has_two_speakers():
    samples, turns = conversation(EASY_PAIR, TURN_SENTENCES[:3], gap_s=0.6)
    samples = samples[: 12 * SR]
    turns = [t for t in turns if t.end <= 12.0]
    assert len(turns) >= 2
    labels = turn_labels(diarize(samples).segments, turns)
    assert len(set(labels)) == 2
    assert turns_right(labels, turns) == len(turns)
