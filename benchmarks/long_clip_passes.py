"""Long clips: the whisper_base extractor's embedding before (one pass) and after (6 s passes) against the predictor's.

Each long clip joins three RAVDESS utterances of one actor and one emotion (of the bundle's six) with 1-3 s
of silence after each (12-20 s, 16 kHz WAV). For each: the cosine similarity of the extractor's
``whisper_base(combine=concat)`` embedding to the clip embedding the bundled audio expert computes
(``Predictor.default()``, the vector its head reads), once as the extractor computed it before (one
encoder pass over the clip, positions 0..T-1, as for every clip of up to 30 s) and once as it does now
(:mod:`avemo.features.audio.whisper_passes`); and the bundled audio head's label from each embedding,
against the head's label from the predictor's clip embedding, the predictor's audio answer
(``modalities["audio"]``, for a file longer than 6 s the mean of its windows with speech) and the truth.
With ``--baseline-src`` (the source tree before the passes), also the wall time and peak resident memory of
the extractor on a ``--long-minutes`` file of noise, each tree in a fresh process with one torch thread.

    python benchmarks/long_clip_passes.py [--clips 10] [--data ../shared/data] [--baseline-src ../main/src] [--long-minutes 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, header, write_section  # noqa: E402

# run in a fresh process with PYTHONPATH set to the source tree under test: argv = benchmarks folder, file
COST = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from report import peak_rss_mb
from avemo.features.base import get_extractor
t0 = time.perf_counter(); get_extractor("whisper_base").extract(sys.argv[2]); wall = time.perf_counter() - t0
print(json.dumps({"seconds": wall, "peak_mb": peak_rss_mb()}))
"""

SR = 16000
DESCRIPTION = (
    "Each long clip joins three RAVDESS utterances of one actor and one emotion (of the bundle's six) with 1-3 s "
    "of silence after each (12-20 s, 16 kHz WAV; the actors are among those the bundled head was trained on: "
    "the figures compare embeddings, they are not an accuracy). *Before*: the `whisper_base(combine=concat)` "
    "embedding as the extractor computed it for a clip of up to 30 s (one encoder pass over all of it); *after*: "
    "as it computes it now (6 s passes overlapping by 2 s, `avemo.features.audio.whisper_passes`). Both are "
    "compared with the clip embedding the bundled audio expert computes (`Predictor.default()`, the vector its "
    "head reads): cosine similarity, and the bundled head's label from each. The predictor's audio answer "
    "(`modalities[\"audio\"]`) is, for a file longer than 6 s, the mean of its windows with speech, not the "
    "head on the clip embedding; \"none\": the voice activity detector found no speech in the file."
)
#: RAVDESS emotion codes of the bundle's six labels
EMOTIONS = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry", "06": "fearful", "07": "disgust"}


def long_clips(speech_root: Path, n: int, out: Path, seed: int = 0) -> list[tuple[Path, str, float]]:
    """``n`` long clips (path, emotion, seconds): actor i (in order) and emotion i (cycling), three of its
    utterances in name order from a random start, each followed by 1-3 s of silence."""
    from avemo.media import load_audio
    from avemo.media.synth import write_audio

    rng = np.random.default_rng(seed)
    actors = sorted(p for p in speech_root.iterdir() if p.is_dir())
    clips = []
    for i in range(n):
        actor, code = actors[i % len(actors)], list(EMOTIONS)[i % len(EMOTIONS)]
        files = sorted(actor.glob(f"03-01-{code}-*"))
        start = int(rng.integers(0, len(files) - 2))
        parts = []
        for f in files[start : start + 3]:
            parts += [load_audio(f, SR), np.zeros(int(rng.uniform(1.0, 3.0) * SR), dtype=np.float32)]
        y = np.concatenate(parts)
        path = write_audio(out / f"{actor.name}_{EMOTIONS[code]}.wav", y, SR)
        clips.append((path, EMOTIONS[code], len(y) / SR))
    return clips


def one_pass(y: np.ndarray) -> np.ndarray:
    """The concatenated layer means of one encoder pass over ``y`` (the extractor before the passes)."""
    import torch

    from avemo.features.audio.whisper_encoder import load_encoder

    encoder = load_encoder()
    with torch.inference_mode():
        states = encoder(encoder.log_mel(torch.from_numpy(y)[None]))
    frames = max(1, min(states[0].shape[1], -(-len(y) // 320)))
    return np.stack([s[0, :frames].double().mean(dim=0).numpy() for s in states]).reshape(-1).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def measure(clips: list[tuple[Path, str, float]]) -> list[dict]:
    from avemo import Predictor
    from avemo.features.base import get_extractor
    from avemo.inference.windows import WindowGrid
    from avemo.media import load_audio

    predictor = Predictor.default()
    expert = predictor._backend.audio
    spec = next(iter(expert.ckpt.inputs.values()))
    extractor = get_extractor("whisper_base", **dict(spec.config))
    if expert.pooling is not None or spec.config.get("combine") != "concat":
        raise SystemExit("the bundled audio head does not read the concatenated layer means: update this script")

    def label(embedding: np.ndarray) -> str:
        return expert.labels[int(np.argmax(expert.logits(embedding[None])[0]))]

    rows = []
    for path, truth, seconds in clips:
        out = expert.analyse(path, WindowGrid())
        before, after = one_pass(load_audio(path, SR)), extractor.extract(path)["x"]
        status = predictor.predict(path, modalities="audio").modalities["audio"]
        answer = max(status.probabilities, key=status.probabilities.get) if status.probabilities else "none"
        if status.reason:
            print(f"{path.stem}: audio {status.reason}", flush=True)
        rows.append({"clip": path.stem, "seconds": seconds, "truth": truth,
                     "cos_before": cosine(before, out.clip_embedding), "cos_after": cosine(after, out.clip_embedding),
                     "before": label(before), "after": label(after), "predictor_embedding": label(out.clip_embedding),
                     "predictor_answer": answer})
        print(rows[-1], flush=True)
    return rows


def report(rows: list[dict]) -> list[str]:
    lines = ["| clip | s | truth | cos before | cos after | label before | label after | predictor: head on clip "
             "embedding | predictor: audio answer |", "|---|---:|---|---:|---:|---|---|---|---|"]
    lines += [f"| {r['clip']} | {r['seconds']:.1f} | {r['truth']} | {r['cos_before']:.4f} | {r['cos_after']:.6f} | "
              f"{r['before']} | {r['after']} | {r['predictor_embedding']} | {r['predictor_answer']} |" for r in rows]
    n = len(rows)

    def count(a: str, b: str) -> str:
        return f"{sum(r[a] == r[b] for r in rows)}/{n}"

    lines += ["", f"Same label as the head on the predictor's clip embedding: before {count('before', 'predictor_embedding')}, "
              f"after {count('after', 'predictor_embedding')}. Same as the predictor's audio answer (windows with "
              f"speech): before {count('before', 'predictor_answer')}, after {count('after', 'predictor_answer')}, "
              f"head on the clip embedding {count('predictor_embedding', 'predictor_answer')}. Correct: before "
              f"{count('before', 'truth')}, after {count('after', 'truth')}, predictor's answer "
              f"{count('predictor_answer', 'truth')}. Cosine similarity to the predictor's clip embedding: before "
              f"min {min(r['cos_before'] for r in rows):.4f} / mean {np.mean([r['cos_before'] for r in rows]):.4f}, "
              f"after min {min(r['cos_after'] for r in rows):.6f}."]
    return lines


def long_file_cost(trees: list[tuple[str, Path]], minutes: float, rounds: int, folder: Path) -> list[str]:
    """Median wall time and peak RSS of the extractor on a ``minutes``-long file for each source tree, in
    ``rounds`` rounds, the trees' order swapped every round (a shared machine's load drifts)."""
    from avemo.media.synth import write_audio

    noise = (0.05 * np.random.default_rng(0).standard_normal(int(minutes * 60 * SR))).astype(np.float32)
    path = write_audio(folder / "long.wav", noise, SR)
    costs: dict[str, list[dict]] = {name: [] for name, _ in trees}
    for r in range(rounds):
        for name, src in trees[:: 1 if r % 2 == 0 else -1]:
            env = {**os.environ, "PYTHONPATH": str(src.resolve()), "OMP_NUM_THREADS": "1"}
            proc = subprocess.run([sys.executable, "-c", COST, str(Path(__file__).resolve().parent), str(path)],
                                  env=env, capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(f"extraction with {src} failed:\n{proc.stderr[-2000:]}")
            costs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    lines = [f"`get_extractor(\"whisper_base\").extract` of a {minutes:g}-minute 16 kHz WAV (noise), each source tree "
             f"in a fresh process (loading the encoder included), `OMP_NUM_THREADS=1`, {rounds} rounds, the trees' order "
             "swapped every round, on a shared machine (load average above): the wall times are indicative. The "
             "passes encode each frame about 1.5 times, in attention over 300 frames instead of 1,500:", "",
             "| source tree | wall (s), median | wall (s), each round | peak RSS (MiB), largest |", "|---|---:|---|---:|"]
    for name, runs in costs.items():
        walls = [c["seconds"] for c in runs]
        lines.append(f"| {name} | {np.median(walls):.1f} | {', '.join(f'{w:.1f}' for w in walls)} | "
                     f"{max(c['peak_mb'] for c in runs):.0f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--baseline-src", type=Path, help="the source tree (its src/ folder) before the passes")
    ap.add_argument("--long-minutes", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    lines = header("Long clips: whisper_base extractor before and after the predictor's passes", ("av", "soxr"))
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(long_clips(args.data / "ravdess" / "speech_audio", args.clips, Path(tmp)))
        lines += [DESCRIPTION, "", *report(rows)]
        if args.baseline_src:
            trees = [("this tree", ROOT / "src"), (f"baseline ({os.path.relpath(args.baseline_src, ROOT)})",
                                                   args.baseline_src)]
            lines += ["", *long_file_cost(trees, args.long_minutes, args.rounds, Path(tmp))]
    out = write_section("long_clip_passes", lines)
    print("\n".join(lines))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
