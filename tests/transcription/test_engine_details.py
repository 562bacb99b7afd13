"""Word timestamps and segment scores from the FunASR engine: only when asked, on the original timeline, the same
in cross-recording batches as alone; Paraformer words paired with its text; the pure helpers."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command

from tests import audio_samples as samples
from transcription.diarize import segment_dict
from transcription.engines.base import TranscribeOptions, Window
from transcription.engines.funasr import FunASREngine
from transcription.engines.funasr_details import is_punctuation, piece_words, text_units
from transcription.pipeline import recognize_samples

pytestmark = pytest.mark.slow

ASKED = TranscribeOptions(word_timestamps=True, scores=True)


@pytest.fixture(scope="module")
def engine():
    engine = FunASREngine(
        model=str(samples.FIXTURE_MODEL), device="cpu", threads=1, batching={"cpu": {"budget_s": 120, "max_items": 8}}
    )
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def two_sentences():
    """Chinese, then English after a pause: two pieces, each with its own words and scores."""
    zh, en = samples.speak_fixture("zh_welcome"), samples.speak_fixture("en_welcome")
    return np.concatenate([samples.silence(2.0), zh, samples.silence(2.0), en, samples.silence(1.0)])


def test_nothing_extra_unless_asked(engine, two_sentences):
    result = recognize_samples(two_sentences, engine=engine, options=TranscribeOptions())
    assert len(result.segments) == 2
    assert all(s.words is None and s.tokens is None and s.avg_logprob is None for s in result.segments)
    assert all(set(segment_dict(s)) == {"start", "end", "text"} for s in result.segments)


def test_words_and_scores_on_the_original_timeline(engine, two_sentences):
    plain = recognize_samples(two_sentences, engine=engine, options=TranscribeOptions())
    result = recognize_samples(two_sentences, engine=engine, options=ASKED)
    assert [s.text for s in result.segments] == [s.text for s in plain.segments]  # the text does not change
    zh, en = result.segments
    assert "".join(w.word for w in zh.words) == zh.text  # CJK: the words spell the text
    assert [w.word for w in en.words] == en.text.split()
    for seg in result.segments:
        assert seg.start - 0.05 <= seg.words[0].start and seg.words[-1].end <= seg.end + 0.05
        assert all(a.start <= b.start for a, b in zip(seg.words, seg.words[1:], strict=False))
        assert seg.tokens and -5.0 < seg.avg_logprob <= 0.0 and 0.0 <= seg.no_speech_prob < 0.5
    assert zh.words[0].start >= 1.9  # after the 2 s of leading silence
    assert en.words[0].start > zh.words[-1].end
    stored = segment_dict(en)
    assert stored["words"][0] == {"word": en.words[0].word, "start": en.words[0].start, "end": en.words[0].end}
    assert stored["tokens"] == list(en.tokens) and stored["avg_logprob"] == en.avg_logprob


def test_cross_recording_batches_give_each_window_what_it_gets_alone(engine, two_sentences):
    zh = samples.speak_fixture("zh_park")
    windows = [
        Window(audio=two_sentences, regions=None, options=ASKED, offset_s=30.0),
        Window(audio=zh, regions=None, options=ASKED),
        Window(audio=zh, regions=None, options=TranscribeOptions()),  # another call (other kwargs): nothing extra
    ]
    together = engine.transcribe_windows(windows)
    for window, result in zip(windows, together, strict=True):
        alone = engine.transcribe_regions(window.audio, regions=None, options=window.options, offset_s=window.offset_s)
        assert [(s.text, s.words, s.tokens) for s in result.segments] == [
            (s.text, s.words, s.tokens) for s in alone.segments
        ]
        for got, want in zip(result.segments, alone.segments, strict=True):
            assert got.avg_logprob == pytest.approx(want.avg_logprob, abs=1e-3)  # padding moves the last digits
    assert together[0].segments[0].words[0].start >= 30.0
    assert together[2].segments[0].words is None and together[2].segments[0].tokens is None


def test_paraformer_words_pair_with_its_text_and_nano_has_none(tmp_path):
    call_command("build_test_model", str(tmp_path / "paraformer"), kind="paraformer", seed=0)
    engine = FunASREngine(model=str(tmp_path / "paraformer"), device="cpu", threads=1)
    audio = (np.random.default_rng(3).standard_normal(3 * 16_000) * 0.1).astype(np.float32)
    result = recognize_samples(audio, engine=engine, options=TranscribeOptions(vad=False, word_timestamps=True))
    engine.close()
    assert engine.supports_word_timestamps and not result.warnings and result.segments
    for seg in result.segments:  # a random model: whatever it says, each word of its text gets a time
        assert seg.words is not None and [w.word for w in seg.words] == text_units(seg.text)
        assert all(seg.start <= w.start <= w.end <= seg.end for w in seg.words)
        assert seg.tokens is None  # no scores from Paraformer (no CTC head)
    nano = FunASREngine(model="FunAudioLLM/Fun-ASR-Nano-2512")
    assert not nano.supports_word_timestamps
    _, warnings = nano._generate_kwargs(TranscribeOptions(word_timestamps=True))
    assert warnings and "word timestamps" in warnings[0]


def test_piece_words_pairs_only_what_it_can():
    sensevoice = {"text": "x", "timestamp": [[0, 100], [120, 200], [210, 300]], "words": ["hello", "，", "world"]}
    assert piece_words(sensevoice, "SenseVoiceSmall") == (("hello", 0, 100), ("world", 210, 300))
    assert piece_words({"text": "今天 good", "timestamp": [[0, 1], [1, 2], [2, 3]]}, "Paraformer") == (
        ("今", 0, 1),
        ("天", 1, 2),
        ("good", 2, 3),
    )
    assert piece_words({"text": "今天", "timestamp": [[0, 1]]}, "Paraformer") is None  # counts differ
    assert piece_words({"text": "今天"}, "SenseVoiceSmall") is None
    assert is_punctuation("。") and is_punctuation("?!") and not is_punctuation("a.")
