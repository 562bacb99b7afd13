"""funasr/torch process helpers shared by the engines: import funasr quietly, pick the device, trim the heap."""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path


def looks_like_path(model: str) -> bool:
    """A local directory reference rather than a hub id ('owner/name' has exactly one slash)."""
    if model.startswith(("/", ".", "~")) or (os.altsep and os.altsep in model):
        return True
    return model.count(os.sep) > 1 or (os.sep in model and Path(model).exists())


def model_ref(model: str, *, missing: str) -> str:
    """A hub id as given, or a local directory expanded; `missing` (the rest of the message) when it is absent."""
    model = str(model)
    if not looks_like_path(model):
        return model
    path = Path(model).expanduser()
    if not path.is_dir():
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"Model directory {str(path)!r} does not exist. {missing}")
    return str(path)


def import_funasr():
    """Import funasr (6-9 s) and undo the INFO handler/level it installs on the root logger; return AutoModel.
    Its fbank features are computed by transcription.engines.fbank from then on (same numbers, less CPU)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import funasr  # noqa: F401
        from funasr.auto.auto_model import AutoModel
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    from transcription.engines.fbank import install

    install()
    return AutoModel


def resolve_device(requested: str) -> str:
    """`auto` picks cuda, then mps, then cpu; an explicit device is passed through."""
    requested = (requested or "auto").strip()
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda:0"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim
