"""Per-model hold rates come from the environment (MAX_TOKENS_PER_SECOND_BY_MODEL)."""

from __future__ import annotations

import pytest

from billing.services import hold_amount
from portal.env import rates_by_name


def test_rates_parse_model_ids_with_slashes():
    assert rates_by_name("iic/SenseVoiceSmall=8.5, FunAudioLLM/Fun-ASR-Nano-2512=10") == {
        "iic/SenseVoiceSmall": 8.5,
        "FunAudioLLM/Fun-ASR-Nano-2512": 10.0,
    }
    assert rates_by_name("") == {}


def test_a_malformed_rate_is_refused_at_start_up():
    with pytest.raises(ValueError, match="name=rate"):
        rates_by_name("iic/SenseVoiceSmall")


def test_hold_uses_the_models_rate_and_the_default_otherwise(settings):
    settings.MAX_TOKENS_PER_SECOND = 8.0
    settings.MAX_TOKENS_PER_SECOND_BY_MODEL = {"big/model": 12.0}
    assert hold_amount(duration_s=10, model="big/model") == 120
    assert hold_amount(duration_s=10, model="other") == 80
