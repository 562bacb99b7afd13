"""The one environment reader for settings (django-environ)."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")


def rates_by_name(text: str) -> dict[str, float]:
    """ "name=rate,name2=rate2" (names may hold '/' and '='; the last '=' splits) -> {name: rate}."""
    rates: dict[str, float] = {}
    for item in (text or "").split(","):
        name, sep, rate = item.rpartition("=")
        if not item.strip():
            continue
        if not sep or not name.strip():
            raise ValueError(f"Expected name=rate, got {item.strip()!r}")
        rates[name.strip()] = float(rate)
    return rates
