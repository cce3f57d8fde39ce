"""Cross-corpus and multi-corpus figures of ``whisper_logreg`` (issue 11 §2), written to
``docs/results/multicorpus.md`` and ``.json``.

* **RAVDESS only -> EmoDB-dev**: ``whisper_logreg`` (concatenated Whisper layer means, C = 0.03,
  no sample weights) trained on all 20 RAVDESS speakers, scored on the 241 EmoDB-dev clips over the
  6 labels both corpora share (the model's calm probability counts as neutral and its surprised
  probability is dropped, then the probabilities are renormalised; EmoDB boredom clips are left out).
* **RAVDESS + EmoDB-dev, leave one EmoDB speaker out**: 5 runs; each trains on RAVDESS and 4
  EmoDB-dev speakers in the shared label space (6 labels; or the masked union of all 9 with
  ``--label-space union_masked``) and tests on the 5th speaker over the 6 shared labels.

Every score is :func:`avemo.training.scoring.evaluate_checkpoint` on the run's checkpoint (the
labels meet over :func:`avemo.datasets.labels.comparison_map`).

Nothing is selected on the test speakers: ``C``, the input and the head come from earlier validation
runs (see ``avemo.models.encoders.logistic``); these runs have no model selection at all.

Usage: ``python benchmarks/multicorpus.py [--balance auto] [--label-space shared]`` (the Whisper
features come from the feature cache; extracting them first takes about 15 min on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, header  # noqa: E402

from avemo.cache import FeatureCache  # noqa: E402
from avemo.datasets.folds import Fold, split  # noqa: E402
from avemo.models import create_model  # noqa: E402
from avemo.output_file import OutputFile  # noqa: E402
from avemo.training import TrainConfig, load_data, train_run  # noqa: E402
from avemo.training.corpora import CorpusSpec, qualify  # noqa: E402
from avemo.training.data import gather  # noqa: E402
from avemo.training.experiment import load_corpora  # noqa: E402
from avemo.training.scoring import evaluate_checkpoint  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RAVDESS = DATA / "ravdess" / "speech_audio"
EMODB = DATA / "emodb_dev" / "wav"
EMODB_SPEAKERS = ("03", "08", "09", "10", "11")
MODEL = "whisper_logreg"


def ravdess_to_emodb(config: TrainConfig, cache: FeatureCache, out: Path) -> dict:
    ravdess = load_data("ravdess", RAVDESS)
    run = train_run(MODEL, ravdess, train_takes=ravdess.takes, val_takes=[], train_config=config, cache=cache,
                    out_dir=out / "ravdess_only", plots=False)
    ev = evaluate_checkpoint(out / "ravdess_only", load_data("emodb", EMODB), cache=cache)
    return {**ev.to_dict(), "train_seconds": run.train_seconds}


def leave_one_emodb_speaker_out(config: TrainConfig, cache: FeatureCache, out: Path, label_space: str) -> dict:
    """Each run is scored over the 6 labels RAVDESS and EmoDB share whatever its label space: its checkpoint
    on the test speaker's clips of the shared-space bundle (a ``union_masked`` model's calm counts as
    neutral, its surprised and boredom are dropped, :func:`~avemo.datasets.labels.comparison_map`).
    On the EmoDB reader's own labels a ``union_masked`` checkpoint would be scored over 7 labels, boredom
    included; a ``shared`` one over the same 6 either way."""
    specs = [CorpusSpec("ravdess", RAVDESS), CorpusSpec("emodb", EMODB)]
    bundle = load_corpora(specs, label_space)
    scoring = bundle if label_space == "shared" else load_corpora(specs, "shared")
    gathered = gather(bundle.takes, create_model(MODEL, num_classes=len(bundle.labels)).inputs, cache=cache)
    runs, ev = [], None
    for s in EMODB_SPEAKERS:
        test = qualify("emodb", s)
        fold = Fold(number=0, test=(test,), val=(), train=tuple(x for x in bundle.speakers if x != test))
        tr, _, _ = split(bundle.takes, fold)
        run = train_run(MODEL, bundle, train_takes=tr, val_takes=[], train_config=config, cache=cache,
                        out_dir=out / f"loso_emodb_{s}", plots=False, gathered=gathered)
        test_data = dataclasses.replace(scoring, takes=[t for t in scoring.takes if t.speaker == test])
        ev = evaluate_checkpoint(run.out_dir, test_data, cache=cache)
        m = ev.metrics
        runs.append({"speaker": test, "n": m.n, "accuracy": m.accuracy, "uar": m.uar, "macro_f1": m.macro_f1,
                     "train_seconds": run.train_seconds})
        print(f"{test}: UAR {m.uar:.3f}, accuracy {m.accuracy:.3f} (n={m.n})", flush=True)
    uar = np.array([r["uar"] for r in runs])
    return {"labels": list(ev.comparison.labels.emotions), "model_labels": list(bundle.labels.emotions),
            "comparison": ev.comparison.to_dict(), "runs": runs, "uar_mean": float(uar.mean()),
            "uar_std": float(uar.std()), "left_out": bundle.corpora.left_out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--balance", default="auto", help="sample weights of the multi-corpus runs")
    parser.add_argument("--label-space", default="shared", help="shared or union_masked")
    parser.add_argument("--runs", default="/tmp/avemo_multicorpus_runs", help="folder for the checkpoints")
    parser.add_argument("--name", default="multicorpus", help="report name under docs/results")
    parser.add_argument("--no-cross", action="store_true", help="only the leave-one-EmoDB-speaker-out runs")
    args = parser.parse_args()
    cache, out = FeatureCache(), Path(args.runs)
    lines = header(f"whisper_logreg across corpora (label space {args.label_space}, balance {args.balance})",
                   ())
    lines += [
        f"Model `{MODEL}` (concatenated Whisper-base layer means, 3584-d; C = 0.03; L-BFGS, float64).",
        "",
        "| protocol | labels | UAR | accuracy | n |",
        "|---|---|---|---|---|",
    ]
    cross = None
    if not args.no_cross:
        cross = ravdess_to_emodb(TrainConfig(balance="none"), cache, out)
        print(f"RAVDESS -> EmoDB-dev: UAR {cross['uar']:.3f}, accuracy {cross['accuracy']:.3f}", flush=True)
        lines.append(f"| RAVDESS (20 speakers, balance none) -> EmoDB-dev (5 speakers) | {len(cross['labels'])} shared | "
                     f"{cross['uar']:.3f} | {cross['accuracy']:.3f} | {cross['n']} |")
    loso = leave_one_emodb_speaker_out(TrainConfig(balance=args.balance), cache, out / args.name, args.label_space)
    for r in loso["runs"]:
        lines.append(f"| RAVDESS + EmoDB-dev minus {r['speaker']} -> {r['speaker']} | {len(loso['labels'])} shared "
                     f"| {r['uar']:.3f} | {r['accuracy']:.3f} | {r['n']} |")
    lines += [
        f"| leave one EmoDB speaker out, mean ± std over 5 | | {loso['uar_mean']:.3f} ± {loso['uar_std']:.3f} | | |",
        "",
        "Scored over the shared labels " + ", ".join(loso["labels"]) + " (RAVDESS calm counts as neutral; "
        "EmoDB boredom clips are not scored). Model classes: " + ", ".join(loso["model_labels"]) +
        f"; clips left out of training (no partner): {loso['left_out'] or 'none'}.",
        "",
    ]
    results = ROOT / "docs" / "results"
    with OutputFile(results / f"{args.name}.md") as f:
        f.commit("\n".join(lines))
    with OutputFile(results / f"{args.name}.json") as f:
        f.commit(json.dumps({"cross_corpus": cross, "leave_one_emodb_speaker_out": loso,
                             "balance": args.balance, "label_space": args.label_space}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
