"""OpenAI's Realtime transcription protocol (GA and beta), as the official SDKs speak it: messages only.

The translation between wire events and the protocol-agnostic recognizer (transcription.streaming): a session
configuration (`session.update` with `session.type` "transcription", or the beta `transcription_session.update`),
base64 PCM16 at 24 kHz in `input_audio_buffer.append`, and the server events the SDK's pydantic types describe.
Sources: openai-python `types/realtime/*`, `types/beta/realtime/*`, `resources/realtime/realtime.py`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, replace

from transcription.engines.base import TranscribeOptions
from transcription.services.submit import options_normalize
from transcription.streaming import StreamSettings

SAMPLE_RATE_IN = 24000  # the only PCM rate the protocol has
MODELS = (  # what the SDK's AudioTranscription lists, and this deployment's own names: all run ASR_MODEL
    "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-mini-transcribe-2025-12-15", "gpt-transcribe",
    "gpt-live-transcribe", "gpt-realtime-whisper", "whisper-1", "sensevoice", "tingxie-default",
)  # fmt: skip
LANGUAGES = ("auto", "zh", "en", "yue", "ja", "ko")
CLIENT_EVENTS = (
    "session.update", "transcription_session.update", "input_audio_buffer.append", "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)  # fmt: skip
MIN_COMMIT_MS = 100
SERVER_CODES = ("server_error", "model_unavailable", "server_full", "recognition_failed")  # not the client's fault


class ProtocolError(Exception):
    """A client event this server cannot apply: answered with an `error` event; the session goes on."""

    def __init__(self, message: str, *, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param
        self.event_id: str | None = None  # the client event's, once known


@dataclass(frozen=True)
class RealtimeConfig:
    model: str = "tingxie-default"
    language: str = ""  # "" = detect
    prompt: str = ""
    hotwords: tuple[str, ...] = ()
    vad: bool = True  # turn_detection server_vad (else null: the client commits)
    threshold: float = 0.5
    prefix_padding_ms: int = 100
    silence_duration_ms: int = 500
    beta: bool = False  # the client spoke the beta protocol (OpenAI-Beta: realtime=v1)
    audio_fs: int = SAMPLE_RATE_IN
    wav_name: str = ""

    @property
    def mode(self) -> str:  # StreamSession.mode
        return "server_vad" if self.vad else "manual"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def event(kind: str, **fields) -> dict:
    return {"type": kind, "event_id": new_id("event"), **fields}


def error_event(message: str, *, code: str, param: str | None = None, event_id: str | None = None, kind=None) -> dict:
    kind = kind or ("server_error" if code in SERVER_CODES else "invalid_request_error")
    detail = {"type": kind, "code": code, "message": message, "param": param, "event_id": event_id}
    return event("error", error=detail)


def transcription_failed(item_id: str, message: str) -> dict:
    """The item's transcription failed (the SDK's ConversationItemInputAudioTranscriptionFailedEvent)."""
    error = {"type": "server_error", "code": "recognition_failed", "message": message, "param": None}
    return event("conversation.item.input_audio_transcription.failed", item_id=item_id, content_index=0, error=error)


def client_event_id(message: dict | None) -> str | None:
    value = (message or {}).get("event_id")
    return value[:64] if isinstance(value, str) else None


def parse_event(text: str) -> dict:
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError("The event is not valid JSON.", code="invalid_json") from None
    if not isinstance(message, dict):
        raise ProtocolError("An event must be a JSON object with a 'type'.", code="invalid_json")
    if not isinstance(message.get("type"), str):
        raise ProtocolError("Missing required parameter: 'type'.", code="missing_required_parameter", param="type")
    if message["type"] not in CLIENT_EVENTS:
        raise ProtocolError(
            f"Invalid value: {message['type'][:80]!r}. A transcription session accepts: {', '.join(CLIENT_EVENTS)}.",
            param="type",
        )
    return message


def decode_audio(message: dict) -> bytes:
    audio = message.get("audio")
    if not isinstance(audio, str):
        raise ProtocolError("Missing required parameter: 'audio'.", code="missing_required_parameter", param="audio")
    try:
        return base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("Invalid 'audio': expected base64-encoded PCM16 audio.", param="audio") from None


def _dict(value, param: str) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError(f"Invalid type for '{param}': expected an object.", code="invalid_type", param=param)
    return value


def _number(value, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ProtocolError(f"Invalid '{param}': expected a number from {low:g} to {high:g}.", param=param)
    return value


def _transcription(value, config: RealtimeConfig, param: str, tenant) -> dict:
    if value is None:
        raise ProtocolError("Transcription cannot be turned off in a transcription session.", param=param)
    value = _dict(value, param)
    changes: dict = {}
    if value.get("model") is not None:
        if value["model"] not in MODELS:
            raise ProtocolError(
                f"Unknown model {str(value['model'])[:80]!r}; use one of: {', '.join(MODELS)}.", param=f"{param}.model"
            )
        changes["model"] = value["model"]
    if "language" in value:
        language = value["language"] or ""
        if language and language not in LANGUAGES:
            supported = ", ".join(LANGUAGES[1:])
            raise ProtocolError(
                f"Unsupported language {str(language)[:20]!r}; use {supported}.", param=f"{param}.language"
            )
        changes["language"] = language
    if "prompt" in value:  # words of the prompt become hotwords (where the model uses them)
        prompt = value["prompt"] or ""
        if not isinstance(prompt, str):
            raise ProtocolError("Invalid 'prompt': expected a string.", code="invalid_type", param=f"{param}.prompt")
        from portal.errors import DomainError

        words = [w for w in prompt.replace(",", " ").replace("，", " ").replace("\n", " ").split(" ") if w.strip()]
        try:
            normalized = options_normalize({"hotwords": words}, tenant=tenant)
        except DomainError as exc:
            raise ProtocolError(exc.message, param=f"{param}.prompt") from None
        changes.update(prompt=prompt, hotwords=tuple(normalized["hotwords"]))
    return changes


def _turn_detection(value, param: str) -> dict:
    if value is None:
        return {"vad": False}
    value = _dict(value, param)
    if value.get("type", "server_vad") != "server_vad":
        raise ProtocolError(
            f"Unsupported turn_detection type {str(value.get('type'))[:40]!r}; use 'server_vad' or null.",
            param=f"{param}.type",
        )
    changes: dict = {"vad": True}
    if value.get("threshold") is not None:
        changes["threshold"] = float(_number(value["threshold"], f"{param}.threshold", 0.05, 0.95))
    if value.get("prefix_padding_ms") is not None:
        changes["prefix_padding_ms"] = int(_number(value["prefix_padding_ms"], f"{param}.prefix_padding_ms", 0, 1000))
    if value.get("silence_duration_ms") is not None:
        silence = _number(value["silence_duration_ms"], f"{param}.silence_duration_ms", 100, 5000)
        changes["silence_duration_ms"] = int(silence)
    return changes


def _include(value, param: str) -> None:
    """Logprobs are not produced here; a request for them is accepted (clients send it by default) and the
    session it answers says `include: []` (what is in effect), as it says `noise_reduction: null`."""
    if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ProtocolError(f"Invalid '{param}': expected a list of strings.", code="invalid_type", param=param)


def apply_update(message: dict, config: RealtimeConfig, *, tenant) -> RealtimeConfig:
    """The configuration after a `session.update` (GA) or `transcription_session.update` (beta)."""
    session = _dict(message.get("session"), "session")
    changes: dict = {}
    if message["type"] == "transcription_session.update":
        if session.get("input_audio_format", "pcm16") != "pcm16":
            raise ProtocolError(
                "Only input_audio_format 'pcm16' (24 kHz) is supported.", param="session.input_audio_format"
            )
        if "input_audio_transcription" in session:
            changes.update(
                _transcription(
                    session["input_audio_transcription"], config, "session.input_audio_transcription", tenant
                )
            )
        if "turn_detection" in session:
            changes.update(_turn_detection(session["turn_detection"], "session.turn_detection"))
        _include(session.get("include"), "session.include")
        return replace(config, **changes)
    if session.get("type", "transcription") != "transcription":
        raise ProtocolError(
            "This server serves transcription sessions only: session.type must be 'transcription' "
            "(connect with ?intent=transcription).",
            param="session.type",
        )
    _include(session.get("include"), "session.include")
    audio_input = _dict(_dict(session.get("audio") or {}, "session.audio").get("input") or {}, "session.audio.input")
    if audio_input.get("format") is not None:
        fmt = _dict(audio_input["format"], "session.audio.input.format")
        if fmt.get("type", "audio/pcm") != "audio/pcm" or fmt.get("rate", SAMPLE_RATE_IN) != SAMPLE_RATE_IN:
            raise ProtocolError(
                "Only audio/pcm at 24000 Hz (PCM16 mono) is supported.", param="session.audio.input.format"
            )
    if "transcription" in audio_input:
        changes.update(
            _transcription(audio_input["transcription"], config, "session.audio.input.transcription", tenant)
        )
    if "turn_detection" in audio_input:
        changes.update(_turn_detection(audio_input["turn_detection"], "session.audio.input.turn_detection"))
    return replace(config, **changes)


def recognizer_settings(config: RealtimeConfig) -> StreamSettings:
    options = TranscribeOptions(language=config.language or "auto", hotwords=config.hotwords)
    return StreamSettings(
        partials=config.vad,
        segmented=config.vad,
        offline_finals=True,
        end_silence_ms=config.silence_duration_ms,
        options=options,
        vad_events=True,
        vad_threshold=config.threshold,
        vad_pad_ms=config.prefix_padding_ms,
    )


def _turn(config: RealtimeConfig) -> dict | None:
    if not config.vad:
        return None
    return {
        "type": "server_vad",
        "threshold": config.threshold,
        "prefix_padding_ms": config.prefix_padding_ms,
        "silence_duration_ms": config.silence_duration_ms,
    }


def _transcription_out(config: RealtimeConfig) -> dict:
    return {"model": config.model, "language": config.language or None, "prompt": config.prompt}


def session_object(config: RealtimeConfig, session_id: str) -> dict:
    """The session as the server reports it (GA or beta shape, as the client spoke)."""
    if config.beta:
        return {
            "id": session_id,
            "object": "realtime.transcription_session",
            "input_audio_format": "pcm16",
            "input_audio_transcription": _transcription_out(config),
            "turn_detection": _turn(config),
            "input_audio_noise_reduction": None,
            "include": [],
            "modalities": ["text"],
        }
    return {
        "type": "transcription",
        "id": session_id,
        "object": "realtime.transcription_session",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": SAMPLE_RATE_IN},
                "transcription": _transcription_out(config),
                "noise_reduction": None,
                "turn_detection": _turn(config),
            }
        },
        "include": [],
    }


def usage(tokens: int) -> dict:
    """Billing counts output tokens only (token rule v1); audio input is not charged."""
    return {"type": "tokens", "input_tokens": 0, "output_tokens": tokens, "total_tokens": tokens}
