"""Audio feature extraction over the 1200 shared RAVDESS clips, cold and warm cache.

Target (issue 2): MFCC + log-mel + eGeMAPS for all 1200 clips in <= 90 s wall on the 2 cores
from a cold cache, and <= 5 s warm. Runs the real command (``avemo extract``) in a fresh
process each time, so start-up and imports are included.

    python benchmarks/extract_audio.py [--root ../shared/data/ravdess/speech_audio] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, header, timed_extract, write_section  # noqa: E402


def run(root: Path, features: str, workers: int, cache: Path) -> tuple[float, dict]:
    return timed_extract([str(root), "--dataset", "ravdess", "-f", features, "-j", str(workers)], cache)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "ravdess" / "speech_audio")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--features", default="mfcc,logmel,egemaps")
    args = ap.parse_args()
    lines = header("Audio feature extraction: 1200 RAVDESS clips", ("opensmile", "librosa", "av"))
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cold, s_cold = run(args.root, args.features, args.workers, cache)
        warm, s_warm = run(args.root, args.features, args.workers, cache)
    n = s_cold["files"]
    lines += [
        f"`avemo extract ROOT --dataset ravdess -f {args.features} -j {args.workers}` in a fresh process, "
        "wall time including start-up:",
        "",
        "| cache | files | computed | from cache | failed | wall (s) | clips/s | target |",
        "|---|---|---|---|---|---|---|---|",
        f"| cold | {n} | {s_cold['computed']} | {s_cold['cached']} | {len(s_cold['failed'])} | {cold:.1f} | "
        f"{n / cold:.1f} | <= 90 s: {'met' if cold <= 90 else 'NOT met'} |",
        f"| warm | {s_warm['files']} | {s_warm['computed']} | {s_warm['cached']} | {len(s_warm['failed'])} | "
        f"{warm:.1f} | {n / warm:.0f} | <= 5 s: {'met' if warm <= 5 else 'NOT met'} |",
    ]
    path = write_section("extract_audio", lines)
    print("\n".join(lines))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
