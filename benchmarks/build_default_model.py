"""Build the bundled default model (``src/avemo/inference/default_model/``) from the shared RAVDESS audio.

What it does, every step with the project's own trainer (:func:`avemo.training.train_run`):

1. **Cross-validation** of the audio recipe (``benchmarks/default_model_recipe.toml``: a zoo audio
   model on the ``whisper_base`` embedding, its options and the training config) on the 20 shared RAVDESS speakers, with the built-in speaker-disjoint plan
   ``ravdess_au`` (5 folds of 4 test speakers; early stopping on 2 validation speakers taken from
   the training speakers). The out-of-fold predictions (every clip predicted by the fold model
   that never saw its speaker) give the accuracy, macro-F1 and UAR written to the model card.
2. **Temperature** of the audio expert (Guo et al. 2017, §4.2): the T minimising the negative
   log-likelihood of ``softmax(log p / T)`` over the out-of-fold predictions (held-out speakers
   only: the final model's calibration is estimated on speakers its recipe never trained on).
3. **Final audio head** trained on all 20 speakers, with speakers 22 and 23 (one male, one
   female: the last two in sorted order) as validation speakers for early stopping, written as a
   trainer checkpoint to ``OUT/audio``.
4. ``OUT/model.json``: the bundle configuration (labels, timeline grid, video expert options,
   fusion weights and temperatures) with the metrics and provenance, and the numbers block of
   the bundle's ``model_card.md`` (between its ``<!-- build:begin -->`` / ``<!-- build:end -->`` markers).

The video weight is not fitted here (no labelled video of the target domain exists in the
project; the 7 real clips are the test set): it is a fixed choice, ``--video-weight``, justified in
the model card.

    python benchmarks/build_default_model.py --root ../shared/data/ravdess/speech_audio \\
        [--recipe benchmarks/default_model_recipe.toml] [--cache /tmp/avemo-cache] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from avemo.metrics import expected_calibration_error  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "avemo" / "inference" / "default_model"
RECIPE = Path(__file__).resolve().parent / "default_model_recipe.toml"
FINAL_VAL_SPEAKERS = ("22", "23")


def fit_temperature(log_probs: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(T, NLL at T = 1, NLL at T) minimising the NLL of ``softmax(log_probs / T)`` (bounded search on log T)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        z = log_probs / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x)), nll(0.0), float(res.fun)


def scaled(log_probs: np.ndarray, t: float) -> np.ndarray:
    z = log_probs / t
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cross_validate(args, data, model_config, train_cfg, cache) -> dict:
    """Out-of-fold probabilities and per-fold metrics of the recipe under the ravdess_au plan."""
    from avemo.datasets import builtin_plan, split
    from avemo.metrics import compute_metrics
    from avemo.training import train_run

    plan = builtin_plan("ravdess_au")
    folds = [f for f in plan.folds if not args.folds or f.number in args.folds]
    probs, labels, folds_out = [], [], []
    for fold in folds:
        tr, va, te = split(data.takes, fold)
        t0 = time.perf_counter()
        run = train_run(args.audio_model, data, train_takes=tr, val_takes=va, test_takes=te,
                        model_config=model_config, train_config=train_cfg, cache=cache, workers=args.workers,
                        plots=False)
        seconds = time.perf_counter() - t0
        probs.append(run.test_probabilities)
        labels.append(run.test_labels)
        folds_out.append({"fold": fold.number, "test_speakers": list(fold.test), "val_speakers": list(fold.val),
                          "accuracy": run.test.accuracy, "macro_f1": run.test.macro_f1, "uar": run.test.uar,
                          "best_epoch": run.best_epoch, "seconds": round(seconds, 1)})
        print(f"fold {fold.number}: accuracy {run.test.accuracy:.4f} macro-F1 {run.test.macro_f1:.4f} "
              f"UAR {run.test.uar:.4f} (best epoch {run.best_epoch}, {seconds:.0f} s)", flush=True)
    p = np.concatenate(probs)
    y = np.concatenate(labels)
    pooled = compute_metrics(y, p, data.labels.emotions)
    acc = np.array([f["accuracy"] for f in folds_out])
    log_p = np.log(np.clip(p, 1e-12, 1.0))
    t, nll1, nll_t = fit_temperature(log_p, y)
    return {
        "protocol": f"speaker-disjoint {len(folds)}-fold CV, plan ravdess_au (validation speakers from the training speakers)",
        "folds": folds_out,
        "mean_accuracy": float(acc.mean()),
        "std_accuracy": float(acc.std()),
        "macro_f1": float(np.mean([f["macro_f1"] for f in folds_out])),
        "uar": float(np.mean([f["uar"] for f in folds_out])),
        "pooled": {k: v for k, v in pooled.to_dict().items() if k in ("accuracy", "macro_f1", "uar", "n", "confusion",
                                                                         "labels", "auc")},
        "calibration": {"temperature": t, "nll_t1": nll1, "nll_t": nll_t,
                        "ece_t1": expected_calibration_error(scaled(log_p, 1.0), y),
                        "ece_t": expected_calibration_error(scaled(log_p, t), y)},
    }


def card_block(meta: dict) -> str:
    """The generated numbers block of the model card."""
    cv = meta["metrics"].get("audio_cv")
    fin = meta["metrics"]["audio_final"]
    fusion = meta["config"]["fusion"]
    t = meta["training"]
    lines = [f"Audio recipe: `{t['audio_model']}` with `{json.dumps(t['model_config'])}` ({t['params']:,} parameters) "
             f"on the `whisper_base` embedding, trained with `avemo.training.train_run`, training options "
             f"`{json.dumps(t['recipe'].get('train', {}))}` over the trainer's defaults (epochs "
             f"{t['train_config']['epochs']}, lr {t['train_config']['lr']}, patience {t['train_config']['patience']}, "
             f"monitor {t['train_config']['monitor']}, seed {t['train_config']['seed']}); built {t['built']} by "
             f"`{t['command']}` in {t['seconds']:.0f} s.", ""]
    if cv:
        lines += ["| fold | test speakers | accuracy | macro-F1 | UAR | best epoch |", "|---|---|---|---|---|---|"]
        for f in cv["folds"]:
            lines.append(f"| {f['fold']} | {', '.join(f['test_speakers'])} | {100 * f['accuracy']:.2f} % | "
                         f"{100 * f['macro_f1']:.2f} % | {100 * f['uar']:.2f} % | {f['best_epoch']} |")
        lines.append(f"| **mean ± std** | 20 speakers | **{100 * cv['mean_accuracy']:.2f} ± {100 * cv['std_accuracy']:.2f} %** "
                     f"| {100 * cv['macro_f1']:.2f} % | {100 * cv['uar']:.2f} % | |")
        c = cv["calibration"]
        lines += ["", f"Out-of-fold calibration ({cv['pooled']['n']} clips): temperature T = {c['temperature']:.3f}; "
                  f"NLL {c['nll_t1']:.3f} -> {c['nll_t']:.3f}, ECE {100 * c['ece_t1']:.1f} % -> {100 * c['ece_t']:.1f} %."]
        labels = cv["pooled"]["labels"]
        lines += ["", "Out-of-fold confusion matrix (rows: true, columns: predicted):", "",
                  "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
        for name, row in zip(labels, cv["pooled"]["confusion"], strict=True):
            lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", f"Final audio head: all 20 speakers, validation speakers {', '.join(fin['val_speakers'])} "
              f"(early stopping): best epoch {fin['best_epoch']}, validation accuracy {100 * fin['val_accuracy']:.1f} % "
              f"(2 speakers, 120 clips: a sanity check, not an estimate).",
              "", f"Fusion: audio weight {fusion['audio_weight']}, temperature {fusion['audio_temperature']:.3f}; "
              f"video weight {fusion['video_weight']}, temperature {fusion['video_temperature']}."]
    return "\n".join(lines)


def update_card(card: Path, block: str) -> None:
    begin, end = "<!-- build:begin -->", "<!-- build:end -->"
    if not card.is_file():
        print(f"note: {card} not found; numbers block not written")
        return
    text = card.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        print(f"note: {card} has no {begin} / {end} markers; numbers block not written")
        return
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    card.write_text(f"{head}{begin}\n{block}\n{end}{tail}", encoding="utf-8")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "ravdess" / "speech_audio")
    parser.add_argument("--recipe", type=Path, default=RECIPE,
                        help="TOML with audio_model, [model_config] and [train] (the trainer's TrainConfig)")
    parser.add_argument("--audio-model", default=None, help="override the recipe's zoo audio model")
    parser.add_argument("--model-config", default=None, help="override the recipe's model options (JSON)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--skip-cv", action="store_true", help="no cross-validation (temperature 1; for quick tries)")
    parser.add_argument("--video-weight", type=float, default=0.5)
    parser.add_argument("--video-fps", type=float, default=8.0)
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (default: ~/.cache/avemo/features)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--card", type=Path, default=None,
                        help="model card whose numbers block is rewritten (default: OUT/model_card.md, the card "
                             "the bundle names)")
    parser.add_argument("--version", default="1")
    return parser.parse_args()


def main() -> None:
    args = _arguments()

    import torch

    from avemo import config as cfg
    from avemo.cache import FeatureCache
    from avemo.inference.bundle import BundleConfig, write_bundle_meta
    from avemo.inference.fusion import FusionConfig
    from avemo.inference.video import VideoExpertConfig
    from avemo.models import count_parameters, create_model
    from avemo.models.checkpoint import package_versions
    from avemo.training import TrainConfig, load_data, resolve_split, train_run

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    recipe = cfg.load_file(args.recipe) if args.recipe else {}
    args.audio_model = args.audio_model or recipe.get("audio_model", "whisper_mlp")
    model_config = json.loads(args.model_config) if args.model_config else dict(recipe.get("model_config", {}))
    train_data = dict(recipe.get("train", {}))
    if args.epochs is not None:
        train_data["epochs"] = args.epochs
    train_data["seed"] = args.seed
    train_cfg = cfg.from_dict(TrainConfig, train_data)
    if train_cfg.speaker_norm:
        sys.exit("the bundled model cannot use speaker normalisation (prediction sees one file at a time)")
    cache = FeatureCache(args.cache)
    data = load_data("ravdess", args.root)
    print(f"{len(data.takes)} takes of {len(data.speakers)} speakers; model {args.audio_model} {model_config}", flush=True)

    t_start = time.perf_counter()
    cv = None if args.skip_cv else cross_validate(args, data, model_config, train_cfg, cache)
    if cv:
        print(f"CV accuracy {100 * cv['mean_accuracy']:.2f} ± {100 * cv['std_accuracy']:.2f} %, macro-F1 "
              f"{100 * cv['macro_f1']:.2f} %, UAR {100 * cv['uar']:.2f} %; temperature "
              f"{cv['calibration']['temperature']:.3f}", flush=True)

    tr, va, te, split = resolve_split(data, val_speakers=list(FINAL_VAL_SPEAKERS))
    audio_dir = args.out / "audio"
    run = train_run(args.audio_model, data, train_takes=tr, val_takes=va, test_takes=te, model_config=model_config,
                    train_config=train_cfg, cache=cache, out_dir=audio_dir, workers=args.workers, plots=False,
                    extra_meta={"split": split})
    for extra in ("history.csv", "curves.png"):
        (audio_dir / extra).unlink(missing_ok=True)
    print(f"final head: best epoch {run.best_epoch}, validation accuracy {run.val.accuracy:.4f}", flush=True)

    temperature = cv["calibration"]["temperature"] if cv else 1.0
    config = BundleConfig(
        name="avemo-default", version=args.version, labels=tuple(data.labels.emotions), window=1.0, hop=0.5,
        audio="audio", video=VideoExpertConfig(fps=args.video_fps),
        fusion=FusionConfig(audio_weight=1.0, video_weight=args.video_weight, audio_temperature=temperature,
                            video_temperature=1.0),
    )
    params = count_parameters(create_model(args.audio_model, num_classes=len(data.labels), **model_config))
    meta = {
        "training": {
            "recipe": recipe,
            "audio_model": args.audio_model, "model_config": model_config, "params": params,
            "train_config": cfg.to_dict(train_cfg), "data": {"dataset": "ravdess", "root": "../shared/data/ravdess/speech_audio",
                                                            "speakers": data.speakers, "takes": len(data.takes)},
            "final_val_speakers": list(FINAL_VAL_SPEAKERS),
            "command": "python benchmarks/build_default_model.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "built": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
            "seconds": round(time.perf_counter() - t_start, 1),
            "versions": package_versions(),
        },
        "metrics": {
            "audio_cv": cv,
            "audio_final": {"val_speakers": list(FINAL_VAL_SPEAKERS), "best_epoch": run.best_epoch,
                            "val_accuracy": run.val.accuracy},
        },
        "card": "model_card.md",
    }
    write_bundle_meta(args.out, config, meta)
    for file in args.out.rglob("*"):  # package data: readable by every user of an installation
        file.chmod(0o755 if file.is_dir() else 0o644)
    full = {"config": cfg.to_dict(config), **meta}
    update_card(args.card or args.out / "model_card.md", card_block(full))
    print(f"wrote {args.out} ({sum(p.stat().st_size for p in args.out.rglob('*') if p.is_file()) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
