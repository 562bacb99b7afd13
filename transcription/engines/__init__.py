"""Engines by alias (settings.ASR_ENGINES), each built once per process on first use."""

from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from transcription.engines.base import BaseEngine, BaseSpeakerEngine

_lock = threading.Lock()
_engines: dict[str, BaseEngine] = {}
_speaker_engines: dict[str, BaseSpeakerEngine] = {}


def get_engine(alias: str = "default") -> BaseEngine:
    engine = _engines.get(alias)
    if engine is not None:
        return engine
    with _lock:
        engine = _engines.get(alias)
        if engine is None:
            config = settings.ASR_ENGINES[alias]
            engine = import_string(config["BACKEND"])(**config.get("OPTIONS", {}))
            _engines[alias] = engine
        return engine


def get_speaker_engine(alias: str = "default") -> BaseSpeakerEngine:
    """The speaker-embedding engine (settings.SPEAKER_ENGINES), built once per process like the ASR engine."""
    engine = _speaker_engines.get(alias)
    if engine is not None:
        return engine
    with _lock:
        engine = _speaker_engines.get(alias)
        if engine is None:
            config = settings.SPEAKER_ENGINES[alias]
            engine = import_string(config["BACKEND"])(**config.get("OPTIONS", {}))
            _speaker_engines[alias] = engine
        return engine


def engine_warm_up(alias: str = "default") -> str:
    """Build the engine and load its model now (each ASR worker process at cluster start); says what loaded.

    Raises EngineUnavailable or ImproperlyConfigured with one line naming the cause and what to set.
    """
    engine = get_engine(alias)
    engine.load()
    device = getattr(engine, "device", "")
    return f"model {engine.name}" + (f" on {device}" if device else "")


def engine_model_name(alias: str = "default") -> str:
    """The model identifier used for cache keys, without loading anything."""
    return str(settings.ASR_ENGINES[alias].get("OPTIONS", {}).get("model", ""))


def engine_supports_hotwords(alias: str = "default") -> bool:
    """Whether the configured model uses hotwords, without loading it (False if it cannot be configured)."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        return bool(getattr(get_engine(alias), "supports_hotwords", False))
    except ImproperlyConfigured:
        return False


def engine_supports_word_timestamps(alias: str = "default") -> bool:
    """Whether the configured model gives word timestamps, without loading it (False if it cannot be configured)."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        return bool(getattr(get_engine(alias), "supports_word_timestamps", False))
    except ImproperlyConfigured:
        return False


def reset_engines() -> None:
    with _lock:
        for engine in [*_engines.values(), *_speaker_engines.values()]:
            engine.close()
        _engines.clear()
        _speaker_engines.clear()
