"""Worker memory on a 10-hour upload: streaming recognize_file vs the old whole-file decode (target: model + 500 MB).

Each path runs in a fresh subprocess with the committed fixture model: the model (and the VAD session) are
loaded first and that RSS is the baseline; the run's peak is the larger of ru_maxrss and a 20 ms VmRSS
sampler. The 10 h Opus/WebM file is built once and cached under var/bench-audio/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CACHE = REPO / "var" / "bench-audio"
TARGET_MB = 500.0
UNIT_S = 600.0  # the long file is this unit looped
SPEECH_EVERY_S = 120.0  # one fixture sentence every 2 minutes, silence (with a faint noise floor) between


def long_file(hours: float) -> Path:
    """A cached low-bitrate Opus/WebM file of `hours`, mostly silence with periodic fixture speech."""
    import numpy as np

    from tests import audio_samples as samples

    CACHE.mkdir(parents=True, exist_ok=True)
    dst = CACHE / f"long_{hours:g}h.webm"
    if dst.exists():
        return dst
    sentences = [samples.speak_fixture(s["id"]) for s in samples.FIXTURE_SENTENCES]
    unit = np.zeros(int(UNIT_S * samples.SR), dtype=np.float32)
    for i, start in enumerate(np.arange(5.0, UNIT_S, SPEECH_EVERY_S)):
        clip = sentences[i % len(sentences)]
        at = int(start * samples.SR)
        unit[at : at + clip.shape[0]] = clip
    rng = np.random.default_rng(0)
    unit += (rng.standard_normal(unit.shape[0]) * 0.0005).astype(np.float32)
    loops = int(round(hours * 3600 / UNIT_S))
    with tempfile.TemporaryDirectory() as tmp:
        src = samples.write_wav(Path(tmp) / "unit.wav", unit)
        part = dst.with_suffix(".part.webm")
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(src),
               "-c:a", "libopus", "-b:a", "12k", "-ac", "1", str(part)]  # fmt: skip
        subprocess.run(cmd, check=True)
        part.rename(dst)
    return dst


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(mode: str, path: str) -> None:
    """Runs in the subprocess: load the model, then one recognition; print a JSON line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    os.environ["MAX_AUDIO_SECONDS"] = "40000"
    import django

    django.setup()
    import numpy as np
    from django.conf import settings

    from tests.audio_samples import FIXTURE_MODEL, decode_all
    from transcription.audio import probe
    from transcription.engines.base import TranscribeOptions
    from transcription.engines.funasr import FunASREngine
    from transcription.pipeline import recognize_file, recognize_samples
    from transcription.vad import speech_regions

    engine = FunASREngine(model=str(FIXTURE_MODEL), device="cpu", threads=1)
    engine.load()
    speech_regions(np.zeros(16000, dtype=np.float32))  # the VAD session is per process too
    baseline = rss_mb()
    peak = {"mb": baseline}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak["mb"] = max(peak["mb"], rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    options = TranscribeOptions()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if mode == "stream":
        expected = probe(path).duration_s
        result = recognize_file(
            path, engine=engine, options=options, max_seconds=settings.MAX_AUDIO_SECONDS, expected_s=expected
        )
        info = {"segments": len(result.segments), "duration_s": result.duration_s, "truncated": result.truncated,
                "decode_ms": result.decode_ms, "vad_ms": result.vad_ms, "asr_ms": result.asr_ms,
                "speech_s": result.speech_s, "windows": result.windows}  # fmt: skip
    else:
        t0 = time.perf_counter()
        decoded = decode_all(path, max_seconds=settings.MAX_AUDIO_SECONDS)
        decode_ms = round((time.perf_counter() - t0) * 1000)
        result = recognize_samples(decoded.samples, engine=engine, options=options, chunk_seconds=1e9)
        info = {"segments": len(result.segments), "duration_s": decoded.duration_s, "truncated": decoded.truncated,
                "decode_ms": decode_ms, "vad_ms": result.vad_ms, "asr_ms": result.asr_ms, "speech_s": result.speech_s}  # fmt: skip
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stop.set()
    sampler.join()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info.update(baseline_mb=baseline, sampled_peak_mb=peak["mb"], ru_maxrss_mb=maxrss, wall_s=wall, cpu_s=cpu)
    print("RESULT " + json.dumps(info), flush=True)


def run(mode: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True, check=False, cwd=REPO
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{mode} run failed (exit {out.returncode}):\n{out.stderr[-3000:]}")


def show(label: str, r: dict) -> None:
    peak = max(r["sampled_peak_mb"], r["ru_maxrss_mb"])
    over = peak - r["baseline_mb"]
    verdict = "OK" if over <= TARGET_MB else "OVER"
    print(f"{label}")
    print(f"  audio {r['duration_s'] / 3600:.2f} h decoded (truncated={r['truncated']}), {r['segments']} segments, "
          f"speech {r['speech_s']:.0f} s" + (f", {r['windows']} windows" if "windows" in r else ""))  # fmt: skip
    print(f"  RSS: model-loaded baseline {r['baseline_mb']:.0f} MB, peak {peak:.0f} MB "
          f"(ru_maxrss {r['ru_maxrss_mb']:.0f}, sampled {r['sampled_peak_mb']:.0f})")  # fmt: skip
    print(f"  peak - baseline = {over:.0f} MB vs target {TARGET_MB:.0f} MB -> {verdict}")
    print(f"  wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s "
          f"(decode {r['decode_ms'] / 1000:.1f} s, VAD {r['vad_ms'] / 1000:.1f} s, ASR {r['asr_ms'] / 1000:.1f} s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=10.0, help="length of the streamed file (default 10)")
    parser.add_argument(
        "--whole-hours", type=float, default=10.0, help="length for the old whole-file path (default 10)"
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    t0 = time.perf_counter()
    path = long_file(args.hours)
    whole_path = long_file(args.whole_hours)
    names = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in dict.fromkeys([path, whole_path]))
    print(f"files: {names} (ready in {time.perf_counter() - t0:.1f} s; cached in {CACHE})")
    show(f"streaming recognize_file, {args.hours:g} h:", run("stream", path))
    whole = run("whole", whole_path)
    show(f"old whole-file decode + transcribe, {args.whole_hours:g} h:", whole)
    if args.whole_hours < args.hours:
        scale = args.hours / args.whole_hours
        grown = (max(whole["sampled_peak_mb"], whole["ru_maxrss_mb"]) - whole["baseline_mb"]) * scale
        print(f"  (measured on {args.whole_hours:g} h to keep the bench short; {args.hours:g} h of float32 samples "
              f"alone is {args.hours * 230.4:.0f} MB, linear estimate {grown:.0f} MB over baseline. "
              f"Pass --whole-hours {args.hours:g} to measure it.)")  # fmt: skip


if __name__ == "__main__":
    main()
