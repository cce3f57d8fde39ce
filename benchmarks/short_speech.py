"""How much speech the audio expert needs: accuracy and confidence against the seconds of speech it hears,
and the ``min_speech`` gate chosen from them (:mod:`avemo.inference.abstention`).

The defect: an angry EmoDB clip cropped to 0.3 s of speech came out "fearful 99.6 %", not flagged
uncertain. Nothing looked at how many seconds of speech an answer was made from.

**Model.** The bundle's audio recipe (``benchmarks/default_model_recipe.toml``, trained by the build's
own steps: :func:`build_default_model.prepare` and :func:`avemo.training.train_run`, degraded copies
included) trained without the held-out speakers: RAVDESS actors 20, 21, 22 and 23 (the test speakers of
the build's in-domain fold 5) and EmoDB speaker 08 (fixed before any figure was seen: a speaker of the
EmoDB-dev folder only, so none of his clips is in training). It is scored through the predictor
(``avemo.Predictor`` on a copy of the bundle whose audio head is this one, its temperature, ``tau``, VAD
and crowd detector; ``min_speech = 0`` so that every answer is seen), audio only.

**Crops.** Each held-out clip (the 6 labels the bundle knows: RAVDESS calm counts as neutral, surprised
and boredom are left out), and crops of it of 0.2, 0.3, 0.5, 0.75, 1.0, 1.5 and 2.0 s starting at its
first VAD speech onset (Silero VAD with the bundle's thresholds, :mod:`avemo.features.audio.vad`),
written as 16 kHz WAV files. For each: the answer, its top probability, whether it is flagged
uncertain (the bundle's ``tau``) and the seconds of speech the predictor's VAD found in it (what the gate
reads). A crop where the VAD finds no speech gets no answer ("no speech", as today).

**Choice on validation speakers only.** ``min_speech``: the least seconds of speech at which an isotonic
fit of "the answer is right" on the seconds of speech, over the answers of every crop and clip of the
validation speakers (RAVDESS 22 and 23), reaches the recipe's ``min_accuracy`` (0.5, as ``tau``: flag
an answer more likely wrong than right; :func:`avemo.inference.calibration.least_reaching`), rounded
up to 0.05 s. **Checked on the test speakers** (RAVDESS 20 and 21; EmoDB 08, another language), which
did not choose it: per crop, the answers it flags uncertain (made from less speech), and the accuracy of
those and of the others. The predictions are kept in ``WORK`` (keyed by the head's weights), so a rerun only
writes the report.

    python benchmarks/short_speech.py [--cache DIR] [--work DIR] [--out docs/results/short_speech]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from report import header  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SR = 16000
CROPS = (0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
FULL = "full clip"
#: held-out group -> (corpus reader, its speakers); only "validation" chooses
GROUPS = {"validation": ("ravdess", ("22", "23")), "test": ("ravdess", ("20", "21")), "test_emodb": ("emodb", ("08",))}
GROUP_NAMES = {"validation": "RAVDESS 22, 23 (validation: chooses)", "test": "RAVDESS 20, 21 (test)",
               "test_emodb": "EmoDB 08 (test, German)"}
STEP = 0.05  # min_speech is rounded up to this many seconds


# ----------------------------------------------------------------------------- the held-out head
def held_out_group(data, take) -> str | None:
    """The group of :data:`GROUPS` a take of the recipe's corpora belongs to (None: a training take)."""
    from build_default_model import bare, reader_of

    reader = reader_of(data)[take.dataset]
    return next((g for g, (corpus, speakers) in GROUPS.items()
                 if corpus == reader and bare(take.speaker) in speakers), None)


def train_head(args, folder: Path) -> list:
    """The recipe's audio head trained without the held-out speakers, into ``folder`` (kept there: a rerun
    reuses it); returns the held-out takes as ``(group, take)``."""
    from build_default_model import RECIPE, prepare

    from avemo.training import train_run

    build = SimpleNamespace(recipe=RECIPE, estimates_without_copies=False, cache=args.cache, workers=1)
    s = prepare(build)  # sets build.audio_model
    held = [(held_out_group(s.data, t), t) for t in s.data.takes]
    held = [(g, t) for g, t in held if g is not None]
    if not (folder / "model.safetensors").is_file():
        import torch

        torch.set_num_threads(1)
        keys = {t.key for _, t in held}
        train = [t for t in s.data.takes if t.key not in keys]
        print(f"training the recipe's head on {len(train)} takes ({len(held)} held out)", flush=True)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        train_run(build.audio_model, s.data, train_takes=train, val_takes=[], model_config=s.model_config,
                  train_config=s.train, cache=s.cache, out_dir=tmp, workers=1, plots=False, gathered=s.gathered)
        for extra in ("history.csv", "curves.png"):
            (tmp / extra).unlink(missing_ok=True)
        os.replace(tmp, folder)
    return held


def fold_bundle(head: Path, folder: Path) -> Path:
    """A copy of the bundled model whose audio head is ``head``, without ``min_speech`` (0: no answer is
    flagged for its length; the report applies it) and without the speaker-normalised head (trained on
    every speaker; not used here)."""
    from avemo.inference.bundle import BUNDLE_DIR

    shutil.copytree(BUNDLE_DIR, folder, ignore=shutil.ignore_patterns("audio", "audio_spknorm"))
    shutil.copytree(head, folder / "audio")
    meta = json.loads((folder / "model.json").read_text())
    meta["config"]["abstention"] = {**meta["config"]["abstention"], "min_speech": 0.0}
    meta["config"]["speaker_norm"] = None
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def digest(folder: Path) -> str:
    return hashlib.blake2b((folder / "model.safetensors").read_bytes(), digest_size=8).hexdigest()


# ----------------------------------------------------------------------------- crops and predictions
def onset(y: np.ndarray, vad) -> float | None:
    """The start (seconds) of the first speech segment of ``y`` (16 kHz), None without speech."""
    segments = vad.detect(y, SR).segments
    return segments[0][0] if segments else None


def crops(y: np.ndarray, start: float, lengths: Sequence[float] = CROPS) -> dict[float, np.ndarray]:
    """``y`` from ``start`` for each of ``lengths`` seconds (shorter where the clip ends first)."""
    a = int(round(start * SR))
    return {length: y[a : a + int(round(length * SR))] for length in lengths}


def answer(predict: Callable[[Path], object], path: Path) -> dict:
    """What the predictor says of ``path`` (audio only): emotion, probabilities, top probability, flag,
    and the VAD's seconds of speech in it (what ``min_speech`` is compared with)."""
    r = predict(path)
    audio = r.modalities["audio"]
    return {"emotion": r.emotion, "top": None if r.probabilities is None else max(r.probabilities.values()),
            "uncertain": r.uncertain, "used": audio.used, "reason": audio.reason, "duration": r.duration,
            "speech_seconds": None if r.speech is None else r.speech * r.duration}


def measure(predict: Callable[[Path], object], clips: Sequence[tuple[str, str, str, Path]], vad,
            known: dict[str, dict] | None = None, save: Callable[[dict], None] | None = None) -> list[dict]:
    """Rows for every clip ``(group, name, truth, path)``: the whole clip and its crops from the speech
    onset (:data:`CROPS`). ``known``: rows already measured, by ``name/crop`` (reused); ``save``: called
    with every new row's key and row as they come."""
    import soundfile as sf

    from avemo.media import load_audio

    known = dict(known or {})
    rows = []
    with tempfile.TemporaryDirectory(prefix="avemo-short-") as tmp:
        for group, name, truth, path in clips:
            todo = {c: f"{name}/{c}" for c in (FULL, *CROPS)}
            if any(k not in known for k in todo.values()):
                y = load_audio(path, sr=SR)
                start = onset(y, vad)
                for crop, key in todo.items():
                    if key in known:
                        continue
                    if crop == FULL:
                        row = answer(predict, path)
                    elif start is None:
                        row = {"emotion": None, "top": None, "uncertain": True, "used": False,
                               "reason": "no speech in the whole clip", "duration": 0.0, "speech_seconds": 0.0}
                    else:
                        piece = crops(y, start, (crop,))[crop]
                        wav = Path(tmp) / "crop.wav"
                        sf.write(wav, piece, SR, subtype="FLOAT")
                        row = answer(predict, wav)
                    known[key] = {"group": group, "clip": name, "truth": truth, "crop": crop, "onset": start, **row}
                    if save is not None:
                        save(key, known[key])
            rows += [known[k] for k in todo.values()]
    return rows


# ----------------------------------------------------------------------------- analysis
def right(row: dict) -> bool:
    return row["emotion"] == row["truth"]


def mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def by_crop(rows: Sequence[dict], tau: float, min_speech: float | None = None) -> list[dict]:
    """Per crop (and the full clip): clips, share answered, accuracy (of all crops: no answer is not right,
    and of the answers), mean top probability and share flagged uncertain (of the answers), mean seconds of
    speech the VAD found; with ``min_speech``, the answers it flags (made from less speech) and the accuracy
    of those and of the others."""
    out = []
    for crop in (*CROPS, FULL):
        sel = [r for r in rows if r["crop"] == crop]
        if not sel:
            continue
        answered = [r for r in sel if r["used"]]
        entry = {"crop": crop, "clips": len(sel), "answered": len(answered) / len(sel),
                 "accuracy": mean([right(r) for r in sel]),
                 "accuracy_answered": mean([right(r) for r in answered]),
                 "top": mean([r["top"] for r in answered]),
                 "flagged": mean([r["top"] < tau for r in answered]),
                 "confident_wrong": mean([r["top"] >= tau and not right(r) for r in answered]),
                 "speech_seconds": mean([r["speech_seconds"] or 0.0 for r in sel])}
        if min_speech is not None:
            enough = [r for r in answered if r["speech_seconds"] >= min_speech]
            short = [r for r in answered if r["speech_seconds"] < min_speech]
            entry.update({"short": len(short) / len(sel), "accuracy_enough": mean([right(r) for r in enough]),
                          "accuracy_short": mean([right(r) for r in short])})
        out.append(entry)
    return out


def choose_min_speech(rows: Sequence[dict], min_accuracy: float) -> dict:
    """``min_speech`` from the answers of ``rows`` (the validation speakers'): the least seconds of speech
    where an isotonic fit of correctness reaches ``min_accuracy``, rounded up to :data:`STEP` (None:
    never reached)."""
    from avemo.inference.calibration import least_reaching

    answered = [r for r in rows if r["used"]]
    seconds = np.array([r["speech_seconds"] for r in answered])
    fitted = least_reaching(seconds, np.array([right(r) for r in answered]), min_accuracy) if answered else None
    chosen = None if fitted is None else round(math.ceil(fitted / STEP - 1e-9) * STEP, 2)
    return {"answers": len(answered), "min_accuracy": min_accuracy, "fitted": fitted, "min_speech": chosen}


def gate_check(rows: Sequence[dict], min_speech: float, tau: float) -> dict:
    """``min_speech`` on a held-out group: the answers it flags (short), the accuracy of those and of the
    others, and the confident wrong answers (unflagged at ``tau`` and wrong) left among all crops and clips."""
    answered = [r for r in rows if r["used"]]
    enough = [r for r in answered if r["speech_seconds"] >= min_speech]
    short = [r for r in answered if r["speech_seconds"] < min_speech]

    def confident_wrong(selection):
        return sum(r["top"] >= tau and not right(r) for r in selection)

    return {"answers": len(answered), "short": len(short), "accuracy_enough": mean([right(r) for r in enough]),
            "accuracy_short": mean([right(r) for r in short]),
            "confident_wrong_before": confident_wrong(answered), "confident_wrong_after": confident_wrong(enough),
            "full_clips_short": sum(r["crop"] == FULL for r in short)}


def analyse(rows: Sequence[dict], tau: float, min_accuracy: float) -> dict:
    """The choice on the validation group and every group's tables with it."""
    groups = {g: [r for r in rows if r["group"] == g] for g in GROUPS}
    groups = {g: v for g, v in groups.items() if v}
    choice = choose_min_speech(groups.get("validation", []), min_accuracy) if "validation" in groups else None
    min_speech = None if choice is None else choice["min_speech"]
    out = {"choice": choice, "groups": {}}
    for g, v in groups.items():
        out["groups"][g] = {"clips": len({r["clip"] for r in v}), "by_crop": by_crop(v, tau, min_speech),
                            "reached_here": choose_min_speech(v, min_accuracy)["fitted"]}
        if min_speech is not None:
            out["groups"][g]["gate"] = gate_check(v, min_speech, tau)
    return out


# ----------------------------------------------------------------------------- report
def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def crop_name(crop) -> str:
    return crop if crop == FULL else f"{crop:g} s"


def report(results: dict) -> str:
    a, analysis = results["abstention"], results["analysis"]
    choice = analysis["choice"]
    lines = [
        "# How much speech the audio expert needs (min_speech)",
        "",
        f"The bundle's audio recipe trained without RAVDESS actors 20-23 and EmoDB speaker 08 ({results['train']}), "
        f"scored through the predictor with the bundle's temperature, tau = {a['tau']:.3f}, Silero VAD "
        f"threshold {a['vad']['threshold']} and crowd detector, audio only; crops of the seconds given start at "
        "each clip's first VAD speech onset. Method: the module docstring of `benchmarks/short_speech.py`.",
        "",
        *results["header"],
        f"- This run: {results['seconds']:.0f} s ({results['seconds_training']:.0f} s preparing and, where "
        f"`WORK` had none, training the head); {results['measured_now']} predictions made, {results['reused']} "
        "reused from `WORK`.",
        "",
    ]
    if choice is not None:
        reached = ("never reached" if choice["fitted"] is None
                   else f"reached from {choice['fitted']:.3f} s of speech")
        lines += ["## The choice (validation speakers only)", "",
                  f"Isotonic fit of \"the answer is right\" on the seconds of speech the VAD found, over the "
                  f"{choice['answers']} answers of RAVDESS actors 22 and 23 (every crop and clip): accuracy "
                  f"{choice['min_accuracy']:g} is {reached}; **min_speech = {num(choice['min_speech'])} s** "
                  f"(rounded up to {STEP:g} s).", ""]
    for g, data in analysis["groups"].items():
        lines += [f"## {GROUP_NAMES[g]}: {data['clips']} clips", "",
                  "| speech given | answered | accuracy (all) | accuracy (answers) | mean top p | flagged uncertain | "
                  "unflagged and wrong | VAD speech (mean s) | flagged by min_speech | accuracy (enough speech) | "
                  "accuracy (flagged by min_speech) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for e in data["by_crop"]:
            lines.append(f"| {crop_name(e['crop'])} | {pct(e['answered'])} | {pct(e['accuracy'])} | "
                         f"{pct(e['accuracy_answered'])} | {num(e['top'])} | {pct(e['flagged'])} | "
                         f"{pct(e['confident_wrong'])} | {num(e['speech_seconds'])} | {pct(e.get('short'))} | "
                         f"{pct(e.get('accuracy_enough'))} | {pct(e.get('accuracy_short'))} |")
        if "gate" in data:
            gate = data["gate"]
            lines += ["", f"With min_speech = {num(choice['min_speech'])} s: {gate['short']} of {gate['answers']} "
                      f"answers flagged uncertain for too little speech ({gate['full_clips_short']} of them whole "
                      f"clips); accuracy of the other answers {pct(gate['accuracy_enough'])}, of those flagged "
                      f"{pct(gate['accuracy_short'])}; answers unflagged and wrong: {gate['confident_wrong_before']} before, "
                      f"{gate['confident_wrong_after']} after. Where an isotonic fit on this group alone reaches "
                      f"{choice['min_accuracy']:g}: {num(data['reached_here'], 3)} s (reported, not used)."]
        lines.append("")
    lines += ["## What this shows", "", *summary(analysis)]
    return "\n".join(lines) + "\n"


def summary(analysis: dict) -> list[str]:
    """The findings, computed from the tables."""
    lines = []
    for g, data in analysis["groups"].items():
        rows = {e["crop"]: e for e in data["by_crop"]}
        short, full = rows.get(0.3), rows.get(FULL)
        if short and full and short["top"] is not None:
            lines.append(f"- {GROUP_NAMES[g]}: from 0.3 s of speech the answers are right {pct(short['accuracy_answered'])} "
                         f"of the time at a mean top probability of {short['top']:.2f}, from the whole clip "
                         f"{pct(full['accuracy_answered'])} at {full['top']:.2f}: the confidence hardly falls with the "
                         "speech, so tau cannot catch these answers.")
    choice = analysis["choice"]
    tests = {g: d["gate"] for g, d in analysis["groups"].items() if g != "validation" and "gate" in d}
    if choice is not None and choice["min_speech"] is not None and tests:
        lines.append(f"- On the test speakers, which did not choose it, min_speech = {choice['min_speech']:g} s flags "
                     + "; ".join(f"{GROUP_NAMES[g]}: {t['short']} of {t['answers']} answers, right "
                                 f"{pct(t['accuracy_short'])} against {pct(t['accuracy_enough'])} for the others, "
                                 f"unflagged wrong answers {t['confident_wrong_before']} -> {t['confident_wrong_after']}, "
                                 f"whole clips flagged {t['full_clips_short']}" for g, t in tests.items()) + ".")
    return lines


def json_text(results: dict) -> str:
    """The results as JSON: the analysis indented, one line per measured row."""
    head = json.dumps({k: v for k, v in results.items() if k != "rows"}, indent=1)
    rows = ",\n".join("  " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})
                       for r in results["rows"])
    return head[:-2] + ',\n "rows": [\n' + rows + "\n ]\n}\n"


def write(out: Path, results: dict) -> None:
    """``out``.md and ``out``.json, each written whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, content in ((".md", report(results)), (".json", json_text(results))):
        tmp = out.with_suffix(suffix + ".tmp")
        tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, out.with_suffix(suffix))


# ----------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (default: ~/.cache/avemo/features)")
    parser.add_argument("--work", type=Path, default=None,
                        help="the held-out head and the predictions, kept for reruns (default: short_speech/ next "
                             "to the feature cache)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "short_speech")
    args = parser.parse_args(argv)
    from build_default_model import RECIPE

    from avemo import Predictor, config
    from avemo.cache.store import default_cache_dir
    from avemo.features.audio.vad import VoiceActivityDetector

    work = args.work or (args.cache or default_cache_dir()).parent / "short_speech"
    work.mkdir(parents=True, exist_ok=True)
    recipe = config.load_file(RECIPE)
    t0 = time.perf_counter()
    held = train_head(args, work / "head")
    seconds_train = time.perf_counter() - t0
    store = work / f"predictions-{digest(work / 'head')}.jsonl"
    known = {}
    if store.is_file():
        for line in store.read_text().splitlines():
            key, row = json.loads(line)
            known[key] = row
    with tempfile.TemporaryDirectory(prefix="avemo-short-bundle-") as tmp, store.open("a") as log:
        predictor = Predictor.from_bundle(fold_bundle(work / "head", Path(tmp) / "bundle"), device="cpu")
        a = predictor.abstention
        vad = VoiceActivityDetector(a.vad)
        clips = [(g, t.key, t.emotion, Path(t["audio"].path)) for g, t in held]

        def save(key: str, row: dict) -> None:
            log.write(json.dumps([key, row]) + "\n")
            log.flush()
            measured.append(key)

        measured: list[str] = []

        rows = measure(lambda p: predictor.predict(p, modalities="audio"), clips, vad, known, save)
        abstention = predictor.info()["abstention"]
    results = {"header": header("Measurements", ("onnxruntime", "silero-vad"))[2:],
               "abstention": abstention, "crops": list(CROPS),
               "train": "degraded copies included; RAVDESS + EmoDB, the recipe's weights",
               "groups": {g: {"corpus": c, "speakers": list(s)} for g, (c, s) in GROUPS.items()},
               "seconds_training": round(seconds_train, 1), "seconds": round(time.perf_counter() - t0, 1),
               "measured_now": len(measured), "reused": len(rows) - len(measured),
               "analysis": analyse(rows, a.tau, float(recipe["calibration"]["min_accuracy"])), "rows": rows}
    write(args.out, results)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
