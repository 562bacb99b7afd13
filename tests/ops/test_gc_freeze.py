"""portal.gc_freeze: what start-up made is frozen in the web process, so that a full collection under load walks
only what requests made since (issue 13: ~75 ms stalls of the whole web process before). In a fresh Python
process each: freezing the test process itself would keep its garbage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

WEB = """
import gc, json, time
import portal.asgi  # the web process's application, as uvicorn imports it
frozen, left = gc.get_freeze_count(), len(gc.get_objects())
started = time.perf_counter()
gc.collect()
collect_ms = (time.perf_counter() - started) * 1000
gc.unfreeze()
started = time.perf_counter()
gc.collect()
unfrozen_ms = (time.perf_counter() - started) * 1000
print(json.dumps({"frozen": frozen, "left": left, "collect_ms": collect_ms, "unfrozen_ms": unfrozen_ms}))
"""

GARBAGE = """
import gc, json, weakref
from portal.gc_freeze import freeze_long_lived

class Node:
    pass

gc.disable()  # the cycle must still be there when freeze_long_lived() starts
a, b = Node(), Node()
a.other, b.other = b, a
dead = weakref.ref(a)
del a, b
frozen = freeze_long_lived()
print(json.dumps({"frozen": frozen, "cycle_freed": dead() is None}))
"""


def _run(code: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "TINGXIE_PROCESS": "web"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_web_process_freezes_its_start_up_objects():
    result = _run(WEB)
    assert result["frozen"] > 50_000, result  # Django, DRF, the URL conf and the views
    assert result["left"] < result["frozen"] / 20, result  # a full collection has little left to walk
    assert result["collect_ms"] < result["unfrozen_ms"], result


def test_garbage_left_by_start_up_is_freed_before_the_freeze():
    result = _run(GARBAGE)
    assert result["frozen"] > 0
    assert result["cycle_freed"] is True, result  # collected first, not frozen for the process's life
