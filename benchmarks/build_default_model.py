"""Build the bundled default model (``src/avemo/inference/default_model/``) with the cross-corpus recipe.

The recipe is data (``benchmarks/default_model_recipe.toml``): the zoo audio head and its options,
the corpora (RAVDESS speech audio and EmoDB) in one shared label space, the training config
(corpus balance, degraded copies) and what the calibration is fitted on. Every step runs the
library's multi-corpus training (:func:`avemo.training.experiment.load_corpora`,
:func:`avemo.training.train_run`); nothing here re-implements a model.

1. **In-domain estimate**: speaker-disjoint folds over the RAVDESS speakers (plan ``ravdess_au``:
   5 folds of 4 test speakers); each fold's head trains on the other RAVDESS speakers *and all
   EmoDB speakers*, as the bundle does. The recipe has no setting to choose (C, the features and the
   augmentation were fixed beforehand on validation data), so no validation speakers are carved out.
2. **Unseen speakers of another language**: leave one EmoDB speaker out (both EmoDB folders' clips
   of that speaker are held out); each head trains on all RAVDESS speakers and the other EmoDB speakers.
3. **Calibration** on held-out predictions only: the temperature T (Guo et al. 2017, "On Calibration
   of Modern Neural Networks", §4.2) and the uncertainty threshold tau
   (:mod:`avemo.inference.calibration`) are fitted on the pooled out-of-fold predictions of 1 and 2;
   the expected calibration error before and after is reported per held-out set.
4. **Final head** on every clip of every corpus (written to ``OUT/audio``), and the **unseen-corpus
   check**: the final head on the CREMA-D clips (other actors, other sentences, compressed audio),
   accuracy, UAR and ECE at T = 1 and at the fitted T. No choice is made on these clips.
5. ``OUT/model.json`` (bundle configuration with 6 labels, T, tau and the VAD speech share, plus the
   metrics and provenance) and the numbers block of ``OUT/model_card.md`` (between its
   ``<!-- build:begin -->`` / ``<!-- build:end -->`` markers).

    python benchmarks/build_default_model.py [--recipe benchmarks/default_model_recipe.toml]
        [--cache DIR] [--workers 1] [--skip-estimates | --estimates-without-copies] [--report-only]

``--estimates-without-copies`` trains the held-out estimates' heads without the degraded copies
(the final head keeps them). A babble copy mixes clips of the *training* speakers, so every fold
needs its own babble copies (about 750 more Whisper passes over the ten folds than the final head);
where that is too slow, this flag estimates the recipe without the copies and says so in
``model.json`` and the card. ``--report-only`` rewrites the card's numbers block from the
``model.json`` already in ``OUT``.
The video weight is not fitted (no labelled video of the target domain exists in the project; the
real clips are the test set): it is a fixed choice, ``--video-weight``, justified in the model card.
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

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "avemo" / "inference" / "default_model"
RECIPE = Path(__file__).resolve().parent / "default_model_recipe.toml"


def bare(speaker: str) -> str:
    """The corpus's own speaker id of a qualified one (``"emodb:03"`` -> ``"03"``)."""
    from avemo.training.corpora import QUALIFIER

    return speaker.split(QUALIFIER, 1)[1]


def reader_of(data) -> dict[str, str]:
    """Corpus name -> the dataset reader it was read with."""
    return {s.corpus: s.dataset for s in data.corpora.specs}


def heldout_sets(data, estimate: dict) -> list[tuple[str, str, list]]:
    """``(estimate, fold name, test takes)`` of the in-domain folds and the leave-one-speaker-out folds."""
    from avemo.datasets import builtin_plan

    readers = reader_of(data)
    out = []
    plan = builtin_plan(estimate["ravdess_plan"])
    for fold in plan.folds:
        test = [t for t in data.takes if readers[t.dataset] == plan.dataset and bare(t.speaker) in fold.test]
        out.append(("in_domain", f"fold {fold.number}: {plan.dataset} {', '.join(fold.test)}", test))
    held = estimate["leave_one_out"]
    for speaker in sorted({bare(t.speaker) for t in data.takes if readers[t.dataset] == held}):
        test = [t for t in data.takes if readers[t.dataset] == held and bare(t.speaker) == speaker]
        out.append(("unseen_speakers", f"{held} {speaker}", test))
    return out


def scored(probs: np.ndarray, y: np.ndarray, labels, temperature: float) -> dict:
    """Accuracy, macro-F1, UAR, confusion and ECE at T = 1 and at ``temperature``."""
    from avemo.inference.calibration import scaled
    from avemo.metrics import compute_metrics, expected_calibration_error

    log_p = np.log(np.clip(probs, 1e-12, 1.0))
    m = compute_metrics(y, probs, labels).to_dict()
    return {**{k: m[k] for k in ("accuracy", "macro_f1", "uar", "n", "confusion", "labels")},
            "ece_t1": expected_calibration_error(probs, y),
            "ece_t": expected_calibration_error(scaled(log_p, temperature), y)}


def estimate(args, data, gathered, model_config, train_cfg, cache, recipe) -> dict:
    """Out-of-fold predictions of the recipe (steps 1-3 of the module docstring)."""
    from avemo.inference.calibration import fit_temperature, fit_threshold, scaled
    from avemo.training import train_run

    labels = list(data.labels.emotions)
    preds: dict[str, list] = {"in_domain": [], "unseen_speakers": []}
    folds = []
    for kind, name, test in heldout_sets(data, recipe["estimate"]):
        test_keys = {t.key for t in test}
        train = [t for t in data.takes if t.key not in test_keys]
        t0 = time.perf_counter()
        run = train_run(args.audio_model, data, train_takes=train, val_takes=[], test_takes=test,
                        model_config=model_config, train_config=train_cfg, cache=cache, workers=args.workers,
                        plots=False, gathered=gathered)
        seconds = time.perf_counter() - t0
        preds[kind].append((run.test_probabilities, run.test_labels))
        folds.append({"estimate": kind, "fold": name, "n": int(len(run.test_labels)), "accuracy": run.test.accuracy,
                      "macro_f1": run.test.macro_f1, "uar": run.test.uar, "seconds": round(seconds, 1)})
        print(f"{kind} {name}: n {len(run.test_labels)} accuracy {run.test.accuracy:.4f} UAR {run.test.uar:.4f} "
              f"({seconds:.0f} s)", flush=True)
    pooled = {k: (np.concatenate([p for p, _ in v]), np.concatenate([y for _, y in v])) for k, v in preds.items()}
    p_all = np.concatenate([p for p, _ in pooled.values()])
    y_all = np.concatenate([y for _, y in pooled.values()])
    log_all = np.log(np.clip(p_all, 1e-12, 1.0))
    t, nll1, nll_t = fit_temperature(log_all, y_all)
    tau = fit_threshold(scaled(log_all, t), y_all, min_accuracy=recipe["calibration"]["min_accuracy"])
    out = {"folds": folds, "calibration": {"temperature": t, "nll_t1": nll1, "nll_t": nll_t, "tau": tau,
                                           "min_accuracy": recipe["calibration"]["min_accuracy"],
                                           "fitted_on": "pooled out-of-fold predictions of in_domain and "
                                                        "unseen_speakers", "n": int(len(y_all))}}
    for kind, (p, y) in pooled.items():
        per_fold = [f for f in folds if f["estimate"] == kind]
        out[kind] = {"pooled": scored(p, y, labels, t),
                     "mean_accuracy": float(np.mean([f["accuracy"] for f in per_fold])),
                     "std_accuracy": float(np.std([f["accuracy"] for f in per_fold])),
                     "mean_uar": float(np.mean([f["uar"] for f in per_fold])),
                     "std_uar": float(np.std([f["uar"] for f in per_fold]))}
    return out


def unseen_corpus(args, checkpoint: Path, recipe: dict, cache, temperature: float) -> dict:
    """The final head on the unseen corpus (step 4)."""
    from avemo.training import load_data
    from avemo.training.scoring import evaluate_checkpoint

    est = recipe["estimate"]
    root = (args.recipe.parent / est["unseen_root"]).resolve()
    ev = evaluate_checkpoint(checkpoint, load_data(est["unseen_dataset"], root), cache=cache, workers=args.workers)
    out = scored(ev.probabilities, ev.y_true, list(ev.comparison.labels.emotions), temperature)
    out["dataset"] = est["unseen_dataset"]
    out["clips"] = {k: ev.comparison.labels.emotions[int(i)] for k, i in zip(ev.takes, ev.probabilities.argmax(1),
                                                                              strict=True)}
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def card_block(meta: dict) -> str:
    """The generated numbers block of the model card."""
    t = meta["training"]
    m = meta["metrics"]
    corpora = ", ".join(f"{c['name']} ({c['n']} clips)" for c in t["data"]["corpora"])
    lines = [f"Audio head: `{t['audio_model']}` with `{json.dumps(t['model_config'])}` ({t['params']:,} parameters) on "
             f"the `whisper_base` embedding, trained with `avemo.training.train_run` on {corpora}, labels "
             f"{', '.join(meta['config']['labels'])}; training options `{json.dumps(t['recipe'].get('train', {}))}`; "
             f"built {t['built']} by `{t['command']}` "
             f"in {t['seconds']:.0f} s.", ""]
    est = m.get("estimates")
    if est:
        c = est["calibration"]
        if not est.get("degraded_copies", True) and t["train_config"]["augment"]["channels"]["enabled"]:
            lines += ["**The fold heads below were trained without the degraded copies** (`--estimates-without-copies`): "
                      "the figures estimate the recipe minus that augmentation; the bundled head has the copies.", ""]
        lines += ["| estimate | protocol | clips | accuracy (pooled) | UAR (pooled) | UAR mean ± std over folds | ECE T=1 -> T |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        names = {"in_domain": "RAVDESS speakers never trained on (speaker-disjoint 5 folds, plan ravdess_au; "
                              "EmoDB always in training)",
                 "unseen_speakers": "EmoDB speakers never trained on (leave one of 03, 08, 09, 10, 11 out; "
                                    "RAVDESS always in training)"}
        for kind, text in names.items():
            e = est[kind]
            p = e["pooled"]
            lines.append(f"| {kind.replace('_', ' ')} | {text} | {p['n']} | {pct(p['accuracy'])} | {pct(p['uar'])} | "
                         f"{pct(e['mean_uar'])} ± {pct(e['std_uar'])} | {pct(p['ece_t1'])} -> {pct(p['ece_t'])} |")
        u = m.get("unseen_corpus")
        if u:
            lines.append(f"| unseen corpus | the final head on the {u['n']} CREMA-D clips (actors 1001, 1002; never "
                         f"trained on, nothing chosen on them) | {u['n']} | {pct(u['accuracy'])} | {pct(u['uar'])} | | "
                         f"{pct(u['ece_t1'])} -> {pct(u['ece_t'])} |")
        lines += ["", f"Calibration: T = {c['temperature']:.3f} (NLL {c['nll_t1']:.3f} -> {c['nll_t']:.3f}) and "
                  f"tau = {c['tau']:.3f} (the least top probability where held-out answers are right at least "
                  f"{pct(c['min_accuracy'])} of the time), both fitted on the {c['n']} pooled out-of-fold "
                  f"predictions above; an answer below tau is flagged uncertain.", "",
                  "Per fold:", "", "| estimate | held out | clips | accuracy | macro-F1 | UAR |", "|---|---|---:|---:|---:|---:|"]
        for f in est["folds"]:
            lines.append(f"| {f['estimate'].replace('_', ' ')} | {f['fold']} | {f['n']} | {pct(f['accuracy'])} | "
                         f"{pct(f['macro_f1'])} | {pct(f['uar'])} |")
        for kind in names:
            p = est[kind]["pooled"]
            lines += ["", f"Confusion, {kind.replace('_', ' ')} (rows: true, columns: predicted):", "",
                      "| | " + " | ".join(p["labels"]) + " |", "|---" * (len(p["labels"]) + 1) + "|"]
            lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
                      for name, row in zip(p["labels"], p["confusion"], strict=True)]
    fusion = meta["config"]["fusion"]
    ab = meta["config"]["abstention"]
    lines += ["", f"Fusion: audio weight {fusion['audio_weight']}, temperature {fusion['audio_temperature']:.3f}; video "
              f"weight {fusion['video_weight']}, temperature {fusion['video_temperature']}. Abstention: tau "
              f"{ab['tau']:.3f}, speech share {ab['speech_share']}."]
    return "\n".join(lines)


def update_card(card: Path, block: str) -> None:
    begin, end = "<!-- build:begin -->", "<!-- build:end -->"
    text = card.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        sys.exit(f"{card} has no {begin} / {end} markers; numbers block not written")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    from avemo.output_file import OutputFile

    with OutputFile(card) as out:
        out.commit(f"{head}{begin}\n{block}\n{end}{tail}")


def bundle_config(args, labels, est: dict | None, recipe: dict):
    """The bundle's configuration: its labels, the timeline grid, the video expert's options, the fusion
    weights and temperatures (the audio T from the estimates) and the abstention (tau from the estimates)."""
    from avemo.inference.abstention import AbstentionConfig
    from avemo.inference.bundle import BundleConfig
    from avemo.inference.fusion import FusionConfig
    from avemo.inference.video import VideoExpertConfig

    calibration = est["calibration"] if est else {"temperature": 1.0, "tau": AbstentionConfig.tau}
    return BundleConfig(
        name="avemo-default", version=args.version, labels=tuple(labels), window=1.0, hop=0.5,
        audio="audio", video=VideoExpertConfig(fps=args.video_fps),
        fusion=FusionConfig(audio_weight=1.0, video_weight=args.video_weight,
                            audio_temperature=calibration["temperature"], video_temperature=1.0),
        abstention=AbstentionConfig(tau=calibration["tau"], speech_share=recipe["calibration"]["speech_share"]),
    )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE,
                        help="TOML: audio_model, [model_config], label_space, [[corpora]], [train], [estimate], "
                             "[calibration]")
    parser.add_argument("--skip-estimates", action="store_true",
                        help="no held-out estimates (T = 1, default tau; for quick tries, not for a release)")
    parser.add_argument("--estimates-without-copies", action="store_true",
                        help="train the held-out estimates without the recipe's degraded copies (recorded)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the card's numbers block from OUT/model.json")
    parser.add_argument("--video-weight", type=float, default=0.5)
    parser.add_argument("--video-fps", type=float, default=8.0)
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (default: ~/.cache/avemo/features)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--version", default="3")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    card = args.out / "model_card.md"
    if args.report_only:
        meta = json.loads((args.out / "model.json").read_text(encoding="utf-8"))
        update_card(card, card_block(meta))
        print(f"rewrote the numbers block of {card}")
        return

    import torch

    from avemo import config as cfg
    from avemo.cache import FeatureCache
    from avemo.inference.bundle import write_bundle_meta
    from avemo.models import create_model
    from avemo.models.checkpoint import package_versions
    from avemo.training import TrainConfig, train_run
    from avemo.training.corpora import read_corpora_file
    from avemo.training.data import gather
    from avemo.training.experiment import load_corpora

    torch.set_num_threads(1)
    recipe = cfg.load_file(args.recipe)
    args.audio_model = recipe["audio_model"]
    model_config = dict(recipe.get("model_config", {}))
    train_cfg = cfg.from_dict(TrainConfig, dict(recipe.get("train", {})))
    if train_cfg.speaker_norm:
        sys.exit("the bundled model cannot use speaker normalisation (prediction sees one file at a time)")
    cache = FeatureCache(args.cache)
    data = load_corpora(read_corpora_file(args.recipe), recipe.get("label_space", "shared"))
    print(f"{len(data.takes)} takes of {len(data.speakers)} speakers, labels {list(data.labels.emotions)}; "
          f"left out: {data.corpora.left_out}", flush=True)
    model = create_model(args.audio_model, num_classes=len(data.labels), **model_config)
    gathered = gather(data.takes, dict(model.inputs), tables=data.tables, cache=cache, workers=args.workers)
    if gathered.failed:
        print(f"{len(gathered.failed)} takes without features (left out): {gathered.failed[:5]}", flush=True)

    t_start = time.perf_counter()
    est_cfg = train_cfg
    if args.estimates_without_copies:
        est_cfg = cfg.from_dict(TrainConfig, {**cfg.to_dict(train_cfg), "augment": {
            **cfg.to_dict(train_cfg.augment), "channels": {**cfg.to_dict(train_cfg.augment.channels), "enabled": False}}})
    est = None if args.skip_estimates else estimate(args, data, gathered, model_config, est_cfg, cache, recipe)
    if est is not None:
        est["degraded_copies"] = est_cfg.augment.channels.enabled
    print("final head: training on every clip", flush=True)
    temperature = est["calibration"]["temperature"] if est else 1.0
    audio_dir = args.out / "audio"
    run = train_run(args.audio_model, data, train_takes=data.takes, val_takes=[], model_config=model_config,
                    train_config=train_cfg, cache=cache, out_dir=audio_dir, workers=args.workers, plots=False,
                    gathered=gathered)
    for extra in ("history.csv", "curves.png"):
        (audio_dir / extra).unlink(missing_ok=True)
    unseen = unseen_corpus(args, audio_dir, recipe, cache, temperature)
    print(f"final head trained; unseen corpus ({unseen['dataset']}): accuracy {unseen['accuracy']:.4f} "
          f"UAR {unseen['uar']:.4f}, ECE {unseen['ece_t1']:.3f} -> {unseen['ece_t']:.3f}", flush=True)

    config = bundle_config(args, data.labels.emotions, est, recipe)
    meta = {
        "training": {
            "recipe": recipe, "audio_model": args.audio_model, "model_config": model_config, "params": run.params,
            "train_config": cfg.to_dict(train_cfg), "data": data.corpora.to_dict(),
            "command": " ".join(["python benchmarks/build_default_model.py", *(shlex.quote(a) for a in sys.argv[1:])]),
            "built": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
            "seconds": round(time.perf_counter() - t_start, 1),
            "versions": package_versions(),
        },
        "metrics": {"estimates": est, "unseen_corpus": unseen},
        "card": "model_card.md",
    }
    write_bundle_meta(args.out, config, meta)
    for file in args.out.rglob("*"):  # package data: readable by every user of an installation
        file.chmod(0o755 if file.is_dir() else 0o644)
    update_card(card, card_block({"config": cfg.to_dict(config), **meta}))
    print(f"wrote {args.out} ({sum(p.stat().st_size for p in args.out.rglob('*') if p.is_file()) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
