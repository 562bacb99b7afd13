"""Objects that live as long as the process, out of the garbage collector's reach (issue 13).

Python's full (oldest-generation) collection walks every tracked object of the process. In the web process
that is Django, DRF, the URL conf, the views and their serializers (a few hundred thousand objects): under
load one full collection held the process (its GIL: every request in flight) for ~75 ms. In an ASR worker
it is the model and torch's and funasr's modules: ~500 thousand objects, ~190 ms per full collection with
the tiny test model, a stall of the whole batch; in a stream worker, a stall of every live stream. Frozen
once start-up is over (gc.freeze), they are never walked again; a full collection walks only what was made
since, and still frees the cycles among those.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> int:
    """Collect what start-up left behind, then freeze what is left. The number of objects frozen in all."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def freeze_web_start_up() -> int:
    """In the web process, once its application is built: first import the URL conf (the views, serializers
    and what they import, otherwise imported by the first request)."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - the import is the point
    return freeze_long_lived()
