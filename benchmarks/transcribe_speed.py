"""Speed of speech recognition (``avemo.features.audio.asr``), written to ``docs/benchmarks/transcribe.md``.

What it measures, on the RAVDESS clip of the unit test (``01-01-07-02-02-01-01.mp4``, 4.0 s, one
sentence of 2.3 s), each figure the median of ``--repeats`` calls after a warm-up call:

1. **Model load**: ``load_recogniser()`` in a fresh Python process (imports included).
2. **Transcription** of the decoded 16 kHz signal with the default settings, wall and CPU time,
   and how that time splits into its steps (VAD, log-mel, encoder, language detection, decoding,
   word alignment).
3. **Settings**: CTranslate2 compute type int8 / float32, beam size 1 / 5, with and without word
   times, the language given or detected, 1 or 2 threads, and the silence after the speech
   (``context`` 2 / 4 / 8 s, and 30 s: Whisper's own padding).
4. **In the predictor**: ``Predictor.default().predict(clip)`` alone and with ``transcribe=True``
   (what ``avemo predict --transcribe`` does: recognition in a thread next to the experts),
   interleaved; what transcription adds is the difference of their medians. One after the other
   for reference.

The machine is shared: the load average at the start is printed with the results. Run it on a
quiet machine for figures that go into the docs.

    python benchmarks/transcribe_speed.py [--repeats 7] [--out docs/benchmarks/transcribe.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_speed import timed  # noqa: E402
from report import SECTIONS, assemble, header  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
CLIP = "ravdess/videos/01-01-07-02-02-01-01.mp4"


def child_load() -> None:
    t = time.perf_counter()
    from avemo.features.audio.asr import load_recogniser

    load_recogniser()
    print(json.dumps({"load_s": time.perf_counter() - t}))


def steps(y, repeats: int) -> list[tuple[str, float]]:
    """Median wall seconds of each step of the default transcription of ``y``."""
    from avemo.features.audio import asr
    from avemo.features.audio.vad import VoiceActivityDetector
    from avemo.features.audio.whisper_mel import log_mel

    r = asr.load_recogniser()
    config = asr.TranscribeConfig()
    vad = VoiceActivityDetector(config.vad)
    activity = vad.detect(y)
    chunk = asr.plan_chunks(list(activity.segments), activity.probabilities, config)[0]
    seg = y[int(chunk[0] * 16000) : int(chunk[1] * 16000)]
    encoded, frames = r.encode(seg, config.context)
    tokens, _, _ = r.decode(encoded, "en", 1, len(seg) / 16000)
    padded = asr.padded_frames(len(seg), config.context)
    return [
        ("VAD (Silero, whole clip)", timed(lambda: vad.detect(y), repeats)[0]),
        ("log-mel (speech + context)", timed(lambda: log_mel(seg, 80, frames=padded), repeats)[0]),
        ("encoder", timed(lambda: r.encode(seg, config.context), repeats)[0]),
        ("language detection", timed(lambda: r.detect_language(encoded), repeats)[0]),
        ("greedy decoding", timed(lambda: r.decode(encoded, "en", 1, len(seg) / 16000), repeats)[0]),
        ("word alignment", timed(lambda: r.align(encoded, "en", tokens, frames), repeats)[0]),
    ]


def settings(y, repeats: int) -> list[tuple[str, float, float, str]]:
    from avemo import config as cfg
    from avemo.features.audio.asr import TranscribeConfig, transcribe

    base = TranscribeConfig()
    variants = [
        ("default (int8, beam 1, words, language detected, context 4 s, all cores)", {}),
        ("compute_type=float32", {"compute_type": "float32"}),
        ("beam_size=5", {"beam_size": 5}),
        ("word_timestamps=False", {"word_timestamps": False}),
        ("language='en' (no detection)", {"language": "en"}),
        ("threads=1", {"threads": 1}),
        ("threads=2", {"threads": 2}),
        ("context=2", {"context": 2.0}),
        ("context=8", {"context": 8.0}),
        ("context=30 (Whisper's 30 s window)", {"context": 30.0}),
        ("context=30, no timestamp tokens", {"context": 30.0, "timestamps": False}),
    ]
    rows = []
    for name, overrides in variants:
        config = cfg.replace(base, **overrides)
        wall, cpu, result = timed(lambda c=config: transcribe(y, config=c), repeats)
        rows.append((name, wall, cpu, result.text))
    return rows


def in_predictor(path: Path, repeats: int) -> list[tuple[str, float]]:
    """``predict`` alone and ``predict(transcribe=True)`` (recognition in a thread next to the experts),
    interleaved call by call so that a change of the machine's load hits both alike; and, for
    reference, prediction then recognition one after the other."""
    from avemo import Predictor
    from avemo.features.audio.asr import load_recogniser, transcribe_file

    predictor = Predictor.default()
    load_recogniser()
    predictor.predict(path), predictor.predict(path, transcribe=True)  # warm-up
    alone, both = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        predictor.predict(path)
        alone.append(time.perf_counter() - t)
        t = time.perf_counter()
        predictor.predict(path, transcribe=True)
        both.append(time.perf_counter() - t)
    serial = timed(lambda: (predictor.predict(path), transcribe_file(path)), repeats)[0]
    a, b = statistics.median(alone), statistics.median(both)
    return [("predict", a), ("predict(transcribe=True): recognition in a thread next to the experts", b),
            ("added by transcription (difference of the medians)", b - a),
            ("predict, then transcribe_file (one after the other)", serial)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=SECTIONS / "transcribe.md")
    parser.add_argument("--child", choices=["load"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "load":
        child_load()
        return

    from avemo.media import load_audio

    path = args.shared_data / CLIP
    lines = header("Speech recognition (Whisper-base, CTranslate2)", ("ctranslate2", "onnxruntime"))
    loads = []
    for _ in range(max(1, args.repeats // 2)):
        proc = subprocess.run([sys.executable, __file__, "--child", "load"], capture_output=True, text=True, check=True)
        loads.append(json.loads(proc.stdout.strip().splitlines()[-1])["load_s"])
    y = load_audio(path, sr=16000)
    lines += [f"Clip: `{CLIP}` ({len(y) / 16000:.1f} s); medians of {args.repeats} calls after a warm-up call.", "",
              f"- Model load in a fresh process (imports included): {statistics.median(loads):.2f} s", ""]
    lines += ["| setting | wall s | CPU s | text |", "|---|---|---|---|"]
    lines += [f"| {n} | {w:.3f} | {c:.3f} | {t!r} |" for n, w, c, t in settings(y, args.repeats)]
    lines += ["", "Steps of the default setting (wall s):", "", "| step | wall s |", "|---|---|"]
    lines += [f"| {n} | {w:.3f} |" for n, w in steps(y, args.repeats)]
    lines += ["", "In the predictor (bundled model, torch engine; wall s):", "", "| what | wall s |", "|---|---|"]
    lines += [f"| {n} | {w:.3f} |" for n, w in in_predictor(path, args.repeats)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    if args.out.parent.resolve() == SECTIONS.resolve():
        assemble()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
