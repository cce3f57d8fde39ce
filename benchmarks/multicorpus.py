"""Cross-corpus and multi-corpus figures of ``whisper_logreg`` (issue 11 §2), written to
``docs/results/multicorpus.md`` and ``.json``.

* **RAVDESS only -> EmoDB-dev**: ``whisper_logreg`` (concatenated Whisper layer means, C = 0.03,
  no sample weights) trained on all 20 RAVDESS speakers, scored on the 241 EmoDB-dev clips over the
  6 labels both corpora share (the model's calm probability counts as neutral and its surprised
  probability is dropped, then the probabilities are renormalised; EmoDB boredom clips are left out).
* **RAVDESS + EmoDB-dev, leave one EmoDB speaker out**: 5 runs; each trains on RAVDESS and 4
  EmoDB-dev speakers in the shared label space (6 labels) and tests on the 5th speaker.

Nothing is selected on the test speakers: ``C``, the input and the head come from earlier validation
runs (see ``avemo.models.encoders.logistic``); these runs have no model selection at all.

Usage: ``python benchmarks/multicorpus.py [--balance auto] [--label-space shared]`` (the Whisper
features come from the feature cache; extracting them first takes about 15 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, header  # noqa: E402

from avemo.cache import FeatureCache  # noqa: E402
from avemo.datasets.folds import Fold, split  # noqa: E402
from avemo.datasets.labels import COMPARISON_MERGES  # noqa: E402
from avemo.datasets.labels import EMODB as EMODB_LABELS  # noqa: E402
from avemo.datasets.labels import RAVDESS as RAVDESS_LABELS  # noqa: E402
from avemo.metrics import compute_metrics  # noqa: E402
from avemo.models import create_model  # noqa: E402
from avemo.models.batching import TensorData  # noqa: E402
from avemo.models.checkpoint import load_checkpoint  # noqa: E402
from avemo.output_file import OutputFile  # noqa: E402
from avemo.training import TrainConfig, load_data, train_run  # noqa: E402
from avemo.training.corpora import CorpusSpec, build_label_space, qualify  # noqa: E402
from avemo.training.data import gather  # noqa: E402
from avemo.training.experiment import load_corpora  # noqa: E402
from avemo.training.trainer import predict_proba  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RAVDESS = DATA / "ravdess" / "speech_audio"
EMODB = DATA / "emodb_dev" / "wav"
EMODB_SPEAKERS = ("03", "08", "09", "10", "11")
MODEL = "whisper_logreg"


def shared_probabilities(probs: np.ndarray, source, space, corpus: str) -> np.ndarray:
    """(n, len(source)) probabilities -> (n, len(space.labels)) over the shared labels, renormalised."""
    m = np.zeros((len(source), len(space.labels)))
    for i, e in enumerate(source.emotions):
        target = space.maps[corpus][e]
        if target is not None:
            m[i, space.labels.index(target)] = 1.0
    mapped = probs @ m
    return mapped / mapped.sum(axis=1, keepdims=True)


def shared_scores(probs: np.ndarray, y: np.ndarray, model_labels, shared):
    """Metrics over the ``shared`` labels of test clips labelled ``y`` (indices into ``model_labels``):
    clips whose label is not shared are left out; a model class counts as its shared label (itself, or
    its documented merge, calm -> neutral), other classes are dropped and the rest renormalised."""
    names = list(shared.emotions)
    m = np.zeros((len(model_labels), len(names)))
    for i, e in enumerate(model_labels):
        target = e if e in names else COMPARISON_MERGES.get(e, (None, ""))[0]
        if target in names:
            m[i, names.index(target)] = 1.0
    keep = np.array([model_labels[k] in names for k in y])
    p = probs[keep] @ m
    total = p.sum(axis=1, keepdims=True)
    p = np.divide(p, total, out=np.full_like(p, 1.0 / len(names)), where=total > 0)
    yy = np.array([names.index(model_labels[k]) for k in y[keep]])
    return compute_metrics(yy, p, names), int(keep.sum())


def ravdess_to_emodb(config: TrainConfig, cache: FeatureCache, out: Path) -> dict:
    ravdess = load_data("ravdess", RAVDESS)
    run = train_run(MODEL, ravdess, train_takes=ravdess.takes, val_takes=[], train_config=config, cache=cache,
                    out_dir=out / "ravdess_only", plots=False)
    emodb = load_data("emodb", EMODB)
    space = build_label_space({"ravdess": ravdess.labels, "emodb": emodb.labels}, "shared")

    ckpt = load_checkpoint(out / "ravdess_only")
    kept = [t for t in emodb.takes if space.maps["emodb"][t.emotion] is not None]
    gathered = gather(kept, ckpt.inputs, cache=cache)
    data = TensorData(ckpt.normalizer.transform(gathered), np.zeros(len(gathered), dtype=np.int64), ckpt.inputs)
    probs = shared_probabilities(predict_proba(ckpt.model, data), ckpt.labels, space, "ravdess")
    y = np.array([space.labels.index(space.maps["emodb"][t.emotion]) for t in gathered.takes])
    m = compute_metrics(y, probs, list(space.labels.emotions))
    return {"n": len(y), "train_seconds": run.train_seconds, "accuracy": m.accuracy, "uar": m.uar, "macro_f1": m.macro_f1,
            "labels": list(space.labels.emotions), "confusion": np.asarray(m.confusion).tolist(),
            "mapping": space.to_dict()}


def leave_one_emodb_speaker_out(config: TrainConfig, cache: FeatureCache, out: Path, label_space: str) -> dict:
    bundle = load_corpora([CorpusSpec("ravdess", RAVDESS), CorpusSpec("emodb", EMODB)], label_space)
    shared = build_label_space({"ravdess": RAVDESS_LABELS, "emodb": EMODB_LABELS}, "shared").labels
    gathered = gather(bundle.takes, create_model(MODEL, num_classes=len(bundle.labels)).inputs, cache=cache)
    runs = []
    for s in EMODB_SPEAKERS:
        test = qualify("emodb", s)
        fold = Fold(number=0, test=(test,), val=(), train=tuple(x for x in bundle.speakers if x != test))
        tr, _, te = split(bundle.takes, fold)
        run = train_run(MODEL, bundle, train_takes=tr, val_takes=[], test_takes=te, train_config=config,
                        cache=cache, out_dir=out / f"loso_emodb_{s}", plots=False, gathered=gathered)
        m, n = shared_scores(run.test_probabilities, run.test_labels, bundle.labels.emotions, shared)
        runs.append({"speaker": test, "n": n, "accuracy": m.accuracy, "uar": m.uar, "macro_f1": m.macro_f1,
                     "train_seconds": run.train_seconds})
        print(f"{test}: UAR {m.uar:.3f}, accuracy {m.accuracy:.3f} (n={n})", flush=True)
    uar = np.array([r["uar"] for r in runs])
    return {"labels": list(shared.emotions), "model_labels": list(bundle.labels.emotions), "runs": runs, "uar_mean": float(uar.mean()),
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
        lines.append(f"| RAVDESS (20 speakers, balance none) -> EmoDB-dev (5 speakers) | 6 shared | "
                     f"{cross['uar']:.3f} | {cross['accuracy']:.3f} | {cross['n']} |")
    loso = leave_one_emodb_speaker_out(TrainConfig(balance=args.balance), cache, out / args.name, args.label_space)
    for r in loso["runs"]:
        lines.append(f"| RAVDESS + EmoDB-dev minus {r['speaker']} -> {r['speaker']} | 6 shared | {r['uar']:.3f} | "
                     f"{r['accuracy']:.3f} | {r['n']} |")
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
