"""The FunASR protocol adapter on its own: configurations as each stock client sends them, result shapes."""

from __future__ import annotations

import json

import pytest

from streaming import funasr_protocol as proto
from transcription.engines.base import Word
from transcription.streaming import StreamEvent


def config(message: dict, current=None) -> proto.FunasrConfig:
    return proto.apply_config(message, current, tenant=None, end_silence_ms=500)


def test_python_client_config():
    message = {"mode": "2pass", "chunk_size": [5, 10, 5], "chunk_interval": 10, "encoder_chunk_look_back": 4,
               "decoder_chunk_look_back": 0, "audio_fs": 16000, "wav_name": "demo", "wav_format": "pcm",
               "is_speaking": True, "hotwords": json.dumps({"阿里巴巴": 20, "通义": 10}), "itn": True}  # fmt: skip
    c = config(message)
    assert (c.mode, c.chunk_size, c.encoder_look_back, c.decoder_look_back) == ("2pass", (5, 10, 5), 4, 0)
    assert c.hotwords == ("阿里巴巴", "通义") and c.itn and c.audio_fs == 16000
    settings = proto.recognizer_settings(c)
    assert settings.partials and settings.segmented and settings.offline_finals
    assert settings.options.hotwords == ("阿里巴巴", "通义")


@pytest.mark.parametrize(
    ("hotwords", "expected"),
    [
        ("阿里巴巴 通义", ("阿里巴巴", "通义")),  # a plain list string
        ("阿里巴巴,通义", ("阿里巴巴", "通义")),
        (["阿里巴巴", "通义"], ("阿里巴巴", "通义")),
        ("", ()),
    ],
)
def test_hotword_forms(hotwords, expected):
    assert config({"mode": "online", "hotwords": hotwords}).hotwords == expected


def test_csharp_client_string_chunk_size_and_8k():
    c = config({"mode": "online", "chunk_size": "5,10,5", "audio_fs": 8000, "itn": "false"})
    assert c.chunk_size == (5, 10, 5) and c.audio_fs == 8000 and c.itn is False


def test_xiaozhi_offline_config():
    c = config({"mode": "offline", "chunk_size": [5, 10, 5], "chunk_interval": 10, "wav_name": "s1",
                "is_speaking": True, "itn": False})  # fmt: skip
    settings = proto.recognizer_settings(c)
    assert not settings.partials and not settings.segmented and not c.itn


@pytest.mark.parametrize(
    "message",
    [
        {"mode": "3pass"},
        {"chunk_size": [5, 10]},
        {"chunk_size": "a,b,c"},
        {"audio_fs": 44100},
        {"wav_format": "mp3"},
        {"itn": "maybe"},
        {"hotwords": 5},
        {"max_end_silence_time": "soon"},
    ],
)
def test_bad_configs_are_protocol_errors(message):
    with pytest.raises(proto.ProtocolError):
        config(message)


def test_the_mode_cannot_change_and_later_messages_keep_the_rest():
    first = config({"mode": "2pass", "wav_name": "a", "itn": False})
    assert config({"is_speaking": True, "wav_name": "b"}, first) == first.__class__(
        mode="2pass", wav_name="b", itn=False, end_silence_ms=500
    )
    with pytest.raises(proto.ProtocolError):
        config({"mode": "offline"}, first)


@pytest.mark.parametrize(
    ("message", "ends"),
    [
        ({"is_speaking": False}, True),
        ({"is_speaking": False, "is_end": True}, True),
        ({"is_finished": True}, True),
        ({"is_end": True}, True),
        ({"is_speaking": True}, False),
        ({"mode": "2pass"}, False),
    ],
)
def test_what_ends_an_utterance(message, ends):
    assert proto.ends_utterance(message) is ends


def test_garbage_text():
    for text in ("{nope", "[1, 2]", '"str"'):
        with pytest.raises(proto.ProtocolError):
            proto.parse_message(text)


def test_result_shapes():
    partial = StreamEvent("partial", "你好", 0.0, 0.6)
    final = StreamEvent("final", "你好世界", 0.0, 1.2, tail="世界")
    two = config({"mode": "2pass", "wav_name": "w"})
    assert proto.result_message(two, partial, last=False) == {
        "mode": "2pass-online", "text": "你好", "wav_name": "w", "is_final": False
    }  # fmt: skip
    assert proto.result_message(two, final, last=False)["mode"] == "2pass-offline"
    assert proto.result_message(two, final, last=False)["is_final"] is True
    online = config({"mode": "online", "wav_name": "w"})
    assert proto.result_message(online, final, last=False) == {
        "mode": "online", "text": "世界", "wav_name": "w", "is_final": False
    }  # fmt: skip
    assert proto.result_message(online, StreamEvent("final", "", 0, 0), last=False) is None
    assert proto.result_message(online, StreamEvent("final", "", 0, 0), last=True)["is_final"] is True
    offline = config({"mode": "offline", "wav_name": "w"})
    assert proto.result_message(offline, final, last=True) == {
        "mode": "offline", "text": "你好世界", "wav_name": "w", "is_final": True
    }  # fmt: skip
    assert proto.end_ack(offline) == {"mode": "offline", "wav_name": "w", "is_final": True, "is_end": True}
    error = proto.error_message(offline, "too_fast", "slow down")
    assert error["error"] == "too_fast: slow down" and error["is_end"] and error["is_final"] is False


def test_offline_finals_with_word_times_carry_timestamp_on_the_session_timeline(settings):
    settings.STREAM_WORD_TIMESTAMPS = True
    words = (Word("你好", 1.25, 1.5), Word("世界", 1.56, 2.0))
    final = StreamEvent("final", "你好世界", 1.2, 2.1, words=words)
    two = config({"mode": "2pass", "wav_name": "w"})
    message = proto.result_message(two, final, last=False, offset_s=10.0)  # the recognizer started at 10 s
    assert message["timestamp"] == "[[11250,11500],[11560,12000]]"  # a string, as FunASR's servers send it
    assert json.loads(message["timestamp"]) == [[11250, 11500], [11560, 12000]]
    assert "timestamp" not in proto.result_message(two, StreamEvent("final", "你好世界", 1.2, 2.1), last=False)
    assert "timestamp" not in proto.result_message(two, StreamEvent("partial", "你好", 1.2, 1.6), last=False)
    assert proto.recognizer_settings(two).options.word_timestamps is True  # offline finals ask for them
    assert proto.recognizer_settings(config({"mode": "online"})).options.word_timestamps is False  # no finals


def test_word_timestamps_can_be_turned_off_for_the_whole_worker(settings):
    settings.STREAM_WORD_TIMESTAMPS = False  # an operator's choice: no word times, no alignment
    for mode in ("offline", "2pass", "online"):
        assert proto.recognizer_settings(config({"mode": mode})).options.word_timestamps is False


@pytest.mark.parametrize(
    ("mode", "hotwords", "offline_supports", "warned"),
    [
        ("2pass", "公园", False, True),  # SenseVoice finals: told
        ("offline", "公园", False, True),
        ("2pass", "公园", True, False),  # SeACo finals use them
        ("offline", "公园", True, False),
        ("online", "公园", True, True),  # online finals come from the streaming Paraformer
        ("2pass", "", False, False),  # nothing asked, nothing to say
    ],
)
def test_hotwords_warning(mode, hotwords, offline_supports, warned):
    warning = proto.hotwords_warning(config({"mode": mode, "hotwords": hotwords}), offline_supports=offline_supports)
    assert bool(warning) == warned
    assert warning == "" or warning.startswith("hotwords_ignored: ")
