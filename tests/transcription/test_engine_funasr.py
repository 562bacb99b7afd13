"""The FunASR engine on the committed trained fixture model: real words, original timeline, progress, tags."""

from __future__ import annotations

import time

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from tests import audio_samples as samples
from transcription.engines.base import TranscribeOptions, join_texts
from transcription.engines.funasr import FunASREngine, resolve_device
from transcription.engines.funasr_text import parse_tags, plan_batches, plan_pieces
from transcription.pipeline import recognize_samples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine():
    engine = FunASREngine(model=str(samples.FIXTURE_MODEL), device="cpu", threads=1, batch_size_s=60)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def zh():
    return samples.speak_fixture("zh_park")


@pytest.fixture(scope="module")
def en():
    return samples.speak_fixture("en_welcome")


def test_chinese_fixture_sentence_comes_out_with_the_real_words(engine, zh):
    result = transcribe(engine, zh, options=TranscribeOptions(language="auto", itn=False))

    assert "今天天气很好" in result.text
    assert "公园散步" in result.text
    assert result.language == "zh"
    assert result.model == str(samples.FIXTURE_MODEL)
    assert result.duration_s == pytest.approx(zh.shape[0] / 16000, abs=0.01)
    assert result.asr_ms >= 0 and result.vad_ms >= 0


def test_english_fixture_sentence_comes_out_with_the_real_words(engine, en):
    result = transcribe(engine, en, options=TranscribeOptions(language="en", itn=True))

    assert "hello and welcome to the transcription service" in result.text.lower()
    assert result.language == "en"
    assert all(seg.language == "en" for seg in result.segments)


def test_segments_are_on_the_original_timeline_after_leading_silence(engine):
    speech = samples.speak_fixture("zh_welcome")
    audio = np.concatenate([samples.silence(4.0), speech, samples.silence(2.0)])

    result = transcribe(engine, audio, options=TranscribeOptions())

    assert "欢迎使用" in result.text
    assert result.segments
    assert result.segments[0].start >= 3.7  # speech starts at 4.0 s (+ espeak's own lead-in, - VAD padding)
    assert result.segments[-1].end <= result.duration_s
    assert all(0 <= s.start < s.end <= result.duration_s for s in result.segments)
    assert result.speech_s < result.duration_s - 4.0


def test_vad_off_recognizes_the_whole_audio(engine, zh):
    audio = np.concatenate([samples.silence(1.0), zh])

    result = transcribe(engine, audio, options=TranscribeOptions(vad=False))

    assert "公园散步" in result.text
    assert result.speech_s == pytest.approx(result.duration_s)
    assert result.vad_ms == 0
    assert result.segments[0].start == 0.0


def test_silence_gives_empty_text_and_no_segments(engine):
    progress = []

    result = transcribe(engine, samples.silence(5.0), options=TranscribeOptions(), progress=progress.append)

    assert result.text == ""
    assert result.segments == ()
    assert result.speech_s == 0
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_empty_audio_does_not_crash(engine):
    result = transcribe(engine, np.zeros(0, dtype=np.float32), options=TranscribeOptions(language="zh"))

    assert result.text == "" and result.segments == () and result.duration_s == 0
    assert result.language == "zh"  # nothing recognized: the requested language stands


def test_progress_is_monotonic_and_ends_at_one(zh, en):
    engine = FunASREngine(model=str(samples.FIXTURE_MODEL), device="cpu", threads=1, batch_size_s=5)
    gap = samples.silence(2.0)
    audio = np.concatenate([gap, zh, gap, en, gap, samples.speak_fixture("zh_welcome"), gap])
    progress = []

    result = transcribe(engine, audio, options=TranscribeOptions(), progress=progress.append)

    assert len(progress) >= 3
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert "公园散步" in result.text and "transcription service" in result.text
    assert [s.start for s in result.segments] == sorted(s.start for s in result.segments)
    assert result.language == "zh"  # two Chinese sentences outweigh one English
    engine.close()


def test_progress_may_abort_the_job(engine, zh):
    def abort(fraction):
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        transcribe(engine, zh, options=TranscribeOptions(), progress=abort)


def test_no_tags_ever_reach_the_text(engine, zh, en):
    audio = np.concatenate([zh, samples.silence(1.0), en])
    for options in (TranscribeOptions(), TranscribeOptions(itn=False, vad=False), TranscribeOptions(language="en")):
        result = transcribe(engine, audio, options=options)
        assert "<|" not in result.text
        assert all("<|" not in s.text for s in result.segments)
        assert all(s.emotion in ("", "neutral") for s in result.segments)


def test_hotwords_are_ignored_with_a_note_on_sensevoice(engine, en):
    result = transcribe(engine, en, options=TranscribeOptions(hotwords=("Tingxie",)))

    assert engine.supports_hotwords is False
    assert any("hotwords" in w for w in result.warnings)
    assert "transcription service" in result.text


def test_missing_local_model_dir_fails_fast_with_a_clear_message(tmp_path):
    started = time.perf_counter()

    with pytest.raises(ImproperlyConfigured, match="does not exist"):
        FunASREngine(model=str(tmp_path / "no-such-model"))

    assert time.perf_counter() - started < 0.5


def test_hub_ids_are_not_checked_on_disk():
    engine = FunASREngine(model="iic/SenseVoiceSmall")

    assert engine.name == "iic/SenseVoiceSmall"
    assert engine.supports_hotwords is False
    assert FunASREngine(
        model="iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch"
    ).supports_hotwords


def test_device_auto_picks_cpu_here_and_cuda_when_available(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == "mps"

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda:0"
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cuda:1") == "cuda:1"


def test_parse_tags_turns_tags_into_fields():
    text, language, emotion, events = parse_tags("<|yue|><|HAPPY|><|BGM|><|withitn|>你 好 , world")

    assert (text, language, emotion, events) == ("你好 , world", "yue", "happy", ("bgm",))
    assert parse_tags("<|nospeech|><|EMO_UNKNOWN|><|Event_UNK|><|woitn|>") == ("", "", "", ())


def test_join_and_planning_helpers():
    assert join_texts(["今天", "天气"]) == "今天天气"
    assert join_texts(["hello", "world"]) == "hello world"
    assert plan_pieces([(0, 10), (12, 20), (100, 400)], merge_gap=5, max_len=100) == [
        (0, 20),
        (100, 200),
        (200, 300),
        (300, 400),
    ]
    assert plan_batches([(0, 10), (10, 30), (30, 35)], budget=25) == [[(0, 10)], [(10, 30), (30, 35)]]


def test_several_pieces_in_one_batch_keep_their_own_text_and_times(engine, zh, en):
    gap = samples.silence(2.0)
    audio = np.concatenate([gap, zh, gap, en, gap])

    result = transcribe(engine, audio, options=TranscribeOptions())  # batch_size_s=60: one generate call

    assert len(result.segments) == 2
    first, second = result.segments
    assert "公园散步" in first.text and first.language == "zh"
    assert "transcription service" in second.text and second.language == "en"
    assert 1.7 <= first.start < first.end <= 2.0 + zh.shape[0] / 16000 + 0.1
    assert second.start >= 4.0 + zh.shape[0] / 16000 - 0.3


def transcribe(engine, audio, *, options, progress=None):
    """The one recognition path (VAD, windows, engine, language vote) on audio in memory."""
    return recognize_samples(audio, engine=engine, options=options, progress=progress)
