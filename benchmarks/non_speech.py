"""What the bundled model says when there is nothing to say: silence, noise, babble, and how it flags
uncertain answers on real speech (issue 11 §2, "Knowing when it doesn't know").

Four measurements with ``Predictor.default()`` (the bundle's ``abstention``: ``tau``, ``speech_share``,
Silero VAD thresholds; :mod:`avemo.inference.abstention`):

1. **Non-speech inputs**, 4 s each, as audio files: digital silence, white noise, pink (1/f) noise,
   a 50 Hz mains hum with harmonics, and two babbles (speech, but nobody's emotion): six takes of
   one held-out actor (actor 22, the first held-out speaker below; this input was called "6 talkers"
   before, but its six clips are all one voice), and one take of each of six different actors
   (01, 02, 04, 05, 06, 07: training speakers of the audio head and of its crowd detector), each
   summed with random offsets; and two videos with a
   face (the generated portrait) over silence and over white noise. Reported: the clip's emotion and
   top probability, whether it is flagged uncertain, why the audio is not used, and how many
   timeline windows carry an unflagged class at >= 50 % (and, in the JSON, each window's crowd
   score). The target: no emotion for non-speech,
   or a flagged one; never a single class at >= 50 % unflagged from the audio.
2. **Speech share of a window against the audio head's accuracy** (why ``speech_share = 0.5``):
   the RAVDESS audio clips of actors 22 and 23 (the final model's validation speakers: never
   trained on, but they chose its epoch) predicted with the gate off, every window's 8-class
   accuracy grouped by the share of the window that the VAD marks as speech.
3. **Uncertainty flag on held-out speech** (``tau``): share of clips flagged and accuracy of the
   flagged and unflagged ones, on the same RAVDESS clips and, cross-corpus, on EmoDB-dev (241 clips
   of 5 German speakers; scored over the 6 labels both share: calm added to neutral, surprised
   left out, boredom clips left out); and the confidence where an isotonic fit of held-out accuracy
   reaches 50 % (:func:`avemo.inference.calibration.fit_threshold`), the value a calibrated ``tau``
   would take there.
4. **The 13 real clips** (the RAVDESS video, six CREMA-D videos, six CREMA-D audio files) with both
   modalities: correct or not (mapped as in ``benchmarks/predict_real_clips.py``), top probability,
   uncertain, the clip's speech share and the windows gated for lack of speech.

Nothing here chooses a setting on the test data: the defaults were fixed before the run (``tau = 0.5``,
"more likely wrong than right" for calibrated probabilities; ``speech_share = 0.5``, "mostly speech").

    python benchmarks/non_speech.py [--shared-data ../shared/data] [--out docs/results/non_speech]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from predict_real_clips import label_for, true_label  # noqa: E402
from report import header  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SR = 16000
HELD_OUT = ("22", "23")
SHARED6 = ("neutral", "happy", "sad", "angry", "fearful", "disgust")
SHARE_BINS = (0.0, 0.25, 0.5, 0.75, 1.0001)


# ----------------------------------------------------------------------------- inputs
def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n)


def babble(clips: list[Path], seconds: float, rng: np.random.Generator) -> np.ndarray:
    from avemo.media import load_audio

    n = int(seconds * SR)
    out = np.zeros(n)
    for path in clips:
        y = load_audio(path, sr=SR)
        y = y / (np.sqrt(np.mean(y**2)) + 1e-9)
        start = int(rng.integers(0, max(1, len(y) - n))) if len(y) > n else 0
        piece = y[start : start + n]
        offset = int(rng.integers(0, max(1, n - len(piece) + 1)))
        out[offset : offset + len(piece)] += piece
    return out


def non_speech_inputs(folder: Path, held_out_clips: list[Path], crowd_clips: list[Path]) -> dict[str, Path]:
    import soundfile as sf

    from avemo.media.synth import write_clip

    rng = np.random.default_rng(0)
    n = 4 * SR
    t = np.arange(n) / SR
    signals = {
        "silence": np.zeros(n),
        "white noise": rng.standard_normal(n),
        "pink noise": pink_noise(n, rng),
        "mains hum (50 Hz + harmonics)": sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8)),
        "babble (6 takes of actor 22)": babble([held_out_clips[i * 10] for i in range(6)], 4.0, rng),
        "babble (6 different actors)": babble(crowd_clips, 4.0, rng),
    }
    paths = {}
    for i, (name, y) in enumerate(signals.items()):
        peak = np.abs(y).max()
        y = 0.3 * y / peak if peak > 0 else y  # -10 dBFS peak
        paths[name] = folder / f"{i}.wav"
        sf.write(paths[name], y.astype(np.float32), SR)
    paths["face + silence (video)"] = write_clip(folder / "face_silence.mp4", duration=4.0, size=(320, 240), fps=25,
                                                 face=True, audio="silence")
    paths["face + white noise (video)"] = write_clip(folder / "face_noise.mp4", duration=4.0, size=(320, 240), fps=25,
                                                     face=True, audio="noise")
    return paths


# ----------------------------------------------------------------------------- measurements
def confident_unflagged(r, modality: str | None = None) -> int:
    """Windows with an unflagged class at >= 50 % (``modality``: only those that modality contributed to)."""
    return sum(1 for w in r.timeline if w.emotion is not None and not w.uncertain
               and max(w.probabilities.values()) >= 0.5 and (modality is None or getattr(w, modality)))


def crowd_threshold(predictor) -> float:
    """The crowd detector's threshold (inf without one): windows at or above it get no audio term."""
    detector = getattr(predictor._backend.audio, "crowd", None)
    return np.inf if detector is None else detector.threshold


def crowd_windows(r, threshold: float) -> int:
    return sum(1 for w in r.timeline if w.crowd is not None and w.crowd >= threshold)


def measure_non_speech(predictor, inputs: dict[str, Path]) -> list[dict]:
    threshold = crowd_threshold(predictor)
    rows = []
    for name, path in inputs.items():
        r = predictor.predict(path)
        rows.append({
            "input": name,
            "emotion": r.emotion,
            "top": None if r.probabilities is None else max(r.probabilities.values()),
            "uncertain": r.uncertain,
            "speech": r.speech,
            "audio_used": r.modalities["audio"].used,
            "audio_reason": r.modalities["audio"].reason,
            "video_used": r.modalities["video"].used,
            "windows": len(r.timeline),
            "windows_with_emotion": sum(w.emotion is not None for w in r.timeline),
            "windows_crowd": crowd_windows(r, threshold),
            "crowd_scores": [None if w.crowd is None else round(w.crowd, 3) for w in r.timeline],
            "windows_confident_unflagged": confident_unflagged(r),
            "windows_confident_unflagged_audio": confident_unflagged(r, "audio"),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def ungated_predictor(tmp: Path):
    """The bundle with the speech gate off (``speech_share = 0``): every window gets its audio term."""
    from avemo import Predictor
    from avemo.inference.bundle import BUNDLE_DIR

    folder = tmp / "ungated"
    shutil.copytree(BUNDLE_DIR, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["config"]["abstention"] = {**meta["config"].get("abstention", {}), "speech_share": 0.0}
    (folder / "model.json").write_text(json.dumps(meta))
    return Predictor.from_bundle(folder)


def measure_held_out(predictor, ungated, clips: list[Path], tau: float, share: float) -> dict:
    """Window accuracy by speech share (gate off), and the clip-level flag (8 classes)."""
    from avemo.datasets.labels import RAVDESS
    from avemo.datasets.ravdess import parse_ravdess_name
    from avemo.inference.calibration import fit_threshold

    windows, clip_probs, clip_y = [], [], []
    for path in clips:
        truth = parse_ravdess_name(path.name)["emotion"]
        r = ungated.predict(path, modalities="audio")
        clip_probs.append([r.probabilities[e] for e in RAVDESS.emotions])
        clip_y.append(RAVDESS.index(truth))
        windows += [(w.speech, w.emotion == truth) for w in r.timeline]
    shares = np.array([s for s, _ in windows])
    right = np.array([c for _, c in windows])
    bins = []
    for lo, hi in zip(SHARE_BINS[:-1], SHARE_BINS[1:], strict=True):
        sel = (shares >= lo) & (shares < hi)
        bins.append({"from": lo, "to": min(hi, 1.0), "windows": int(sel.sum()),
                     "accuracy": float(right[sel].mean()) if sel.any() else None})
    probs, y = np.array(clip_probs), np.array(clip_y)
    out = {"clips": len(clips), "windows": len(windows), "by_speech_share": bins,
           "gated_windows": float((shares < share).mean()),
           "accuracy_kept_windows": float(right[shares >= share].mean()),
           "accuracy_gated_windows": float(right[shares < share].mean()) if (shares < share).any() else None}
    out.update(flag_stats(probs, y, probs.max(axis=1), tau))
    out["fitted_tau_50"] = fit_threshold(probs, y, 0.5)
    return out


def flag_stats(probs: np.ndarray, y: np.ndarray, top: np.ndarray, tau: float) -> dict:
    correct = probs.argmax(axis=1) == y
    flagged = top < tau
    return {"accuracy": float(correct.mean()), "flagged": float(flagged.mean()),
            "accuracy_flagged": float(correct[flagged].mean()) if flagged.any() else None,
            "accuracy_unflagged": float(correct[~flagged].mean()) if (~flagged).any() else None}


def measure_emodb(predictor, clips: list[Path], tau: float) -> dict:
    """Cross-corpus: the 8-label bundle on EmoDB-dev, scored over the 6 shared labels."""
    from avemo.datasets.emodb import parse_emodb_name
    from avemo.inference.calibration import fit_threshold

    probs, y, top = [], [], []
    for path in clips:
        truth = parse_emodb_name(path.name)["emotion"]
        if truth not in SHARED6:
            continue  # boredom: no RAVDESS counterpart
        r = predictor.predict(path)
        p = dict(r.probabilities)
        p["neutral"] += p.pop("calm")
        p.pop("surprised")
        v = np.array([p[e] for e in SHARED6])
        probs.append(v / v.sum())
        y.append(SHARED6.index(truth))
        top.append(max(r.probabilities.values()))  # what the user sees, and what tau is compared with
    probs, y = np.array(probs), np.array(y)
    out = {"clips": len(y), **flag_stats(probs, y, np.array(top), tau)}
    out["fitted_tau_50"] = fit_threshold(probs, y, 0.5)
    return out


def measure_real(predictor, clips: list[Path], share: float) -> list[dict]:
    threshold = crowd_threshold(predictor)
    rows = []
    for path in clips:
        dataset, truth = true_label(path)
        r = predictor.predict(path)
        pred = None if r.probabilities is None else label_for(r.probabilities, dataset, r.modalities["audio"].used)
        rows.append({"clip": path.name, "truth": truth, "prediction": pred, "correct": pred == truth,
                     "top": None if r.probabilities is None else max(r.probabilities.values()),
                     "uncertain": r.uncertain, "speech": r.speech, "windows": len(r.timeline),
                     "windows_gated": sum(1 for w in r.timeline if w.speech is not None and w.speech < share),
                     "windows_crowd": crowd_windows(r, threshold),
                     "audio_used": r.modalities["audio"].used, "audio_reason": r.modalities["audio"].reason,
                     "windows_uncertain": sum(w.uncertain for w in r.timeline)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


# ----------------------------------------------------------------------------- report
def num(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def report(results: dict) -> str:
    a = results["abstention"]
    lines = [
        "# Knowing when it doesn't know: non-speech inputs and the uncertainty flag",
        "",
        f"The bundled model (`{results['model']}`) with its abstention settings: tau = {a['tau']}, "
        f"speech_share = {a['speech_share']}, min_speech = {a['min_speech']} s, Silero VAD threshold "
        f"{a['vad']['threshold']}. Method: the module "
        "docstring of `benchmarks/non_speech.py`.",
        "",
        *results["header"],
        "",
        "## 1. Non-speech inputs (4 s)",
        "",
        "| input | emotion | top p | uncertain | speech share | audio | windows with emotion | "
        "windows gated (crowd) | windows unflagged at >= 50 % (audio among them) |",
        "|---|---|---:|---|---:|---|---:|---:|---:|",
    ]
    for r in results["non_speech"]:
        audio = "used" if r["audio_used"] else f"not used: {r['audio_reason']}"
        lines.append(f"| {r['input']} | {r['emotion'] or '–'} | {num(r['top'])} | "
                     f"{'yes' if r['uncertain'] else 'no'} | {num(r['speech'])} | {audio} | "
                     f"{r['windows_with_emotion']}/{r['windows']} | {r['windows_crowd']}/{r['windows']} | "
                     f"{r['windows_confident_unflagged']} "
                     f"({r['windows_confident_unflagged_audio']}) |")
    if "held_out" in results:
        lines += held_out_sections(results)
    lines += [
        "",
        "## 4. The 13 real clips (both modalities)",
        "",
        "| clip | true | prediction | top p | uncertain | speech share | windows gated (no speech) | "
        "windows gated (crowd) | audio | windows uncertain |",
        "|---|---|---|---:|---|---:|---:|---:|---|---:|",
    ]
    for r in results["real"]:
        mark = "–" if r["prediction"] is None else f"{r['prediction']} {'✓' if r['correct'] else '✗'}"
        lines.append(f"| {r['clip']} | {r['truth']} | {mark} | {num(r['top'])} | {'yes' if r['uncertain'] else 'no'} | "
                     f"{num(r['speech'])} | {r['windows_gated']}/{r['windows']} | {r['windows_crowd']}/{r['windows']} | "
                     f"{'used' if r['audio_used'] else 'not used: ' + r['audio_reason']} | "
                     f"{r['windows_uncertain']}/{r['windows']} |")
    real = results["real"]
    lines += ["", f"Correct: {sum(r['correct'] for r in real)}/{len(real)}; flagged uncertain: "
              f"{sum(r['uncertain'] for r in real)}/{len(real)} (of them correct: "
              f"{sum(r['correct'] for r in real if r['uncertain'])}); unflagged and wrong: "
              f"{sum(not r['correct'] for r in real if not r['uncertain'])}."]
    lines += ["", "## What this shows", "", *summary(results)]
    return "\n".join(lines) + "\n"


def held_out_sections(results: dict) -> list[str]:
    """Parts 2 and 3 of the report."""
    a, h, e = results["abstention"], results["held_out"], results["emodb_dev"]
    return [
        "",
        f"## 2. Speech share of a window and the audio head's accuracy (RAVDESS actors {', '.join(HELD_OUT)}, "
        f"{h['clips']} clips, {h['windows']} windows of 1 s every 0.5 s, gate off, 8 classes)",
        "",
        "| speech share | windows | accuracy |",
        "|---|---:|---:|",
        *[f"| [{b['from']:.2f}, {b['to']:.2f}{']' if b['to'] >= 1 else ')'} | {b['windows']} | {pct(b['accuracy'])} |"
          for b in h["by_speech_share"]],
        "",
        f"With speech_share = {a['speech_share']}: {pct(h['gated_windows'])} of these windows lose their audio term; "
        f"the audio head was right on {pct(h['accuracy_gated_windows'])} of them, against "
        f"{pct(h['accuracy_kept_windows'])} on the windows kept.",
        "",
        f"## 3. The uncertainty flag (tau = {a['tau']}) on held-out speech",
        "",
        "| data | clips | accuracy | flagged | accuracy of flagged | accuracy of unflagged | "
        "confidence where held-out accuracy reaches 50 % |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| RAVDESS actors {', '.join(HELD_OUT)} (8 classes, audio) | {h['clips']} | {pct(h['accuracy'])} | "
        f"{pct(h['flagged'])} | {pct(h['accuracy_flagged'])} | {pct(h['accuracy_unflagged'])} | {h['fitted_tau_50']:.2f} |",
        f"| EmoDB-dev (6 shared classes, cross-corpus) | {e['clips']} | {pct(e['accuracy'])} | {pct(e['flagged'])} | "
        f"{pct(e['accuracy_flagged'])} | {pct(e['accuracy_unflagged'])} | {e['fitted_tau_50']:.2f} |",
    ]


def summary(results: dict) -> list[str]:
    """The findings, computed from the numbers above."""
    rows = {r["input"]: r for r in results["non_speech"]}
    quiet = [n for n, r in rows.items() if r["emotion"] is None]
    crowds = [n for n, r in rows.items() if not r["audio_used"] and "several people" in (r["audio_reason"] or "")]
    loud = [f"{n} ({r['emotion']} at {r['top']:.2f}{', flagged' if r['uncertain'] else ', not flagged'})"
            for n, r in rows.items() if r["windows_confident_unflagged_audio"] > 0]
    first = (f"- No emotion is reported for {', '.join(quiet)}; with a face, only the face speaks"
             " (and the audio never adds a vote). "
             + (f"Not solved: {'; '.join(loud)}. Babble is speech to the VAD, and the audio head, trained on single "
                "actors, answers it." if loud else "No non-speech input gets an unflagged audio answer at >= 50 %.")
             + (f" The crowd gate takes the audio from: {', '.join(crowds)}." if crowds else ""))
    if "held_out" not in results:
        return [first]
    h, e = results["held_out"], results["emodb_dev"]
    upper = [b["accuracy"] for b in h["by_speech_share"][1:] if b["accuracy"] is not None]
    emodb_fit = ("held-out accuracy never reaches 50 % at any confidence" if e["fitted_tau_50"] >= 1.0 else
                 f"held-out accuracy reaches 50 % only from a confidence of {e['fitted_tau_50']:.2f}")
    return [
        first,
        f"- Windows with under a quarter of speech are the worst for the audio head "
        f"({pct(h['by_speech_share'][0]['accuracy'])} against {pct(h['accuracy_kept_windows'])} on the windows kept; "
        f"chance is 12.5 %); the bins from 0.25 up lie within {100 * (max(upper) - min(upper)):.0f} points of each "
        f"other on these {h['windows']} windows, so 0.5 is a choice of meaning (\"mostly speech\") more than a "
        f"measured optimum. Window-level accuracy is far below the clip's ({pct(h['accuracy'])}): the head was "
        "trained on whole clips.",
        f"- On held-out RAVDESS speakers, flagged answers are right {pct(h['accuracy_flagged'])} of the time and "
        f"unflagged ones {pct(h['accuracy_unflagged'])}. Cross-corpus, on EmoDB-dev, the model is right "
        f"{pct(e['accuracy'])} of the time and flags only {pct(e['flagged'])}: its confidence is not calibrated "
        f"there ({emodb_fit}), which a threshold cannot repair; the audio head itself must generalise (the "
        "multi-corpus bundle of issue 11).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "non_speech")
    parser.add_argument("--skip-held-out", action="store_true",
                        help="skip parts 2 and 3: for a bundle trained on actors 22 and 23 and on EmoDB-dev (the "
                             "multi-corpus default model), where they are not held out")
    args = parser.parse_args()
    from avemo import Predictor

    shared = args.shared_data
    held_out = sorted(p for a in HELD_OUT for p in (shared / "ravdess" / "speech_audio" / f"Actor_{a}").glob("*.flac"))
    emodb = sorted((shared / "emodb_dev" / "wav").glob("*"))
    crowd = [sorted((shared / "ravdess" / "speech_audio" / f"Actor_{a}").glob("*.flac"))[0]
             for a in ("01", "02", "04", "05", "06", "07")]
    real = [shared / "ravdess" / "videos" / "01-01-07-02-02-01-01.mp4",
            *sorted((shared / "crema_d" / "VideoFlash").glob("*.flv")),
            *sorted((shared / "crema_d" / "AudioMP3").glob("*.mp3"))]
    if len(held_out) != 120 or len(emodb) < 200 or len(real) != 13:
        sys.exit(f"the data was not found under {shared}")
    predictor = Predictor.default()
    a = predictor.abstention
    t0 = time.perf_counter()
    results = {"model": f"{predictor.model_info['name']} v{predictor.model_info['version']}",
               "abstention": predictor.info()["abstention"],
               "header": header("Measurements", ("onnxruntime", "silero-vad"))[2:]}
    with tempfile.TemporaryDirectory() as tmp:
        results["non_speech"] = measure_non_speech(predictor, non_speech_inputs(Path(tmp), held_out, crowd))
        if not args.skip_held_out:
            results["held_out"] = measure_held_out(predictor, ungated_predictor(Path(tmp)), held_out, a.tau,
                                                   a.speech_share)
    if not args.skip_held_out:
        print(json.dumps(results["held_out"]), flush=True)
        results["emodb_dev"] = measure_emodb(predictor, emodb, a.tau)
        print(json.dumps(results["emodb_dev"]), flush=True)
    results["real"] = measure_real(predictor, real, a.speech_share)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = report(results)
    for suffix, content in ((".md", text), (".json", json.dumps(results, indent=2) + "\n")):
        tmp_path = args.out.with_suffix(suffix + ".tmp")
        tmp_path.write_text(content, encoding="utf-8")
        os.replace(tmp_path, args.out.with_suffix(suffix))
    print(text)


if __name__ == "__main__":
    main()
