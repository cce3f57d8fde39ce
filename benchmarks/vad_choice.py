"""Which voice activity detector avemo ships: Silero VAD (ONNX) against WebRTC VAD, measured.

Two questions, asked of every candidate with the same segment rule (hysteresis, 0.25 s minimum
speech, 0.1 s minimum silence, 0.03 s padding; ``avemo.features.audio.vad``):

* **speech must be found** in real speech: every RAVDESS speech clip (20 actors), the EmoDB-dev
  clips, the CREMA-D clips (six videos, six audio files); and in a subset of the RAVDESS clips
  (every sixth) passed through realistic channels (``avemo.media.channels``). Reported: the share
  of clips with at least one speech segment and the mean share of each clip marked as speech
  (a RAVDESS clip is about half silence).
* **no speech must be found** where there is none: 10 s generated signals: digital silence and
  -90 dBFS dither; white, pink and brown noise at -60/-40/-20/-10 dBFS RMS; mains hum (50 and
  60 Hz with harmonics) at -40/-20/-10 dBFS; steady tones, beeps and a sweep; click trains.
  Noises with three seeds. Reported: the share of signals with any speech segment, and the
  largest share of a signal marked as speech.

Also reported: the largest per-frame speech probability Silero gives any non-speech signal (the
margin below its threshold) and the RAVDESS clips in which avemo's setting finds no speech.

Candidates: Silero VAD at avemo's threshold 0.3, at its authors' default 0.5 and at 0.7, WebRTC VAD
in its four aggressiveness modes (30 ms frames; needs ``pip install webrtcvad-wheels``, which
avemo does not depend on: the candidate is skipped when it is missing).

    python benchmarks/vad_choice.py [--shared-data ../shared/data] [--out docs/results/vad.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from report import header  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SR = 16000
CHANNELS = ("noise_pink_5db", "noise_white_10db", "telephone_g711", "mp3_16k", "reverb_0.6s", "gain_-20db")


def candidates():
    """name -> function(signal) -> speech segments."""
    from avemo.features.audio.vad import VadConfig, VoiceActivityDetector, segments_from_probabilities

    found = {}
    for threshold in (0.3, 0.5, 0.7):
        det = VoiceActivityDetector(threshold=threshold)
        found[f"silero (threshold {threshold})"] = lambda y, det=det: det.detect(y).segments
    try:
        import webrtcvad
    except ImportError:
        print("webrtcvad is not installed (pip install webrtcvad-wheels): WebRTC VAD is skipped", file=sys.stderr)
        return found
    frame = 480  # 30 ms

    def webrtc(y, mode):
        vad = webrtcvad.Vad(mode)
        pcm = (np.clip(y, -1, 1) * 32767).astype("<i2")
        n = len(pcm) // frame
        decisions = [float(vad.is_speech(pcm[i * frame : (i + 1) * frame].tobytes(), SR)) for i in range(n)]
        return segments_from_probabilities(np.array(decisions), len(y), VadConfig(), frame=frame)

    for mode in range(4):
        found[f"webrtc (mode {mode})"] = lambda y, mode=mode: webrtc(y, mode)
    return found


def speech_sets(shared: Path) -> dict[str, list[Path]]:
    ravdess = sorted((shared / "ravdess" / "speech_audio").glob("Actor_*/*.flac"))
    return {
        "RAVDESS": ravdess,
        "EmoDB-dev": sorted((shared / "emodb_dev" / "wav").glob("*")),
        "CREMA-D": sorted((shared / "crema_d" / "VideoFlash").glob("*.flv"))
        + sorted((shared / "crema_d" / "AudioMP3").glob("*.mp3")),
    }


def non_speech(seconds: float = 10.0) -> dict[str, np.ndarray]:
    """Generated signals without speech (see module doc)."""
    from avemo.media.channels import colored_noise

    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = {"silence": np.zeros(n), "dither -90 dBFS": 10 ** (-90 / 20) * np.random.default_rng(0).standard_normal(n)}
    for kind in ("white", "pink", "brown"):
        for level in (-60, -40, -20, -10):
            for seed in range(3):
                out[f"{kind} noise {level} dBFS #{seed}"] = 10 ** (level / 20) * colored_noise(
                    n, kind, np.random.default_rng(seed))
    for mains in (50, 60):
        hum = sum(a * np.sin(2 * np.pi * mains * k * t) for k, a in ((1, 1.0), (2, 0.5), (3, 0.3), (5, 0.1)))
        for level in (-40, -20, -10):
            out[f"hum {mains} Hz {level} dBFS"] = 10 ** (level / 20) * hum / np.sqrt(np.mean(hum**2))
    for f in (440.0, 1000.0, 3000.0):
        for amp in (0.1, 0.5):
            out[f"tone {f:g} Hz x{amp}"] = amp * np.sin(2 * np.pi * f * t)
    out["beeps 1 kHz 0.5 s on/off"] = 0.3 * np.sin(2 * np.pi * 1000 * t) * (np.floor(t * 2) % 2 == 0)
    out["sweep 100-4000 Hz"] = 0.3 * np.sin(2 * np.pi * (100 * t + (3900 / (2 * seconds)) * t**2))
    for rate in (1, 4, 20):
        clicks = np.zeros(n)
        clicks[:: SR // rate] = 0.5
        out[f"clicks {rate}/s"] = clicks
    rng = np.random.default_rng(0)
    clicks = np.zeros(n)
    clicks[rng.choice(n, size=int(5 * seconds), replace=False)] = rng.uniform(-0.8, 0.8, int(5 * seconds))
    out["random clicks 5/s"] = clicks
    return {k: v.astype(np.float32) for k, v in out.items()}


def speech_fraction(segments, duration: float) -> float:
    return sum(b - a for a, b in segments) / duration if duration > 0 else 0.0


def measure_speech(detectors, signals, names=None) -> dict[str, dict]:
    """Per detector: share of signals with speech found, mean speech fraction, the names of the missed."""
    rows = {name: {"found": 0, "fraction": 0.0, "missed": []} for name in detectors}
    for i, y in enumerate(signals):
        for name, detect in detectors.items():
            segs = detect(y)
            rows[name]["found"] += bool(segs)
            rows[name]["fraction"] += speech_fraction(segs, len(y) / SR)
            if not segs and names is not None:
                rows[name]["missed"].append(names[i])
    n = max(1, len(signals))
    return {k: {**v, "found": v["found"] / n, "fraction": v["fraction"] / n, "n": len(signals)} for k, v in rows.items()}


def measure_non_speech(detectors, signals: dict[str, np.ndarray]):
    rows = {}
    for name, detect in detectors.items():
        fractions = {k: speech_fraction(detect(y), len(y) / SR) for k, y in signals.items()}
        flagged = sorted(k for k, f in fractions.items() if f > 0)
        rows[name] = {"found": len(flagged) / len(signals), "max_fraction": max(fractions.values()),
                      "n": len(signals), "flagged": flagged}
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "vad.md")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from avemo.features.audio.vad import VoiceActivityDetector
    from avemo.media import apply_channel, load_audio

    detectors = candidates()
    results: dict[str, dict] = {"speech": {}, "non_speech": {}}
    ravdess_subset = []
    for corpus, paths in speech_sets(args.shared_data).items():
        signals = [load_audio(p, SR) for p in tqdm(paths, desc=f"decode {corpus}", file=sys.stderr)]
        results["speech"][corpus] = measure_speech(detectors, tqdm(signals, desc=corpus, file=sys.stderr),
                                                   [p.name for p in paths])
        if corpus == "RAVDESS":
            ravdess_subset = signals[::6]
    for channel in CHANNELS:
        degraded = [apply_channel(y, SR, channel, seed=0, item=i) for i, y in enumerate(ravdess_subset)]
        results["speech"][f"RAVDESS/6 {channel}"] = measure_speech(detectors, degraded)
    quiet = non_speech()
    results["non_speech"] = measure_non_speech(detectors, quiet)
    probs = {k: float(VoiceActivityDetector().detect(y).probabilities.max()) for k, y in quiet.items()}
    results["non_speech_max_probability"] = dict(sorted(probs.items(), key=lambda kv: -kv[1])[:5])
    write(args.out, results, detectors)
    return 0


def write(out: Path, results: dict, detectors) -> None:
    lines = ["# Voice activity detection: Silero VAD against WebRTC VAD", "",
             "avemo ships Silero VAD (ONNX, run by onnxruntime) at threshold 0.3: it finds speech in the real "
             "clips about as often as WebRTC VAD and, unlike WebRTC VAD in any mode, in none of the generated "
             "non-speech signals. The threshold was chosen on RAVDESS (the training corpus) and the generated "
             "signals only; EmoDB-dev and the CREMA-D clips were not used to choose. Method: "
             "`benchmarks/vad_choice.py` (module docstring).", ""]
    lines += header("Measurements", ("onnxruntime", "webrtcvad-wheels"))
    lines += ["", "Speech found (share of clips with a speech segment / mean share of a clip marked speech):", ""]
    names = list(detectors)
    lines += ["| set | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for corpus, rows in results["speech"].items():
        n = next(iter(rows.values()))["n"]
        cells = [f"{rows[d]['found']:.1%} / {rows[d]['fraction']:.2f}" for d in names]
        lines.append(f"| {corpus} | {n} | " + " | ".join(cells) + " |")
    ns = results["non_speech"]
    lines += ["", f"No speech ({ns[names[0]]['n']} generated 10 s signals): share with any speech segment / "
              "largest share of a signal marked speech:", ""]
    lines += ["| detector | found speech in | largest fraction | signals flagged |", "|---|---|---|---|"]
    for d in names:
        flagged = ", ".join(ns[d]["flagged"][:12]) + (" ..." if len(ns[d]["flagged"]) > 12 else "")
        lines.append(f"| {d} | {ns[d]['found']:.1%} | {ns[d]['max_fraction']:.2f} | {flagged or '-'} |")
    top = results["non_speech_max_probability"]
    lines += ["", "Largest Silero speech probability of any frame of a non-speech signal: "
              + ", ".join(f"{k} {v:.3f}" for k, v in top.items()) + "."]
    missed = results["speech"]["RAVDESS"][names[0]]["missed"]
    lines += ["", f"RAVDESS clips without speech found by {names[0]} ({len(missed)}; name fields: modality, "
              f"channel, emotion, intensity, statement, repetition, actor): {', '.join(missed) or '-'}."]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out)
    json_path = out.with_suffix(".json")
    json_path.with_suffix(".tmp").write_text(json.dumps(results, indent=1), encoding="utf-8")
    json_path.with_suffix(".tmp").replace(json_path)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
