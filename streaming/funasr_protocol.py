"""FunASR's runtime WebSocket protocol, as its stock clients speak it (Python, HTML5, Java, C#, C++, Xiaozhi).

Only the translation between wire messages and the protocol-agnostic recognizer (transcription.streaming):
the first text message configures the stream, binary frames carry PCM16LE, `{"is_speaking": false}` (or
`is_finished` / `is_end`) ends an utterance. Results are `{"mode", "text", "wav_name", "is_final"}`: `online` and
`2pass-online` texts are incremental; `2pass-offline` is the corrected sentence at each endpoint; `offline`
answers exactly once per utterance with is_final true. Sources: FunASR runtime/docs/websocket_protocol.md,
runtime/python/websocket/funasr_wss_client.py, runtime/html5/static/main.js; Xiaozhi's fun_server provider.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from django.conf import settings

from transcription.engines.base import TranscribeOptions
from transcription.services.submit import options_normalize
from transcription.streaming import StreamEvent, StreamSettings

MODES = ("offline", "online", "2pass")
SAMPLE_RATES = (16000, 8000)


class ProtocolError(Exception):
    """The client broke the protocol; the message says how (sent back, then the socket is closed)."""


@dataclass(frozen=True)
class FunasrConfig:
    mode: str = "2pass"
    wav_name: str = "demo"
    chunk_size: tuple[int, int, int] = (5, 10, 5)
    encoder_look_back: int = 4
    decoder_look_back: int = 1
    audio_fs: int = 16000
    itn: bool = True
    hotwords: tuple[str, ...] = ()
    end_silence_ms: int = 500


def _chunk_size(value) -> tuple[int, int, int]:
    if isinstance(value, str):  # the C# client sends "5,10,5"
        value = [part for part in value.replace(" ", "").split(",") if part]
    try:
        parts = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ProtocolError('chunk_size must be three integers, e.g. [5, 10, 5] or "5,10,5".') from None
    if len(parts) != 3 or not all(0 <= p <= 100 for p in parts) or parts[1] < 1:
        raise ProtocolError("chunk_size must be three integers from 0 to 100 with a stride of at least 1.")
    return parts


def _hotwords(value) -> list[str]:
    """A JSON object string {"word": weight} (the Python client), a comma/space list, or a JSON list."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [w for w in value.replace(",", " ").replace("\n", " ").split(" ") if w.strip()]
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, list):
        return [str(w) for w in value]
    if isinstance(value, str):
        return _hotwords(value)
    raise ProtocolError("hotwords must be a JSON object string, a list, or a comma separated string.")


def _flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ProtocolError(f"{name} must be true or false.")


def parse_message(text: str) -> dict:
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError("Text messages must be JSON objects (the stream configuration or is_speaking).") from None
    if not isinstance(message, dict):
        raise ProtocolError("Text messages must be JSON objects (the stream configuration or is_speaking).")
    return message


def ends_utterance(message: dict) -> bool:
    return message.get("is_speaking") is False or bool(message.get("is_finished")) or bool(message.get("is_end"))


def apply_config(message: dict, current: FunasrConfig | None, *, tenant=None, end_silence_ms: int) -> FunasrConfig:
    """The configuration after this message (fields absent keep their value)."""
    config = current or FunasrConfig(end_silence_ms=end_silence_ms)
    changes: dict = {}
    if "mode" in message:
        if message["mode"] not in MODES:
            raise ProtocolError(f"mode must be one of {', '.join(MODES)} (got {message['mode']!r}).")
        if current is not None and message["mode"] != current.mode:
            raise ProtocolError("The mode cannot change within a connection; open a new one.")
        changes["mode"] = message["mode"]
    if "wav_name" in message:
        changes["wav_name"] = str(message["wav_name"])[:255]
    if "chunk_size" in message:
        changes["chunk_size"] = _chunk_size(message["chunk_size"])
    for key, attr in (
        ("encoder_chunk_look_back", "encoder_look_back"),
        ("decoder_chunk_look_back", "decoder_look_back"),
    ):
        if key in message:
            try:
                changes[attr] = max(0, min(16, int(message[key])))
            except (TypeError, ValueError):
                raise ProtocolError(f"{key} must be an integer.") from None
    if "audio_fs" in message:
        try:
            fs = int(message["audio_fs"])
        except (TypeError, ValueError):
            fs = 0
        if fs not in SAMPLE_RATES:
            raise ProtocolError(f"audio_fs must be 16000 or 8000 (got {message['audio_fs']!r}).")
        changes["audio_fs"] = fs
    if message.get("wav_format", "pcm") not in ("pcm", "PCM"):
        raise ProtocolError('Only wav_format "pcm" (raw PCM16LE mono) is supported on streams.')
    if "itn" in message:
        changes["itn"] = _flag(message["itn"], "itn")
    if "hotwords" in message:
        from portal.errors import DomainError

        try:
            normalized = options_normalize({"hotwords": _hotwords(message["hotwords"])}, tenant=tenant)
        except DomainError as exc:
            raise ProtocolError(exc.message) from None
        changes["hotwords"] = tuple(normalized["hotwords"])
    if "max_end_silence_time" in message:  # per stream (funasr's VAD option name); never global
        try:
            changes["end_silence_ms"] = max(100, min(5000, int(message["max_end_silence_time"])))
        except (TypeError, ValueError):
            raise ProtocolError("max_end_silence_time must be milliseconds.") from None
    return replace(config, **changes)


def recognizer_settings(config: FunasrConfig) -> StreamSettings:
    # Finals carry `timestamp` as FunASR's servers send it, where the offline model gives word times.
    words = settings.STREAM_WORD_TIMESTAMPS and config.mode != "online"
    options = TranscribeOptions(itn=config.itn, hotwords=config.hotwords, word_timestamps=words)
    common = {
        "end_silence_ms": config.end_silence_ms,
        "chunk_size": config.chunk_size,
        "encoder_look_back": config.encoder_look_back,
        "decoder_look_back": config.decoder_look_back,
        "options": options,
    }
    if config.mode == "offline":
        return StreamSettings(partials=False, segmented=False, **common)
    if config.mode == "online":
        return StreamSettings(partials=True, segmented=True, offline_finals=False, **common)
    return StreamSettings(partials=True, segmented=True, offline_finals=True, **common)


def result_message(config: FunasrConfig, event: StreamEvent, *, last: bool, offset_s: float = 0.0) -> dict | None:
    """The wire message for an event (`last`: the final answering is_speaking false), or None to send nothing.

    Offline finals with word times carry `timestamp` as FunASR's servers shape it: a JSON string of
    [start_ms, end_ms] pairs, here on the session's timeline (`offset_s`: where the recognizer's audio starts).
    """
    if config.mode == "offline":
        mode, text, is_final = "offline", event.text, True
    elif config.mode == "online":
        mode = "online"
        text = event.text if event.kind == "partial" else event.tail
        is_final = last
        if not text and not last:
            return None
    elif event.kind == "partial":
        mode, text, is_final = "2pass-online", event.text, False
    else:
        mode, text, is_final = "2pass-offline", event.text, True
    message = {"mode": mode, "text": text, "wav_name": config.wav_name, "is_final": is_final}
    if event.kind == "final" and event.words and text:
        pairs = [[round((offset_s + w.start) * 1000), round((offset_s + w.end) * 1000)] for w in event.words]
        message["timestamp"] = json.dumps(pairs, separators=(",", ":"))
    return message


def hotwords_warning(config: FunasrConfig, *, offline_supports: bool) -> str:
    """The notice, sent once per stream on a result (`warning`: stock clients ignore extra keys), that the
    hotwords asked for are not used ('' when there is nothing to say). Partials never use them (the streaming
    Paraformer has no bias), so `online` mode never does; offline and 2pass finals do where the model does."""
    if not config.hotwords:
        return ""
    if config.mode == "online":
        return "hotwords_ignored: online mode's streaming model does not use hotwords; they were not applied."
    if offline_supports:
        return ""
    return "hotwords_ignored: the offline model that writes the finals does not use hotwords; they were not applied."


def end_ack(config: FunasrConfig) -> dict:
    """The acknowledgement the newest Python client waits for after {"is_speaking": false, "is_end": true}."""
    return {"mode": config.mode, "wav_name": config.wav_name, "is_final": True, "is_end": True}


def error_message(config: FunasrConfig | None, code: str, message: str) -> dict:
    """An error in the result shape: clients that wait for is_final/is_end stop waiting and see `error`."""
    config = config or FunasrConfig()
    return {
        "mode": config.mode,
        "text": "",
        "wav_name": config.wav_name,
        "is_final": False,
        "is_end": True,
        "error": f"{code}: {message}",
    }
