"""`make bench`: run every benchmark and print its figures (ratios measured in one run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "decode_vad.py",
    "vad_savings.py",
    "model_loads.py",
    "platform_overhead.py",
    "concurrency.py",
    "open_loop.py",
    "long_poll.py",
    "memory_long.py",
]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        path = HERE / name
        if not path.exists():
            continue
        print(f"\n######## {name} ########", flush=True)
        if subprocess.run([sys.executable, str(path)], cwd=HERE).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
