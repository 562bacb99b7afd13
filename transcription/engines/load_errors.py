"""One clear line for a model that cannot load: the cause (path, hub, files) and what to set.

funasr reports a failed hub download by printing it and then failing later with an unrelated "model is not
registered" error listing 50 model names; the real cause is in what it printed. This reads both.
"""

from __future__ import annotations

import re

_NETWORK = re.compile(
    r"Connection failed|NameResolution|Name or service not known|Temporary failure in name resolution|"
    r"Max retries exceeded|NetworkError|ConnectTimeout|Connection refused|Network is unreachable|timed out",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(r"\b404\b|not exist|NotExist|not found|Repo .* does not", re.IGNORECASE)
_HOST = re.compile(r"host='([^']+)'")


def _first_line(text: str, limit: int = 300) -> str:
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line[:limit]


def load_failure_message(*, model: str, local: bool, device: str, exc: BaseException, output: str) -> str:
    """The operator's line for a failed load: what went wrong, then which setting fixes it."""
    said = f"{output}\n{exc}\n{exc.__cause__ or ''}"
    prefix = f"ASR model {model!r} could not be loaded on {device}"
    if local:
        return (
            f"{prefix}: the directory is not a model funasr can load ({_first_line(str(exc))}). "
            "Set ASR_MODEL to a directory holding a funasr model (config.yaml, model.pt, tokens) "
            "or to a hub id such as 'iic/SenseVoiceSmall'."
        )
    if _NETWORK.search(said):
        host = _HOST.search(said)
        where = host.group(1) if host else "the model hub"
        return (
            f"{prefix}: {where} is unreachable from this worker. Set ASR_MODEL to a local model directory "
            "(download it where the hub is reachable, e.g. `modelscope download --model "
            f"{model} --local_dir DIR`, and copy DIR here), or let this machine reach {where}."
        )
    if _NOT_FOUND.search(said):
        return f"{prefix}: the hub has no model {model!r}. Set ASR_MODEL to a hub id that exists or a local directory."
    return f"{prefix}: {_first_line(str(exc))}. Set ASR_MODEL to a local model directory or a reachable hub id."
