"""Audio decoding speed (``avemo.media.load_audio``: decode, downmix to mono, resample to 16 kHz) on a
30 s 48 kHz stereo WAV and a 30 s 48 kHz 5.1 WAV, for this source tree and optionally another one
(the code before a change), each timed in a fresh process on the same files: ``--rounds`` rounds, the
trees' order swapped every round (a shared machine's load drifts), ``--repeats`` calls each; the
figure is the median over all calls.

    python benchmarks/audio_downmix.py [--baseline-src ../main/src] [--rounds 4] [--repeats 5] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, header, write_section  # noqa: E402

# run in a fresh process with PYTHONPATH set to the source tree under test: argv = repeats, files...
TIMER = """
import json, statistics, sys, time
from avemo.media import load_audio
repeats, files = int(sys.argv[1]), sys.argv[2:]
out = {}
for f in files:
    load_audio(f)  # warm-up: imports, page cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); y = load_audio(f); times.append(time.perf_counter() - t0)
    out[f] = times
print(json.dumps(out))
"""


def make_files(folder: Path, seconds: float) -> dict[str, Path]:
    """The two test files: a voice in stereo, and the same voice in the centre of a 5.1 mix with a
    50 Hz hum in the LFE channel and quieter copies in the other channels."""
    from avemo.media.synth import synth_audio, write_audio

    sr = 48000
    voice = synth_audio(seconds, sr, "voice", channels=1)[:, 0]
    hum = 0.5 * np.sin(2 * np.pi * 50.0 * np.arange(len(voice)) / sr).astype(np.float32)
    surround = np.stack([0.3 * voice, 0.3 * voice, voice, hum, 0.1 * voice, 0.1 * voice], axis=1)
    return {"48 kHz stereo WAV": write_audio(folder / "stereo.wav", synth_audio(seconds, sr, "voice", channels=2), sr),
            "48 kHz 5.1 WAV": write_audio(folder / "surround.wav", surround, sr, "5.1")}


def timed(src: Path, files: list[Path], repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    proc = subprocess.run([sys.executable, "-c", TIMER, str(repeats), *map(str, files)], env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"timing with {src} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-src", type=Path, help="another source tree (its src/ folder) to time on the same files")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    lines = header(f"Audio decoding: {args.seconds:g} s of 48 kHz stereo and 5.1 to 16 kHz mono", ("av", "soxr"))
    trees = [("this tree", ROOT / "src")] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.seconds)
        results = {name: {str(f): [] for f in files.values()} for name, _ in trees}
        for r in range(args.rounds):
            for name, src in trees[:: 1 if r % 2 == 0 else -1]:
                for f, times in timed(src, list(files.values()), args.repeats).items():
                    results[name][f] += times
    lines += [f"`load_audio(path)` in a fresh process per source tree and round, after one warm-up call; median of "
              f"{args.rounds} rounds x {args.repeats} calls, the trees' order swapped every round; real-time factor "
              "= audio seconds / wall seconds:", "",
              "| file | source tree | median (ms) | x real time |", "|---|---|---|---|"]
    for label, path in files.items():
        for name, src in trees:
            t = statistics.median(results[name][str(path)])
            where = name if name == "this tree" else f"baseline ({os.path.relpath(src, ROOT)})"
            lines.append(f"| {label} | {where} | {1000 * t:.1f} | {args.seconds / t:.0f} |")
    out = write_section("audio_downmix", lines)
    print("\n".join(lines))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
