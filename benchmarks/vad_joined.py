"""Speech found in joined RAVDESS utterances and in each clip alone, and none in non-speech, under several
Silero VAD rules (issue: "no speech" in a 17 s clip of three Actor_06 fearful utterances).

Signals, scored by avemo's detector (``VoiceActivityDetector``: per-frame probabilities) once per model
memory (``VadConfig.reset_after``), then cut into segments by each rule (``segments_from_probabilities``);
also the wall time of the detector on 10 minutes of noise without and with the shipped memory:

* **joined**: ``--joined`` files, file i: actor i (cycling over the 20), emotion i (cycling over all 8),
  three consecutive utterances of that actor and emotion from a random start (seed 0), each followed by
  1-3 s of digital silence, as ``benchmarks/long_clip_passes.py`` builds them; and the same files with
  white noise at -60 dBFS RMS in the gaps instead of digital silence. An utterance is found when a speech
  segment overlaps it; "in a window": a 1 s / 0.5 s timeline window that overlaps it has a speech share
  of at least 0.5 (the audio expert votes on it).
* **alone**: every RAVDESS speech clip on its own (found: any speech segment).
* **non-speech**: the 56 generated 10 s signals of ``benchmarks/vad_choice.py`` (any segment is a false
  alarm).

    python benchmarks/vad_joined.py [--shared-data ../shared/data] [--joined 40] [--out docs/results/vad_joined]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from report import header  # noqa: E402
from vad_choice import non_speech  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SR = 16000
#: rule name -> VadConfig overrides
RULES = {
    "state runs on, threshold 0.3 (before)": {"reset_after": None},
    "state runs on, threshold 0.2, min speech 0.1 s": {"reset_after": None, "threshold": 0.2, "min_speech": 0.1},
    "memory 1 s after quiet": {"reset_after": 1.0},
    "memory 2 s after quiet": {"reset_after": 2.0},
    "memory 3 s after quiet (shipped)": {},
    "memory 4 s after quiet": {"reset_after": 4.0},
}


def joined(speech_root: Path, n: int, seed: int = 0):
    """``n`` (name, signal with silent gaps, signal with noisy gaps, utterance bounds in seconds)."""
    from avemo.media import load_audio

    rng = np.random.default_rng(seed)
    actors = sorted(p for p in speech_root.iterdir() if p.is_dir())
    codes = [f"{k:02d}" for k in range(1, 9)]
    out = []
    for i in range(n):
        actor, code = actors[i % len(actors)], codes[i % len(codes)]
        files = sorted(actor.glob(f"03-01-{code}-*"))
        start = int(rng.integers(0, len(files) - 2))
        parts, bounds, t = [], [], 0
        for f in files[start : start + 3]:
            y = load_audio(f, SR)
            gap = int(rng.uniform(1.0, 3.0) * SR)
            parts += [y, np.zeros(gap, np.float32)]
            bounds.append((t / SR, (t + len(y)) / SR))
            t += len(y) + gap
        silent = np.concatenate(parts)
        noise = (10 ** (-60 / 20) * np.random.default_rng(i).standard_normal(len(silent))).astype(np.float32)
        mask = np.concatenate([np.zeros(len(p), bool) if k % 2 == 0 else np.ones(len(p), bool)
                               for k, p in enumerate(parts)])
        out.append((f"{actor.name}_{code}_{files[start].stem}", silent, silent + noise * mask, bounds))
    return out


def found(segments, bounds) -> list[bool]:
    return [any(a < e and b > s for a, b in segments) for s, e in bounds]


def in_window(segments, duration: float, bounds) -> list[bool]:
    from avemo.features.audio.vad import SpeechActivity
    from avemo.inference.windows import WindowGrid

    grid = WindowGrid().bounds(duration)
    shares = SpeechActivity(tuple(segments), duration, np.zeros(0)).window_fractions(grid)
    voiced = grid[shares >= 0.5 - 1e-9]
    return [bool(np.any((voiced[:, 0] < e) & (voiced[:, 1] > s))) for s, e in bounds]


def evaluate(probs: dict, joined_files, alone: list[str], signals: list[str]) -> dict:
    from avemo.features.audio.vad import VadConfig, segments_from_probabilities

    results = {}
    for rule, overrides in RULES.items():
        config = VadConfig(**overrides)

        def segs(key, n, config=config):
            return segments_from_probabilities(probs[config.reset_after][key], n, config)

        row = {}
        for kind in ("silent", "noisy"):
            hits, windows, missed = [], [], []
            for name, y, _, bounds in joined_files:
                s = segs((kind, name), len(y))
                f = found(s, bounds)
                hits += f
                windows += in_window(s, len(y) / SR, bounds)
                missed += [f"{name}#{k}" for k, ok in enumerate(f) if not ok]
            row[kind] = {"found": sum(hits), "in_window": sum(windows), "n": len(hits), "missed": missed}
        miss = [p for p in alone if not segs(("alone", p), probs["n"][p])]
        row["alone"] = {"found": len(alone) - len(miss), "n": len(alone), "missed": [Path(p).name for p in miss]}
        flagged = [k for k in signals if segs(("noise", k), 10 * SR)]
        row["non_speech"] = {"flagged": flagged, "n": len(signals)}
        results[rule] = row
    return results


def score(shared: Path, n_joined: int):
    """Per memory setting (``reset_after``): the per-frame probabilities of every signal, keyed (kind, name)."""
    from avemo.features.audio.vad import VadConfig, VoiceActivityDetector
    from avemo.media import load_audio

    root = shared / "ravdess" / "speech_audio"
    joined_files = joined(root, n_joined)
    alone = {str(p): load_audio(p, SR) for p in sorted(root.glob("Actor_*/*.flac"))}
    signals = non_speech()
    probs = {"n": {p: len(y) for p, y in alone.items()}}
    for memory in sorted({VadConfig(**r).reset_after for r in RULES.values()}, key=lambda m: m or 0):
        det, p = VoiceActivityDetector(reset_after=memory), {}
        for name, silent, noisy, _ in joined_files:
            p[("silent", name)], p[("noisy", name)] = det.detect(silent).probabilities, det.detect(noisy).probabilities
        p.update({("alone", k): det.detect(y).probabilities for k, y in alone.items()})
        p.update({("noise", k): det.detect(y).probabilities for k, y in signals.items()})
        probs[memory] = p
        print(f"scored with reset_after={memory}", flush=True)
    noise = (10 ** (-60 / 20) * np.random.default_rng(0).standard_normal(600 * SR)).astype(np.float32)
    cost = {}
    for memory in (None, VadConfig().reset_after):
        t0 = time.perf_counter()
        VoiceActivityDetector(reset_after=memory).detect(noise)
        cost[str(memory)] = time.perf_counter() - t0
    top = {str(m): {k: float(p[("noise", k)].max()) for k in signals} for m, p in probs.items() if m != "n"}
    return probs, joined_files, list(alone), list(signals), top, cost


def write(out: Path, results: dict, top: dict, cost: dict, n_joined: int) -> None:
    from avemo.output_file import OutputFile

    lines = header("Speech found in joined RAVDESS utterances: Silero VAD rules", ("onnxruntime", "silero-vad"))
    lines += ["Method: the module docstring of `benchmarks/vad_joined.py`.", "",
              f"| rule | joined, silent gaps: utterances found / in a voted window ({3 * n_joined}) | joined, "
              "-60 dBFS noise gaps: found / in a voted window | RAVDESS clips alone: found | non-speech signals "
              "with speech (56) |", "|---|---|---|---|---|"]
    for rule, r in results.items():
        s, z, a = r["silent"], r["noisy"], r["alone"]
        lines.append(f"| {rule} | {s['found']} / {s['in_window']} | {z['found']} / {z['in_window']} | "
                     f"{a['found']}/{a['n']} | {len(r['non_speech']['flagged'])} |")
    lines += ["", "Largest speech probability of any frame of a non-speech signal (by `reset_after`):"]
    for memory, by_signal in top.items():
        worst = sorted(by_signal.items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"- {memory}: " + ", ".join(f"{k} {v:.3f}" for k, v in worst))
    lines += ["", "Wall time of `detect` on 10 minutes of -60 dBFS white noise (no speech), one "
              "thread, shared machine: " + ", ".join(f"`reset_after` {m}: {t:.1f} s" for m, t in cost.items()) + ".",
              "", "Missed utterances and clips, false alarms:", ""]
    for rule, r in results.items():
        lines.append(f"- {rule}: missed joined (silent gaps) {', '.join(r['silent']['missed']) or '-'}; "
                     f"alone {', '.join(r['alone']['missed']) or '-'}; non-speech flagged "
                     f"{', '.join(r['non_speech']['flagged']) or '-'}")
    with OutputFile(out.with_suffix(".md")) as fh:
        fh.commit("\n".join(lines) + "\n")
    with OutputFile(out.with_suffix(".json")) as fh:
        fh.commit(json.dumps({"rules": RULES, "results": results, "non_speech_top": top, "cost_seconds": cost}, indent=1) + "\n")
    print("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--joined", type=int, default=40)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "vad_joined")
    args = ap.parse_args(argv)
    probs, joined_files, alone, signals, top, cost = score(args.shared_data, args.joined)
    write(args.out, evaluate(probs, joined_files, alone, signals), top, cost, args.joined)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
