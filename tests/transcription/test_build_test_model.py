"""`manage.py build_test_model`: tiny random models of each architecture load offline and run."""

from __future__ import annotations

import re

import numpy as np
import pytest
from django.core.management import call_command

from transcription.engines.base import TranscribeOptions
from transcription.engines.funasr import FunASREngine, import_funasr
from transcription.pipeline import recognize_samples

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["sensevoice", "paraformer", "seaco"])
def test_each_kind_builds_loads_and_generates(tmp_path, kind):
    call_command("build_test_model", str(tmp_path / kind), kind=kind, seed=0)
    auto_model = import_funasr()

    model = auto_model(model=str(tmp_path / kind), device="cpu", ncpu=1, disable_update=True, disable_pbar=True)
    audio = (np.random.default_rng(0).standard_normal(16_000) * 0.1).astype(np.float32)
    extra = {"hotword": "公园 散步"} if kind == "seaco" else {}
    result = model.generate(input=audio, key=["one_second"], **extra)

    assert isinstance(result, list) and len(result) == 1
    assert isinstance(result[0]["text"], str)


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tmp_path):
    call_command("build_test_model", str(tmp_path / "a"), kind="sensevoice", seed=0)
    call_command("build_test_model", str(tmp_path / "b"), kind="sensevoice", seed=0)
    call_command("build_test_model", str(tmp_path / "c"), kind="sensevoice", seed=1)

    for name in ("model.pt", "tokenizer.bpe.model", "am.mvn", "config.yaml", "configuration.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "model.pt").read_bytes() != (tmp_path / "c" / "model.pt").read_bytes()


def test_engine_passes_hotwords_to_seaco(tmp_path):
    call_command("build_test_model", str(tmp_path / "seaco"), kind="seaco", seed=0)
    engine = FunASREngine(model=str(tmp_path / "seaco"), device="cpu", threads=1)
    audio = (np.random.default_rng(1).standard_normal(2 * 16_000) * 0.1).astype(np.float32)

    plain = transcribe(engine, audio, options=TranscribeOptions(vad=False))
    biased = transcribe(engine, audio, options=TranscribeOptions(vad=False, hotwords=("公园", "散步")))

    assert engine.supports_hotwords is True
    assert not biased.warnings
    assert not re.search(r"[\u4e00-\u9fff] [\u4e00-\u9fff]", plain.text + biased.text)  # SeACo's spaces removed
    assert "<|" not in plain.text and "<|" not in biased.text
    engine.close()


def transcribe(engine, audio, *, options, progress=None):
    """The one recognition path (VAD, windows, engine, language vote) on audio in memory."""
    return recognize_samples(audio, engine=engine, options=options, progress=progress)
