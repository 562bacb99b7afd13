"""A transcription's receipt: exactly which units of the delivered text were billed."""

from billing import tokens as token_rule


def receipt_units(*, transcription) -> list[str]:
    return token_rule.tokenize(transcription.text or "")


def receipt_build(*, transcription) -> dict:
    units = receipt_units(transcription=transcription)
    return {
        "id": str(transcription.pk),
        "rule": transcription.token_rule or token_rule.RULE_VERSION,
        "tokens": len(units),
        "held_tokens": transcription.held_tokens,
        "billed_tokens": transcription.billed_tokens or 0,
        "cache_hit": transcription.cache_hit,
        "units": units,
        "explanation": (
            "Billed tokens = min(tokens in the delivered text, tokens held at submission). "
            "Each CJK character is one token; each run of letters/digits is one token; "
            "whitespace, punctuation, symbols and emoji are free."
        ),
    }
