"""A job's receipt: exactly which units of the delivered text were billed."""

from billing import tokens as token_rule


def receipt_units(*, job) -> list[str]:
    return token_rule.tokenize(job.text or "")


def receipt_build(*, job) -> dict:
    units = receipt_units(job=job)
    return {
        "id": str(job.pk),
        "rule": job.token_rule or token_rule.RULE_VERSION,
        "tokens": len(units),
        "held_tokens": job.held_tokens,
        "billed_tokens": job.billed_tokens or 0,
        "cache_hit": job.cache_hit,
        "units": units,
        "explanation": (
            "Billed tokens = min(tokens in the delivered text, tokens held at submission). "
            "Each CJK character is one token; each run of letters/digits is one token; "
            "whitespace, punctuation, symbols and emoji are free."
        ),
    }
