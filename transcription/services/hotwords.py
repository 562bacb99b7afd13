"""Hotwords: saved lists and the one rule for merging a list with typed words."""

from __future__ import annotations

from portal.errors import InvalidRequest
from transcription.models import HotwordList
from transcription.selectors import hotword_list_get


def _words(value) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        value = value.splitlines()
    return [w.strip() for w in value if isinstance(w, str) and w.strip()]


def hotwords_merge(*, tenant, hotwords=None, list_id=None) -> list[str]:
    """The saved list's words first (if `list_id` names one of the tenant's lists), then the typed ones,
    each once, in that order: the API and the dashboard both submit through this, so equal inputs give
    equal options (and hit the same cache entries)."""
    saved: list[str] = []
    if list_id not in (None, ""):
        if tenant is None:
            raise InvalidRequest("A saved hotword list needs a tenant.")
        saved = hotword_list_get(tenant=tenant, list_id=list_id).word_list
    return list(dict.fromkeys([*saved, *_words(hotwords)]))


def hotword_list_save(*, tenant, name: str, words: str, hotword_list: HotwordList | None = None) -> HotwordList:
    from transcription.services.submit import options_normalize

    words_list = options_normalize({"hotwords": words})["hotwords"]
    if not name.strip():
        raise InvalidRequest("Give the hotword list a name.")
    obj = hotword_list or HotwordList(tenant=tenant)
    obj.name = name.strip()[:100]
    obj.words = "\n".join(words_list)
    obj.save()
    return obj
