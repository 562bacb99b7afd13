"""What the OpenAI endpoint accepts: model names, languages, formats and options, each checked once.

Every model name the official SDK lists (openai.types.AudioModel) is either served, as an alias of the
model this deployment runs, or refused with a message that says why. Options the model cannot honour
(word timestamps on a model without them, logprobs) are refused, never silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from portal.errors import InvalidRequest
from transcription.engines import engine_model_name, engine_supports_hotwords, engine_supports_word_timestamps

# OpenAI's names, each an alias of the deployed model (the same engine answers all of them).
OPENAI_ALIASES = (
    "whisper-1",
    "gpt-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
)
OWN_ALIASES = ("sensevoice", "tingxie-default")
# Dated snapshots of the gpt-4o families (e.g. gpt-4o-transcribe-2025-03-20) are aliases too.
_DATED = re.compile(r"^(gpt-transcribe|gpt-4o-transcribe|gpt-4o-mini-transcribe)-\d{4}-\d{2}-\d{2}$")
REFUSED_MODELS: dict[str, str] = {}
DIARIZE_MODEL = "gpt-4o-transcribe-diarize"  # segments carry speakers (our diarization step)
# Models OpenAI bills by audio duration: their json usage is {"type": "duration"} (the SDK's UsageDuration).
DURATION_USAGE_MODELS = ("whisper-1",)

# OpenAI names languages in responses by their English name, lowercase, as Whisper does.
LANGUAGE_NAMES = {"zh": "chinese", "en": "english", "yue": "cantonese", "ja": "japanese", "ko": "korean"}
LANGUAGE_CODES = {"": "auto", "auto": "auto", **{code: code for code in LANGUAGE_NAMES}}

FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
NOT_YET_FORMATS: dict[str, str] = {}
STREAM_FORMATS = ("json", "text")
GRANULARITIES = ("segment", "word")
_PROMPT_SPLIT = re.compile(r"[\s,，、;；。.!?！？]+")


def deployed_model_id() -> str:
    """The configured model as clients see it: a hub id as is, a local directory by its name (not its path)."""
    name = engine_model_name()
    return PurePath(name).name if name.startswith(("/", "~", ".")) else name


def served_models() -> list[str]:
    """Every model id this deployment answers to: OpenAI's names, ours, and the configured model itself."""
    return list(dict.fromkeys([*OPENAI_ALIASES, DIARIZE_MODEL, *OWN_ALIASES, deployed_model_id()]))


def model_resolve(name: str) -> str:
    """The model name as asked (it is served), or a 400/404 that says what to use instead."""
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("Give the model, e.g. model=gpt-4o-transcribe.", param="model", code="missing_model")
    if name in REFUSED_MODELS:
        raise InvalidRequest(REFUSED_MODELS[name], param="model", code="model_not_supported")
    if name in served_models() or _DATED.match(name):
        return name
    raise InvalidRequest(
        f"The model {name!r} does not exist here; this deployment serves: {', '.join(served_models())}.",
        param="model",
        code="model_not_found",
    )


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def prompt_hotwords(prompt: str) -> str:
    """The prompt's words and names as hotwords (one per line) where the model supports hotwords, else ''.

    OpenAI's prompt is a soft hint; the closest thing this engine has is hotword biasing (SeACo-Paraformer,
    Fun-ASR-Nano). A model without hotwords does not use the prompt at all, as a hint may be ignored.
    """
    if not prompt.strip() or not engine_supports_hotwords():
        return ""
    words = [w for w in _PROMPT_SPLIT.split(prompt) if w]
    return "\n".join(dict.fromkeys(words))


@dataclass(frozen=True)
class OpenAIRequest:
    model: str
    language: str  # our code ("auto", "zh", ...)
    prompt: str
    response_format: str
    stream: bool
    granularities: tuple[str, ...]

    @property
    def usage_by_duration(self) -> bool:
        return self.model in DURATION_USAGE_MODELS

    @property
    def diarize(self) -> bool:
        return self.model == DIARIZE_MODEL

    @property
    def words(self) -> bool:
        return "word" in self.granularities

    @property
    def segments(self) -> bool:
        """verbose_json's segments: the default granularity, or asked for beside words."""
        return self.response_format == "verbose_json" and (not self.granularities or "segment" in self.granularities)

    def job_options(self) -> dict:
        """What the job must produce beyond text for this answer (word times, the segments' token scores)."""
        return {
            **({"word_timestamps": True} if self.words else {}),
            **({"scores": True} if self.segments else {}),
        }


def _one(data, name: str, default: str = "") -> str:
    value = data.get(name, default)
    return value if isinstance(value, str) else default


def _many(data, name: str) -> list[str]:
    """A list form field as the SDKs send it (`name[]`, repeated) or as curl users do (`name`)."""
    getlist = getattr(data, "getlist", None)
    if getlist is None:
        value = data.get(name)
        return list(value) if isinstance(value, list | tuple) else ([value] if value else [])
    return [v for v in [*getlist(f"{name}[]"), *getlist(name)] if v]


def _flag(data, name: str) -> bool:
    value = _one(data, name, "false").strip().lower()
    if value not in ("true", "false", "1", "0", ""):
        raise InvalidRequest(f"{name} must be true or false (got {value!r}).", param=name)
    return value in ("true", "1")


def openai_request_parse(data) -> OpenAIRequest:
    """Check the multipart fields of POST /v1/audio/transcriptions (the file is checked on submit)."""
    model = model_resolve(_one(data, "model"))
    raw_language = _one(data, "language").strip().lower()
    if raw_language not in LANGUAGE_CODES:
        raise InvalidRequest(
            f"Unsupported language {raw_language!r}; use one of: {', '.join(LANGUAGE_NAMES)} (ISO-639), "
            "or omit it to detect the language.",
            param="language",
            code="unsupported_language",
        )
    fmt = _one(data, "response_format", "json").strip() or "json"
    if fmt in NOT_YET_FORMATS:
        raise InvalidRequest(NOT_YET_FORMATS[fmt], param="response_format", code="unsupported_response_format")
    if fmt not in FORMATS:
        raise InvalidRequest(
            f"response_format must be one of: {', '.join(FORMATS)} (got {fmt!r}).", param="response_format"
        )
    stream = _flag(data, "stream")
    if stream and fmt not in STREAM_FORMATS:
        raise InvalidRequest(
            f"stream=true answers text deltas; use response_format json or text with it (got {fmt}).",
            param="stream",
        )
    granularities = tuple(dict.fromkeys(_many(data, "timestamp_granularities")))
    unknown = [g for g in granularities if g not in GRANULARITIES]
    if unknown:
        raise InvalidRequest(
            f"timestamp_granularities may hold segment and word (got {unknown[0]!r}).", param="timestamp_granularities"
        )
    if granularities and fmt != "verbose_json":
        raise InvalidRequest(
            "timestamp_granularities needs response_format=verbose_json.", param="timestamp_granularities"
        )
    if "word" in granularities and not engine_supports_word_timestamps():
        raise InvalidRequest(
            f"Word timestamps are not produced by the model this deployment runs ({deployed_model_id()}); ask for "
            "segment timestamps (timestamp_granularities[]=segment).",
            param="timestamp_granularities",
            code="unsupported_value",
        )
    include = _many(data, "include")
    if include:
        raise InvalidRequest(
            f"include={include[0]!r} is not available: the model this deployment runs does not produce "
            "token log probabilities.",
            param="include",
            code="unsupported_value",
        )
    for name in ("known_speaker_names", "known_speaker_references"):
        if _many(data, name):
            raise InvalidRequest(
                "Known speakers need speaker diarization, which this deployment does not offer yet.", param=name
            )
    temperature = _one(data, "temperature").strip()
    if temperature:
        try:
            value = float(temperature)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise InvalidRequest("temperature must be a number between 0 and 1.", param="temperature")
    if fmt == "diarized_json" and model != DIARIZE_MODEL:
        raise InvalidRequest(f"response_format diarized_json needs model={DIARIZE_MODEL}.", param="response_format")
    return OpenAIRequest(
        model=model,
        language=LANGUAGE_CODES[raw_language],
        prompt=_one(data, "prompt"),
        response_format=fmt,
        stream=stream,
        granularities=granularities,
    )
