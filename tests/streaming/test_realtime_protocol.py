"""The OpenAI Realtime adapter on its own: session updates as the SDKs and known clients send them, the shapes
the server answers (validated with the SDK's pydantic types), and a clear error for each thing not served."""

from __future__ import annotations

import base64

import pytest
from openai.types.beta.realtime import transcription_session_update
from openai.types.realtime import RealtimeErrorEvent, SessionCreatedEvent, SessionUpdatedEvent

from streaming import realtime_protocol as rt

pytestmark = pytest.mark.django_db


def update(session: dict, current: rt.RealtimeConfig | None = None, kind: str = "session.update") -> rt.RealtimeConfig:
    return rt.apply_update({"type": kind, "session": session}, current or rt.RealtimeConfig(), tenant=None)


def test_ga_update_as_pipecat_sends_it():
    c = update(
        {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "gpt-4o-transcribe", "language": "zh", "prompt": "公园, 散步"},
            "turn_detection": {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 300,
                               "silence_duration_ms": 700},
            "noise_reduction": {"type": "near_field"}}}, "include": ["item.input_audio_transcription.logprobs"]}
    )  # fmt: skip
    assert (c.model, c.language, c.hotwords, c.vad, c.threshold, c.silence_duration_ms) == (
        "gpt-4o-transcribe", "zh", ("公园", "散步"), True, 0.6, 700
    )  # fmt: skip
    s = rt.recognizer_settings(c)
    assert (s.segmented, s.partials, s.vad_events, s.end_silence_ms, s.vad_pad_ms) == (True, True, True, 700, 300)
    assert s.options.language == "zh" and s.options.hotwords == ("公园", "散步")
    for event in (
        rt.event("session.created", session=rt.session_object(c, "s1")),
        rt.event("session.updated", session=rt.session_object(c, "s1")),
    ):
        model = SessionCreatedEvent if event["type"] == "session.created" else SessionUpdatedEvent
        model.model_validate(event, strict=True)
    assert rt.session_object(c, "s1")["include"] == []


def test_fields_left_out_keep_their_value_and_null_turn_detection_is_manual():
    c = update({"type": "transcription", "audio": {"input": {"transcription": {"language": "en"}}}})
    c = update({"type": "transcription", "audio": {"input": {"turn_detection": None}}}, c)
    assert (c.language, c.vad, c.mode) == ("en", False, "manual")
    assert not rt.recognizer_settings(c).segmented
    assert rt.session_object(c, "s")["audio"]["input"]["turn_detection"] is None


def test_beta_update():
    c = update(
        {"input_audio_format": "pcm16", "input_audio_transcription": {"model": "whisper-1", "language": "zh"},
         "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}, "input_audio_noise_reduction": None},
        rt.RealtimeConfig(beta=True), kind="transcription_session.update",
    )  # fmt: skip
    assert (c.model, c.silence_duration_ms) == ("whisper-1", 300)
    session = rt.session_object(c, "s")
    transcription_session_update.Session.model_validate(session)
    assert session["turn_detection"]["silence_duration_ms"] == 300


@pytest.mark.parametrize(
    ("kind", "session", "param"),
    [
        ("session.update", {"type": "realtime"}, "session.type"),
        ("session.update", {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
         "session.audio.input.format"),
        ("session.update", {"type": "transcription", "audio": {"input": {"transcription": {"model": "gpt-9"}}}},
         "session.audio.input.transcription.model"),
        ("session.update", {"type": "transcription", "audio": {"input": {"transcription": {"language": "xx"}}}},
         "session.audio.input.transcription.language"),
        ("session.update", {"type": "transcription", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}},
         "session.audio.input.turn_detection.type"),
        ("session.update", {"type": "transcription", "audio": {"input": {"turn_detection": {
            "type": "server_vad", "silence_duration_ms": 50}}}}, "session.audio.input.turn_detection.silence_duration_ms"),
        ("transcription_session.update", {"input_audio_format": "g711_ulaw"}, "session.input_audio_format"),
        ("transcription_session.update", "nope", "session"),
    ],
)  # fmt: skip
def test_what_is_not_served_is_a_clear_error(kind, session, param):
    with pytest.raises(rt.ProtocolError) as refused:
        rt.apply_update({"type": kind, "session": session}, rt.RealtimeConfig(), tenant=None)
    assert refused.value.param == param
    event = rt.error_event(refused.value.message, code=refused.value.code, param=param, event_id="c1")
    RealtimeErrorEvent.model_validate(event, strict=True)
    assert event["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("text", "code", "param"),
    [
        ("{", "invalid_json", None),
        ("[1]", "invalid_json", None),
        ('{"no": 1}', "missing_required_parameter", "type"),
        ('{"type": "response.create"}', "invalid_value", "type"),
    ],
)
def test_bad_events(text, code, param):
    with pytest.raises(rt.ProtocolError) as refused:
        rt.parse_event(text)
    assert (refused.value.code, refused.value.param) == (code, param)


def test_audio_decoding():
    pcm = b"\x01\x00\x02\x00"
    assert rt.decode_audio({"audio": base64.b64encode(pcm).decode()}) == pcm
    for bad in ({}, {"audio": 5}, {"audio": "%%%"}):
        with pytest.raises(rt.ProtocolError) as refused:
            rt.decode_audio(bad)
        assert refused.value.param == "audio"
