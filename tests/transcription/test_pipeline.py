"""The streaming pipeline: chunked decode, windows cut in pauses, original timeline, caps, bounded memory."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest

from portal.errors import AudioTooLong
from tests import audio_samples as samples
from tests.audio_samples import decode_all as decode
from transcription import pipeline
from transcription.audio import SAMPLE_RATE, decode_stream
from transcription.engines.base import BaseEngine, EngineResult, Segment, TranscribeOptions
from transcription.pipeline import MAX_CARRY_S, choose_cut, recognize_file, recognize_samples
from transcription.vad import VAD_FRAME, speech_regions

SR = SAMPLE_RATE


class RecordingEngine(BaseEngine):
    """No model: one segment per speech region given, and a record of every window."""

    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, list | None, float]] = []

    def transcribe_regions(self, audio, *, regions, options, offset_s=0.0, progress=None) -> EngineResult:
        self.calls.append((audio.shape[0], regions, offset_s))
        spans = regions if regions is not None else [(0, audio.shape[0])]
        if progress is not None:
            progress(0.5)
            progress(1.0)
        segments = tuple(Segment(start=offset_s + s / SR, end=offset_s + e / SR, text="x") for s, e in spans)
        return EngineResult(
            text=" ".join(s.text for s in segments),
            segments=segments,
            language="",
            audio_s=audio.shape[0] / SR,
            speech_s=sum(e - s for s, e in spans) / SR,
            vad_ms=0,
            asr_ms=1,
            model=self.name,
        )


@pytest.fixture(scope="module")
def zh_park():
    return samples.speak_fixture("zh_park")


@pytest.fixture(scope="module")
def en_welcome():
    return samples.speak_fixture("en_welcome")


@pytest.fixture(scope="module")
def engine():
    from transcription.engines.funasr import FunASREngine

    engine = FunASREngine(model=str(samples.FIXTURE_MODEL), device="cpu", threads=1, batch_size_s=60)
    yield engine
    engine.close()


# --- decode_stream ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["wav", "mp3", "webm"])
def test_stream_chunks_add_up_to_decode(tmp_path, ext, en_welcome):
    # Given a 7 s file in several formats
    path = samples.encode(
        np.concatenate([samples.silence(2.0), en_welcome, samples.silence(1.0)]), tmp_path / f"a.{ext}"
    )

    # When it is decoded whole and streamed in 1.5 s chunks
    whole = decode(path, max_seconds=60)
    stream = decode_stream(path, max_seconds=60, chunk_seconds=1.5)
    chunks = list(stream)

    # Then the chunks are full-sized (but the last), float32, and concatenate to the same samples
    assert all(c.dtype == np.float32 and c.shape == (int(1.5 * SR),) for c in chunks[:-1])
    assert 0 < chunks[-1].shape[0] <= int(1.5 * SR)
    np.testing.assert_array_equal(np.concatenate(chunks), whole.samples)
    assert stream.finished
    assert stream.duration_s == pytest.approx(whole.duration_s)
    assert stream.truncated is whole.truncated is False


@pytest.mark.parametrize("ext", ["flac", "mp3"])
def test_stream_salvages_a_cut_off_file_like_decode(tmp_path, ext, zh_park):
    full = samples.encode(np.tile(np.concatenate([zh_park, samples.silence(1.0)]), 4), tmp_path / f"full.{ext}")
    cut = samples.truncate(full, tmp_path / f"cut.{ext}", keep=0.4)

    whole = decode(cut, max_seconds=60)
    stream = decode_stream(cut, max_seconds=60, chunk_seconds=2.0)
    streamed = np.concatenate(list(stream))

    assert whole.truncated and stream.truncated
    assert stream.duration_s == pytest.approx(whole.duration_s)
    np.testing.assert_array_equal(streamed, whole.samples)


def test_stream_raises_too_long_as_soon_as_the_cap_is_passed(tmp_path):
    path = samples.write_wav(tmp_path / "long.wav", samples.tone(12.0))
    seen = []

    with pytest.raises(AudioTooLong):
        for chunk in decode_stream(path, max_seconds=5.0, chunk_seconds=1.0):
            seen.append(chunk.shape[0])

    assert sum(seen) <= (5.0 + 0.5) * SR  # never yields past the cap (plus decode()'s grace)
    assert len(list(decode_stream(path, max_seconds=12.0, chunk_seconds=5.0))) == 3  # at the limit: fine


def test_stream_holds_about_one_chunk(tmp_path):
    # Given a 10-minute WAV (38 MB as float32)
    path = samples.write_wav(tmp_path / "ten.wav", samples.tone(600.0, amplitude=0.1))
    full_bytes = 600 * SR * 4
    chunk_bytes = 30 * SR * 4

    # When it is streamed in 30 s chunks that the caller drops
    tracemalloc.start()
    try:
        total = sum(chunk.shape[0] for chunk in decode_stream(path, max_seconds=700, chunk_seconds=30.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then it never held more than two chunks
    assert total == 600 * SR
    assert peak < 2.2 * chunk_bytes < full_bytes / 8


# --- windows ------------------------------------------------------------------------------------------------


def test_choose_cut_keeps_speech_whole():
    s = SR  # one second
    tail = 9 * s - (9 * s) % VAD_FRAME  # cuts fall on VAD frames
    # Silence only: everything but the last second goes
    assert choose_cut([], 10 * s) == tail
    # Speech ended long enough ago: cut before the tail
    assert choose_cut([(1 * s, 3 * s)], 10 * s) == tail
    # Speech still running at the end: cut in the last long pause, half a second before the next speech
    cut = choose_cut([(1 * s, 3 * s), (6 * s, 10 * s)], 10 * s)
    assert cut % VAD_FRAME == 0 and 3 * s <= cut <= int(5.5 * s) + VAD_FRAME
    # Only short pauses (the engine would merge them): carry everything
    assert choose_cut([(0, 4 * s), (int(4.3 * s), 10 * s)], 10 * s) is None
    # ... unless the carry is already too long: then the widest pause, even a short one
    n = int((MAX_CARRY_S + 5) * SR)
    forced = choose_cut([(0, 20 * s), (int(20.4 * s), 40 * s), (int(40.2 * s), n)], n)
    assert 20 * s <= forced <= int(20.4 * s)
    # Continuous speech past the limit: cut just before the tail
    assert 0 < choose_cut([(0, n)], n) < n


def test_windows_follow_pauses_and_offsets_put_them_on_the_original_timeline(tmp_path, zh_park, en_welcome):
    audio = np.concatenate([samples.silence(6.0), zh_park, samples.silence(2.0), en_welcome, samples.silence(1.0)])
    path = samples.write_wav(tmp_path / "a.wav", audio)
    fake = RecordingEngine()

    result = recognize_file(path, engine=fake, options=TranscribeOptions(), max_seconds=60, chunk_seconds=2.0)

    # Each utterance lies wholly inside one window; window offsets are VAD-frame aligned
    assert len(result.segments) == 2
    first, second = result.segments
    assert 5.8 <= first.start <= 6.4 and first.end == pytest.approx(6.0 + zh_park.shape[0] / SR, abs=0.3)
    assert second.start >= first.end + 1.5
    assert all(round(offset * SR) % VAD_FRAME == 0 for _, _, offset in fake.calls)
    assert result.duration_s == pytest.approx(audio.shape[0] / SR, abs=0.01)
    assert result.windows == len(fake.calls) == 2
    assert result.speech_s == pytest.approx(sum(s.end - s.start for s in result.segments), abs=0.01)


def _recognized_with_vad_counted(monkeypatch, path, *, reuse: bool, chunk_seconds: float):
    """recognize_file() with a RecordingEngine, counting the VAD passes; reuse=False: finish() runs the VAD
    again on the carried audio (what it did before it reused the regions of a buffer carried whole)."""
    calls = []

    def counted(window, **kwargs):
        calls.append(window.shape[0])
        return speech_regions(window, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "speech_regions", counted)
        if not reuse:
            patch.setattr(
                pipeline._Windows, "carry_regions", property(lambda self: None, lambda self, v: None), raising=False
            )
        fake = RecordingEngine()
        result = recognize_file(
            path, engine=fake, options=TranscribeOptions(), max_seconds=700, chunk_seconds=chunk_seconds
        )
    return result, fake.calls, calls


def test_a_file_shorter_than_a_chunk_gets_one_vad_pass_and_the_same_windows(monkeypatch, tmp_path):
    speech = samples.speak_fixture("zh_welcome")
    path = samples.write_wav(tmp_path / "short.wav", np.concatenate([samples.silence(0.2), speech]))

    result, windows, vad = _recognized_with_vad_counted(monkeypatch, path, reuse=True, chunk_seconds=300.0)
    before, windows_before, vad_before = _recognized_with_vad_counted(
        monkeypatch, path, reuse=False, chunk_seconds=300.0
    )

    assert vad == [decode(path, max_seconds=60).samples.shape[0]]  # one pass over the whole file
    assert len(vad_before) == 2
    assert windows == windows_before and len(windows) == 1 and windows[0][1]
    assert replace(result, vad_ms=0, decode_ms=0) == replace(before, vad_ms=0, decode_ms=0)


@pytest.mark.parametrize(
    ("chunk_seconds", "tail_s", "forced_cuts"),
    [(2.0, 1.0, False), (2.0, 0.1, False), (2.0, 3.0, False), (30.0, 0.1, True), (30.0, 3.0, True)],
)
def test_long_files_get_the_same_windows_when_vad_regions_are_reused(
    monkeypatch, tmp_path, zh_park, en_welcome, chunk_seconds, tail_s, forced_cuts
):
    # Given speech across chunk boundaries, longer than one chunk, ending right at the end (the last buffer is
    # carried whole) or in silence (the last buffer is cut, only its tail is carried)
    unit = np.concatenate([samples.silence(1.3), zh_park, samples.silence(0.4), en_welcome])
    audio = np.concatenate([np.tile(unit, 6), samples.silence(tail_s)])
    if forced_cuts:  # speech without a 1 s pause for longer than MAX_CARRY_S: cut anyway
        audio = np.concatenate([np.tile(np.concatenate([zh_park, samples.silence(0.3)]), 12), audio])
    path = samples.write_wav(tmp_path / "long.wav", audio)

    result, windows, vad = _recognized_with_vad_counted(monkeypatch, path, reuse=True, chunk_seconds=chunk_seconds)
    before, windows_before, vad_before = _recognized_with_vad_counted(
        monkeypatch, path, reuse=False, chunk_seconds=chunk_seconds
    )

    assert len(windows) > 2
    assert windows == windows_before
    assert replace(result, vad_ms=0, decode_ms=0) == replace(before, vad_ms=0, decode_ms=0)
    # Only the last pass is saved, when the last buffer was carried whole
    assert len(vad) == len(vad_before) - (tail_s < 2.0)  # a silent end shorter than TAIL_S + CUT_GAP_S: no cut


def test_vad_off_sends_each_chunk_whole(tmp_path):
    path = samples.write_wav(tmp_path / "t.wav", samples.tone(5.0))
    fake = RecordingEngine()

    result = recognize_file(path, engine=fake, options=TranscribeOptions(vad=False), max_seconds=60, chunk_seconds=2.0)

    assert [(n, regions, offset) for n, regions, offset in fake.calls] == [
        (2 * SR, None, 0.0),
        (2 * SR, None, 2.0),
        (SR, None, 4.0),
    ]
    assert [s.start for s in result.segments] == [0.0, 2.0, 4.0]
    assert result.vad_ms == 0


def test_silence_makes_no_engine_calls(tmp_path):
    path = samples.write_wav(tmp_path / "s.wav", samples.silence(7.0))
    fake = RecordingEngine()
    seen = []

    result = recognize_file(
        path, engine=fake, options=TranscribeOptions(), progress=seen.append, max_seconds=60, chunk_seconds=2.0
    )

    assert fake.calls == []
    assert result.text == "" and result.segments == () and result.speech_s == 0
    assert seen[-1] == 1.0


def test_progress_is_monotonic_and_ends_at_one(tmp_path, zh_park):
    audio = np.concatenate([samples.silence(1.0), zh_park, samples.silence(3.0), zh_park, samples.silence(2.0)])
    path = samples.write_wav(tmp_path / "p.wav", audio)
    seen: list[float] = []

    recognize_file(
        path,
        engine=RecordingEngine(),
        options=TranscribeOptions(),
        progress=seen.append,
        max_seconds=60,
        expected_s=audio.shape[0] / SR,
        chunk_seconds=2.0,
    )

    assert len(seen) >= audio.shape[0] / SR / 2  # at least one call per chunk: it is the job's heartbeat
    assert seen == sorted(seen)
    assert all(0.0 <= f <= 0.99 for f in seen[:-1])
    assert seen[-1] == 1.0
    assert seen[-2] > 0.5


def test_pipeline_keeps_decodes_truncation_and_cap(tmp_path, zh_park):
    full = samples.encode(np.tile(np.concatenate([zh_park, samples.silence(1.5)]), 4), tmp_path / "full.flac")
    cut = samples.truncate(full, tmp_path / "cut.flac", keep=0.4)

    result = recognize_file(
        cut, engine=RecordingEngine(), options=TranscribeOptions(), max_seconds=60, chunk_seconds=2.0
    )

    assert result.truncated
    assert result.duration_s == pytest.approx(decode(cut, max_seconds=60).duration_s, abs=0.001)
    with pytest.raises(AudioTooLong):
        recognize_file(full, engine=RecordingEngine(), options=TranscribeOptions(), max_seconds=10, chunk_seconds=2.0)


def test_pipeline_memory_stays_bounded_on_a_long_input(tmp_path, zh_park):
    # Given 10 minutes of audio, an utterance every 20 s
    unit = np.concatenate([zh_park, samples.silence(20.0 - zh_park.shape[0] / SR)])
    path = samples.write_wav(tmp_path / "long.wav", np.tile(unit, 30))
    full_bytes = 600 * SR * 4
    fake = RecordingEngine()

    # When it is recognized in 30 s chunks
    tracemalloc.start()
    try:
        result = recognize_file(path, engine=fake, options=TranscribeOptions(), max_seconds=700, chunk_seconds=30.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then every utterance was found once, and at most a few chunks were ever held
    assert len(result.segments) == 30
    assert all(b.start - a.end > 10 for a, b in zip(result.segments, result.segments[1:], strict=False))
    assert peak < 4 * 30 * SR * 4 < full_bytes / 4, peak


# --- with the real model ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("chunk_seconds", [2.0, 3.0])
def test_streaming_equals_whole_file_with_speech_across_chunk_boundaries(
    engine, tmp_path, chunk_seconds, zh_park, en_welcome
):
    # Given speech that crosses several 2-3 s chunk boundaries
    zh_welcome = samples.speak_fixture("zh_welcome")
    audio = np.concatenate([samples.silence(1.7), zh_park, samples.silence(1.3), en_welcome, samples.silence(1.1), zh_welcome, samples.silence(2.0)])  # fmt: skip
    path = samples.write_wav(tmp_path / "clip.wav", audio)
    options = TranscribeOptions()

    # When it is recognized whole and streamed
    whole = recognize_samples(decode(path, max_seconds=60).samples, engine=engine, options=options)
    streamed = recognize_file(path, engine=engine, options=options, max_seconds=60, chunk_seconds=chunk_seconds)

    # Then the words are the same and the times agree within 50 ms
    assert streamed.text == whole.text
    assert "公园散步" in streamed.text and "welcome" in streamed.text.lower()
    assert [s.text for s in streamed.segments] == [s.text for s in whole.segments]
    for a, b in zip(streamed.segments, whole.segments, strict=True):
        assert a.start == pytest.approx(b.start, abs=0.05)
        assert a.end == pytest.approx(b.end, abs=0.05)
    assert streamed.language == whole.language
    assert streamed.windows > 1
    assert streamed.speech_s == pytest.approx(whole.speech_s, abs=0.2)
    assert streamed.model == whole.model


@pytest.mark.slow
def test_segments_are_on_the_original_timeline_after_leading_silence(engine, tmp_path):
    speech = samples.speak_fixture("zh_welcome")
    path = samples.write_wav(
        tmp_path / "lead.wav", np.concatenate([samples.silence(7.0), speech, samples.silence(2.0)])
    )

    result = recognize_file(path, engine=engine, options=TranscribeOptions(), max_seconds=60, chunk_seconds=2.5)

    assert "欢迎使用" in result.text
    assert 6.7 <= result.segments[0].start <= 7.3
    assert result.segments[-1].end <= result.duration_s
    assert result.language == "zh"


def test_each_window_s_segments_are_reported_before_the_file_is_done(tmp_path, zh_park, en_welcome):
    """What a streamed answer shows while the rest of the file is still being recognized."""
    audio = np.concatenate([samples.silence(6.0), zh_park, samples.silence(2.0), en_welcome, samples.silence(1.0)])
    path = samples.write_wav(tmp_path / "a.wav", audio)
    events: list[tuple[str, object]] = []

    result = recognize_file(
        path,
        engine=RecordingEngine(),
        options=TranscribeOptions(),
        progress=lambda f: events.append(("progress", f)),
        recognized=lambda found: events.append(("segments", found)),
        max_seconds=60,
        chunk_seconds=2.0,
    )

    reported = [found for kind, found in events if kind == "segments"]
    assert [s for found in reported for s in found] == list(result.segments) and len(reported) == 2
    first = events.index(("segments", reported[0]))
    assert any(kind == "progress" and f < 1.0 for kind, f in events[first + 1 :]), "reported before the end"
