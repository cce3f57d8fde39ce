"""Which glibc mmap threshold ``avemo.memory`` should fix: page faults of a short prediction, peak of a long one.

For each setting of ``AVEMO_MMAP_THRESHOLD`` (0: glibc's dynamic threshold, as avemo ran before
``avemo.memory``; 1 MiB; the default 8 MiB), in fresh processes with ``--threads`` torch threads:

1. a 4 s 1280x720 30 fps clip with a face and a voice, predicted ``--repeats`` times after a warm-up:
   minor page faults, user and system CPU seconds per call (medians). Page faults do not depend on
   the load of the machine; a mapped block costs one per 4 KiB page each time it is made again;
2. the audio expert alone (``modalities="audio"``) on generated videos of 1 and ``--minutes`` minutes:
   peak resident memory (``VmHWM``), which grew with the length under the dynamic threshold.

    python benchmarks/heap_thresholds.py [--minutes 10] [--repeats 5] [--threads 1] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import header, peak_rss_mb, write_section  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SETTINGS = {"glibc's dynamic threshold (before)": "0", "1 MiB": str(1 << 20), "8 MiB (avemo's default)": ""}


def child(kind: str, path: str, threads: str, repeats: str) -> None:
    """One fresh process: the figures of ``kind`` ("clip" or "audio") on ``path``, as a JSON line."""
    import torch

    torch.set_num_threads(int(threads))
    from avemo import Predictor
    from avemo.memory import bound_heap_growth

    p = Predictor.default()
    out = {"threshold": bound_heap_growth()}
    if kind == "audio":
        p.predict(path, modalities="audio")
        out["peak_rss_mb"] = peak_rss_mb()
    else:
        p.predict(path)
        calls = []
        for _ in range(int(repeats)):
            a = resource.getrusage(resource.RUSAGE_SELF)
            p.predict(path)
            b = resource.getrusage(resource.RUSAGE_SELF)
            calls.append((b.ru_minflt - a.ru_minflt, b.ru_utime - a.ru_utime, b.ru_stime - a.ru_stime))
        out.update({name: statistics.median(c[i] for c in calls) for i, name in enumerate(("faults", "user_s", "sys_s"))})
    print(json.dumps(out))


def run(setting: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    if setting:
        env["AVEMO_MMAP_THRESHOLD"] = setting
    else:
        env.pop("AVEMO_MMAP_THRESHOLD", None)
    proc = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def inputs(work: Path, minutes: float) -> tuple[Path, list[tuple[float, Path]]]:
    """The 4 s 720p clip and the long videos (as ``benchmarks/predict_speed.py`` makes them), made once."""
    from avemo.media.synth import write_clip

    clip = work / "synth_720p_4s.mp4"
    if not clip.exists():
        write_clip(clip, duration=4.0, size=(1280, 720), fps=30, face=True, audio="voice")
    long = []
    for m in (1.0, minutes):
        path = work / f"long_{m:g}min.mp4"
        if not path.exists():
            write_clip(path, duration=60 * m, size=(320, 240), fps=15, face=True, audio="voice")
        long.append((m, path))
    return clip, long


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "avemo-heap-thresholds")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    clip, long = inputs(args.workdir, args.minutes)
    lines = header("Heap thresholds: page faults of a short prediction, peak of a long one")
    lines += [
        f"Torch engine, {args.threads} torch thread(s), each figure from a fresh process. Per call: the 4 s 1280x720 "
        f"clip predicted {args.repeats} times after a warm-up (medians). Peak: the audio expert alone "
        "(`modalities=\"audio\"`) on generated 320x240 videos with a voice.",
        "",
        f"| threshold | page faults per call | user s per call | system s per call | "
        f"{' | '.join(f'peak MB, {m:g} min' for m, _ in long)} |",
        "|---|---:|---:|---:|" + "---:|" * len(long),
    ]
    for title, setting in SETTINGS.items():
        short = run(setting, "clip", str(clip), str(args.threads), str(args.repeats))
        peaks = [run(setting, "audio", str(path), str(args.threads), "1")["peak_rss_mb"] for _, path in long]
        lines.append(f"| {title} | {short['faults']:.0f} | {short['user_s']:.3f} | {short['sys_s']:.3f} | "
                     f"{' | '.join(f'{p:.0f}' for p in peaks)} |")
        print(lines[-1], flush=True)
    print(f"written to {write_section('heap_thresholds', lines)}")


if __name__ == "__main__":
    main()
