"""MELD text with dialogue context: paper 002's text branch (``gao_dialogue``), selected on dev.

Trains ``gao_dialogue`` with ``modalities=["text"]`` on MELD's official train split with early
stopping on dev, once per variant (context window ``H`` and options), and reports dev
weighted-F1, accuracy and macro-F1 to ``docs/results/meld_text.md`` (+ ``.json``).

**Dev is both the selection and the report split**: MELD's test split is not in the project
(``../shared/data/meld`` holds ``train_sent_emo.csv`` and ``dev_sent_emo.csv``), so every figure
here is a validation figure, optimistic by the selection made on it (best epoch, and the choice
among the variants); it is not comparable to published test-split figures.

    python benchmarks/meld_text.py [--root ../shared/data/meld] [--variants sent_h0,sent_h3] [--epochs 30]
        [--patience 5] [--probs DIR] [--append]
    python benchmarks/meld_text.py --ensemble ft2_h3_cng_lr1e4,ft2_h3_cng_lr1e4_s2 --probs DIR

``--probs DIR`` keeps each variant's dev probabilities (of its best epoch) in ``DIR``, outside the
repo; ``--ensemble`` then adds the row of their mean (a seed ensemble, say) without training.

Variants (``--variants``, comma-separated ``{tok|sent|ft1|ft2|ft4}_h<H>[_bal][_d3][_cng][_lr1e4][_ctxenc][_spk][_s1|_s2|_s3|_s4][_rerun]``: the text input of
:data:`INPUTS`, the context window ``H``, the :data:`OPTIONS`) share the training configuration of
:data:`TRAIN`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: no spinning threads on a loaded machine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, header  # noqa: E402

#: text inputs: name -> (model config, description)
INPUTS: dict[str, tuple[dict, str]] = {
    "tok": ({}, "frozen MiniLM token states, Bi-LSTM + attention pooling (the paper's text branch)"),
    "sent": ({"text_feature": "minilm", "text_kind": "vector"}, "MiniLM sentence embedding, one dense layer"),
    **{f"ft{k}": ({"finetune_layers": k, "finetune_lr": 3e-5}, f"MiniLM token states with the top {k} "
                  f"block{'s' if k > 1 else ''} fine-tuned (lr {{lr}}), Bi-LSTM + attention pooling") for k in (1, 2, 4)},
}


#: the seeds of the ``_s<k>`` suffixes
SEEDS = (1, 2, 3, 4)

#: optional suffixes: name -> (model config, training overrides, description)
OPTIONS: dict[str, tuple[dict, dict, str]] = {
    "bal": ({}, {"class_balance": "loss"}, "class-balanced loss"),
    "d3": ({"dropout": 0.3}, {}, "dropout 0.3"),
    "cng": ({"finetune_context_grad": False}, {}, "context through the fine-tuned blocks without gradient"),
    "lr1e4": ({"finetune_lr": 1e-4}, {}, ""),  # shown in the input's "(lr ...)"
    "ctxenc": ({"encoder_context": True}, {}, "the fine-tuned blocks run over the context and the current utterance "
               "together (EmoBERTa-style, a departure from the paper)"),
    "spk": ({"speaker_prefix": True}, {}, "speaker names in the text ('Speaker: utterance' for the current and the "
            "context utterances, EmoBERTa-style, a departure from the paper)"),
    **{f"s{k}": ({}, {"seed": k}, f"seed {k}") for k in SEEDS},  # seed 0 by default (:data:`TRAIN`)
    # the same run again under its own row, its figure beside the first one's
    "rerun": ({}, {}, "rerun of the same configuration and seed"),
}


def variant(name: str) -> tuple[dict, dict, str]:
    """``{tok|sent|ft1|ft2|ft4}_h{H}[_bal][_d3][_cng][_lr1e4][_ctxenc][_spk][_s1|_s2|_s3|_s4][_rerun]`` -> (model config, training overrides, description)."""
    parts = name.split("_")
    if len(parts) < 2 or parts[0] not in INPUTS or not parts[1].startswith("h") or not parts[1][1:].isdigit() \
            or any(p not in OPTIONS for p in parts[2:]):
        raise ValueError(f"variant {name!r} is not {{{'|'.join(INPUTS)}}}_h<H>[_{'][_'.join(OPTIONS)}]")
    extra, description = INPUTS[parts[0]]
    context = int(parts[1][1:])
    model_config, overrides = {"modalities": ["text"], "context": context, **extra}, {}
    description += f", H = {context}"
    for option in parts[2:]:
        more, train_more, text = OPTIONS[option]
        model_config.update(more)
        overrides.update(train_more)
        description += f", {text}" if text else ""
    lr = model_config.get("finetune_lr")
    return model_config, overrides, description.replace("{lr}", f"{lr:.0e}".replace("e-0", "e-") if lr else "")


#: paper 002 §5.1: Adam, batch 32, lr 3e-4, L2 5e-5; selection on dev weighted F1 (MELD's metric)
TRAIN = {"optimizer": "adamw", "batch_size": 32, "lr": 3e-4, "weight_decay": 5e-5, "epochs": 20, "patience": 5,
         "monitor": "val_weighted_f1", "device": "cpu", "seed": 0}
OUT = ROOT / "docs" / "results" / "meld_text"


def save_probabilities(folder: Path, name: str, run) -> None:
    """The best epoch's dev probabilities of variant ``name`` (for :func:`ensemble_row`), outside the repo."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{name}.tmp.npz"
    np.savez(tmp, probabilities=run.test_probabilities, labels=run.test_labels, keys=np.array(run.test_takes))
    os.replace(tmp, folder / f"{name}.npz")


def run_variant(name: str, data, train, dev, cache, epochs: int, patience: int = TRAIN["patience"],
                probs: Path | None = None) -> dict:
    """Train variant ``name`` and return its row; ``probs``: a folder for its dev probabilities
    (dev then also runs as the test split, i.e. predicted once more by the best epoch's weights)."""
    from avemo import config as cfg
    from avemo.training import TrainConfig, train_run

    model_config, overrides, description = variant(name)
    train_config = cfg.from_dict(TrainConfig, {**TRAIN, "epochs": epochs, "patience": patience, **overrides}, where=name)
    t0 = time.perf_counter()
    run = train_run("gao_dialogue", data, train_takes=train, val_takes=dev, test_takes=dev if probs else (),
                    model_config=model_config, train_config=train_config, cache=cache, plots=False,
                    on_epoch=lambda row: print(name, {k: round(v, 4) for k, v in row.items()}, flush=True))
    if probs:
        save_probabilities(probs, name, run)
    m = run.val
    return {
        "variant": name, "description": description, "model_config": model_config,
        "train_config": cfg.to_dict(train_config), "context": model_config["context"],
        "dev_weighted_f1": m.weighted_f1, "dev_accuracy": m.accuracy, "dev_macro_f1": m.macro_f1, "dev_uar": m.uar,
        "n_dev": m.n, "best_epoch": run.best_epoch, "epochs_run": len(run.history), "params": run.params,
        "train_seconds": round(run.train_seconds, 1), "wall_seconds": round(time.perf_counter() - t0, 1),
        "skipped": len(run.failed), "confusion": m.confusion, "labels": m.labels,
        "command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def ensemble_row(names: list[str], folder: Path, rows: list[dict]) -> dict:
    """A row for the mean of the dev probabilities that :func:`save_probabilities` kept for ``names``
    (variants already in ``rows``; e.g. one variant under several seeds)."""
    import numpy as np

    from avemo.metrics import compute_metrics

    members = [next((r for r in rows if r["variant"] == n), None) for n in names]
    files = [Path(folder or "") / f"{n}.npz" for n in names]
    saved = [np.load(f) for f in files if folder and f.is_file()]
    if None in members or len(saved) != len(names) or any(list(s["keys"]) != list(saved[0]["keys"]) for s in saved):
        raise SystemExit(f"--ensemble: every one of {names} needs its row and its dev probabilities "
                         f"in --probs {folder}, on the same utterances")
    m = compute_metrics(saved[0]["labels"], np.mean([s["probabilities"] for s in saved], axis=0), members[0]["labels"])

    def joined(get) -> str:
        return "+".join(str(get(r)) for r in members)

    return {
        "variant": "ens_" + "+".join(names), "context": members[0]["context"],
        "description": f"**ensemble**: the mean of the dev probabilities of {len(names)} runs",
        "dev_weighted_f1": m.weighted_f1, "dev_accuracy": m.accuracy, "dev_macro_f1": m.macro_f1,
        "dev_uar": m.uar, "n_dev": m.n, "best_epoch": joined(lambda r: r["best_epoch"]),
        "epochs_run": joined(lambda r: r["epochs_run"]),
        "train_config": {"epochs": joined(lambda r: r["train_config"]["epochs"])},
        "train_seconds": sum(r["train_seconds"] for r in members), "confusion": m.confusion, "labels": m.labels,
        "command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def context_lines(rows: list[dict]) -> list[str]:
    """The contribution of context per text input and options: the best H > 0 against H = 0 (dev
    weighted F1), seed 0, first runs (no ``_rerun``). ``_cng`` and ``_ctxenc`` count as no option (at H = 0 they change nothing)."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for r in rows:
        prefix, _, *options = r["variant"].split("_")
        if prefix in INPUTS and not {*(f"s{k}" for k in SEEDS), "rerun"} & set(options):
            groups.setdefault((prefix, *(o for o in options if o not in ("cng", "ctxenc"))), []).append(r)
    out = []
    for key, same in groups.items():
        base = [r for r in same if r["context"] == 0]
        with_context = [r for r in same if r["context"] > 0]
        if base and with_context:
            best = max(with_context, key=lambda r: r["dev_weighted_f1"])
            gain = 100 * (best["dev_weighted_f1"] - base[0]["dev_weighted_f1"])
            name = "_".join((key[0], "h*", *key[1:])) if len(key) > 1 else key[0]
            out.append(f"- Context, `{name}`: H = {best['context']} (`{best['variant']}`) gives {gain:+.1f} points of "
                       f"dev weighted F1 over H = 0 ({100 * best['dev_weighted_f1']:.1f} % vs "
                       f"{100 * base[0]['dev_weighted_f1']:.1f} %).")
    return out


#: the report's notes (issue 13's runs first, then those of the earlier runs at lr 3e-5)
NOTES = [
    "- The target of 60 % dev weighted F1 is not reached, with or without speaker names in the text (`_spk`, see "
    "its note: seeds 0-2 mean 56.4 % with names against 57.0 % without, their 3-seed ensemble 58.0 %). "
    "Dev is both the selection and the report split. The best single run is `ft2_h3_cng_lr1e4` (the top 2 "
    "blocks fine-tuned at lr 1e-4 for 6 epochs, H = 3): 58.1 % weighted F1 and 60.0 % accuracy, 1.9 points short, "
    "reproduced to the last digit by its rerun (`ft2_h3_cng_lr1e4_rerun`, see the seeds note). With the same "
    "6-epoch schedule, seeds 0-4 (`_rerun`, `_s1_rerun`, `_s2_rerun`, `_s3`, `_s4`) reach 58.1, 56.3, 56.6, 56.1 "
    "and 57.7 % (mean 57.0 %): seed 0 is the top of a spread of 2 points. The best figure here is still the first "
    "3-seed ensemble, 58.5 % (accuracy 61.1 %), 1.5 points short; its seed-1 member was the early-stopped model "
    "of epoch 1 (`_s1`, see the seeds note), and with seed 1 run to its best epoch of 6 instead the same three "
    "seeds give 57.1 %: the 1.4 points between the two are the noise of which epoch enters, not a method. The "
    "other ensembles of full-schedule runs stay below 58.1 %: five seeds 57.5 %, five seeds and "
    "`ft2_h3_ctxenc_lr1e4` 57.7 % (accuracy 60.1 %), seed 0 and `ft2_h3_ctxenc_lr1e4` 57.9 %. More seeds of "
    "this model do not reach 60 %. Frozen all-MiniLM-L6-v2 features reach "
    "about 54-55 %, the 3-4 epoch fine-tuning runs at lr 3e-5 55-56 %. For orientation, published text-only "
    "weighted F1 on MELD's *test* split: bc-LSTM (GloVe) about 57-58 %, COSMIC (RoBERTa-large) 65 %.",
    "- Four fine-tuned blocks (`ft4_h3_cng_lr1e4`, 2026-12-07, the `ft2_h3_cng_lr1e4` recipe with `finetune_layers=4`: "
    "8.4 M trainable parameters against `ft2`'s 4.9 M): dev weighted F1 by epoch 50.8, 55.5, 55.4, 55.6, 54.0, "
    "55.4 %, best 55.6 % at epoch 4 (accuracy 58.3 %), 2.5 points under `ft2_h3_cng_lr1e4` with the same seed and "
    "schedule and inside the spread of `ft2`'s seeds (56.1-58.1 %): fine-tuning more of the encoder does not pay "
    "on MELD's 9,989 training utterances. It ran with 2 torch threads at nice 10 beside a helper's small jobs "
    "(load average 1.6-2.9; 265 s an epoch).",
    "- Speaker names in the text (`_spk`: `speaker_prefix=true`, a departure from paper 002, off by default): "
    "every utterance, the current one and its 3 context utterances, is embedded as 'Speaker: utterance' (MELD's "
    "`Speaker` column, e.g. 'Ross: We were on a break!'), as EmoBERTa feeds its encoder (Kim & Vossen, "
    "\"EmoBERTa: Speaker-Aware Emotion Recognition in Conversation with RoBERTa\", 2021, §3); the lower blocks' "
    "states (`minilm_hidden`, layer 4) were extracted again over these texts, into their own cache entries "
    "beside the plain ones. Same model, 6-epoch schedule (`--patience 6`, one torch thread) and seeds as "
    "`ft2_h3_cng_lr1e4`: seed 0 (`_spk`) 55.6 % at epoch 3 (accuracy 57.6 %, macro F1 41.2 %; by epoch 49.5, "
    "54.4, 55.6, 54.3, 54.7, 54.1 %) against 58.1 % without names; seed 1 (`_spk_s1`) 57.1 % at epoch 4 "
    "(accuracy 59.6 %, macro F1 42.2 %; 54.2, 53.8, 54.4, 57.1, 54.3, 55.2 %) against 56.3 %; seed 2 "
    "(`_spk_s2`) 56.4 % at epoch 3 (accuracy 59.0 %, macro F1 41.9 %; 53.4, 54.0, 56.4, 53.3, 54.3, 55.1 %) "
    "against 56.6 %. Mean of seeds 0-2: 56.4 % with names, 57.0 % without: -2.5, +0.8 and -0.2 points by "
    "seed, within the seed spread of 2 points, so the names do not help here. With names the best epoch is "
    "the 3rd or 4th, never the last: the dev loss is lowest at epoch 1 or 2 (1.19-1.20) and rises to 1.68-1.71 "
    "at epoch 6 as the training accuracy reaches 94 %, as without names. The mean of the three `_spk` runs' probabilities "
    "(`ens_ft2_h3_cng_lr1e4_spk+..._s1+..._s2`) gives 58.0 % (accuracy 60.7 %, macro F1 44.4 %), against 57.1 % "
    "for the same seeds without names (`ens_..._rerun`), level with the best single run (58.1 %), 2.0 points "
    "short of 60 %; chosen on dev like every row. No ensemble mixes runs with and without names: the earlier "
    "runs' dev probabilities were not in `/work/scratch/meld_probs` (the folder did not exist when these runs "
    "began). In MELD the six main characters speak 83 % of the train utterances, and 1,072 of the 1,109 dev "
    "utterances are by speakers seen in train: the name is an identity the model can key on, not only a "
    "turn marker. Load: these three runs (2026-12-06 20:26-21:56, `nice -n 10`, one torch thread, one at a "
    "time beside other jobs on the 2-core AMD EPYC machine): load average (1 min, read every minute) "
    "1.0-5.3, mean 3.6 during `_spk` (whose first epoch includes the extraction of the prefixed lower-block "
    "states into the cache), 1.4-4.7, mean 2.8 during `_spk_s1`, 0.7-4.7, mean 2.6 during `_spk_s2` "
    "(1581-1830 train seconds a run).",
    "- Longer, faster fine-tuning (`_lr1e4`: `finetune_lr=1e-4`, up to 6-8 epochs, `--patience`): with context it "
    "pays, 58.1 % at H = 3 against 55.9 % for 3 epochs at lr 3e-5 (`ft2_h3_cng`); its best epoch was again the "
    "last (dev weighted F1 by epoch 50.2, 54.2, 56.0, 56.2, 57.5, 58.1 %) while its training accuracy rose to 95 %. "
    "Without context the same schedule overfits from epoch 3 (`ft2_h0_lr1e4`: best 54.9 % at epoch 3, stopped "
    "by patience 3 at epoch 6 with 94 % training accuracy and the dev loss up from 1.20 to 2.04), no better than "
    "4 epochs at lr 3e-5 (`ft2_h0`, 55.1 %): the context's contribution grows with the longer schedule "
    "(+3.2 points against +0.8). With one fine-tuned block the longer schedule gains less at H = 3 "
    "(`ft1_h3_cng_lr1e4`: 55.6 % at epoch 6, against 54.4 % for 3 epochs at lr 3e-5), and without context it "
    "does a little worse than at lr 3e-5 (`ft1_h0_lr1e4`: 54.9 % at epoch 5 of 6, against 55.4 %).",
    "- Seeds: `ft2_h3_cng_lr1e4_s1` (seed 1) ran with `--patience 2`, which stopped it at epoch 3 (best epoch 1, "
    "56.0 %; epochs 2-3 at 53.7 and 55.0 %) before the low-lr epochs of the cosine schedule that took seed 0 from "
    "56 to 58 %: it is an early-stopped run, not the 6-epoch schedule. `_s2` (seed 2) ran all 6 epochs "
    "(`--patience 6`; seed 0's patience of 2 never triggered, so the two had the same schedule) and peaked at "
    "epoch 3 (56.6 %; 55.6 % at epoch 6): seed 0's best-at-the-last-epoch is not the rule. The ensemble "
    "rows (`ens_*`, **ensemble** in the table) average the best epochs' dev probabilities of their runs "
    "(`--probs DIR` keeps them, `--ensemble a,b` adds the row): selected on dev like every row.",
    "- Reruns (`_rerun`: the same variant again, under its own row beside the first): the first runs' dev "
    "probabilities were lost (kept outside the repo), so seeds 0-2 ran again, one torch thread each, on a "
    "2-core AMD EPYC machine (the first runs: a 2-core Intel Xeon). `ft2_h3_cng_lr1e4_rerun` repeats `ft2_h3_cng_lr1e4` epoch by epoch (dev weighted F1 50.2, 54.2, "
    "56.0, 56.2, 57.5, 58.1 %; 60.0 % accuracy, 43.5 % macro F1 at epoch 6): the 58.1 % reproduces, and training "
    "here is deterministic for a given seed, across these two CPUs. `_s2_rerun` repeats `_s2` (56.6 % at epoch 3, 55.6 % at 6), and the "
    "mean of the two reruns' probabilities gives the first 2-run ensemble's 58.0 % / 60.1 % again. "
    "`_s1_rerun` ran the full schedule (`--patience 6`, where `_s1` had 2): its epochs 1-3 repeat `_s1`'s "
    "(56.0, 53.7, 55.0 %), then 54.9, 54.8 and 56.3 %, so its best epoch is the last (56.3 %, accuracy 58.3 %) "
    "and not `_s1`'s epoch 1 (56.0 %, accuracy 60.6 %). Two new seeds with the same schedule: `_s3` 56.1 % "
    "(epoch 4; 47.1, 54.8, 55.0, 56.1, 54.5, 54.6 %), `_s4` 57.7 % (epoch 3; 55.1, 56.6, 57.7, 53.7, 55.9, "
    "56.6 %).",
    "- Context inside the encoder (`_ctxenc`, `encoder_context=true`; a departure from paper 002, off by "
    "default): the fine-tuned blocks run over the concatenation of the cached lower-block states of the 3 previous "
    "utterances and the current one (each keeping its own [CLS]/[SEP] and positions), and the Bi-LSTM pools the "
    "current utterance's tokens, in the style of EmoBERTa (Kim & Vossen, \"EmoBERTa: Speaker-Aware Emotion "
    "Recognition in Conversation with RoBERTa\", 2021) but without its speaker names: the feature cache holds "
    "each utterance's lower-block states alone, and a speaker prefix would need another extraction of the lower "
    "blocks over 'Name: utterance' texts (not done, for lack of time). At lr 3e-5 for 4 epochs (`ft2_h3_ctxenc`) "
    "it reaches 56.0 %, level with the published form at the same lr (`ft2_h3_cng`, 55.9 % in 3 epochs), its "
    "best epoch the last (49.4, 52.1, 53.8, 56.0 %); an epoch cost about the same as one of `ft2_h3_cng_lr1e4` "
    "run beside it (461 s against 438 s). At lr 1e-4 for 6 epochs, where the published form gained 2.2 points, "
    "it overfits instead (`ft2_h3_ctxenc_lr1e4`, seed 0, run beside `ft2_h3_cng_lr1e4_rerun`): dev weighted F1 "
    "by epoch 48.4, 53.5, 55.1, 53.8, 54.5, 54.0 %, best 55.1 % at epoch 3 (accuracy 57.4 %), while its training "
    "accuracy rose to 97 % and its dev loss from 1.21 (epoch 2) to 1.88; the published form, same seed and "
    "schedule, went on to 58.1 % (dev loss 1.17 to 1.71). Seeing the context inside the fine-tuned blocks does not "
    "pay here, at either lr; its epoch cost 1.3x the published form's (370 s against 282 s, train seconds / 6). "
    "The mean of its probabilities and `ft2_h3_cng_lr1e4_rerun`'s gives 57.9 %, below the latter alone.",
    "- Load: the issue-13 runs (`_lr1e4`, `_ctxenc`, `_s1`, `_s2`; on a 2-core Intel Xeon machine, the earlier "
    "rows on a 2-core AMD EPYC) ran two at a time, with other jobs on the "
    "2 cores: load average (1 min) 1.5-7 until 03:57 (`ft2_h0_lr1e4`, `ft2_h3_cng_lr1e4`, `ft2_h3_ctxenc`, "
    "`_s1`), 0.7-2.2 after (`_s2`, `ft1_h3_cng_lr1e4`, then `ft1_h0_lr1e4` alone), read every minute; their "
    "seconds are indicative only. The runs of 2026-12-06 05:27-06:52 (`_rerun`, `_ctxenc_lr1e4`, "
    "`_s3`, `_s4`; on the 2-core AMD EPYC machine, `nice`, one torch thread each, two at a time, with other jobs): load average (1 min, read every minute) 1.6-7.1, mean 3.4, during "
    "`ft2_h3_ctxenc_lr1e4` and `ft2_h3_cng_lr1e4_rerun` (05:27-06:07, including the lower blocks' extraction "
    "into a cold feature cache by the first); 0.6-2.2, mean 1.9, during `_s1_rerun` and `_s2_rerun`; "
    "0.2-2.1, mean 1.8, during `_s3` and `_s4` (about 200 s an epoch for these four).",
    "- The lr 3e-5 runs: frozen all-MiniLM-L6-v2 features reach about 54-55 %; "
    "fine-tuning its top 2 blocks reaches 55.1 % without context (`ft2_h0`, +1.2 points over the same branch "
    "frozen, `tok_h0`, both capped at 4 epochs) and 55.9 % with H = 3 (`ft2_h3_cng`, +1.1 over `tok_h3`, both "
    "capped at 3), the best of these; fine-tuning only the top block does as well at "
    "H = 0 (`ft1_h0`, 55.4 %). One seed each, so differences of about a point are within noise.",
    "- With fine-tuning, the context's contribution is not consistent: +0.8 points with two blocks (`ft2_h3_cng` "
    "vs `ft2_h0`), -1.0 with one (`ft1_h3_cng` vs `ft1_h0`); the H = 3 runs had one epoch fewer (3 against 4), "
    "as for `tok_*`.",
    "- `sent_*` variants replace the token Bi-LSTM by one dense layer on the sentence embedding (a departure "
    "from the paper, far cheaper); `tok_*` are the paper's text branch.",
    "- The `tok_*` runs were capped at 3-4 epochs (`--epochs`) to fit the shared, loaded 2-core machine "
    "(load average 10-23 during these runs, so the seconds are indicative only); their best epoch (2) came "
    "before the cap, but the cosine schedule is shorter than the `sent_*` runs'.",
    "- `ft<k>_*` fine-tune the top k MiniLM blocks (`finetune_layers=k` at `finetune_lr=3e-5`, the rest of the "
    "model at 3e-4) over the feature cache's hidden states of block 6 - k (`minilm_hidden`: the lower blocks "
    "never run in training). They were capped like the `tok_*` runs, 4 epochs at H = 0 and 3 at H = 3 (the `ft2_*` "
    "runs at load average 3-10, two of them at a time: their seconds are indicative only), and their best "
    "epoch was the last one: longer runs may gain a little. The blocks run on a batch's utterances sorted by "
    "length in buckets of 16 (`finetune_bucket`; same outputs as padding the batch to its longest utterance, "
    "a step 1.4x faster at H = 0, 2x at H = 3); `_cng` runs the context utterances through the blocks without gradient "
    "(`finetune_context_grad=false`: the blocks learn from the current utterances only, the context still "
    "trains the Bi-LSTM), which halves the backward pass at H = 3. The `ft1_*` and `ft2_h3` runs ran at load 0.5-4 "
    "(their seconds are the least disturbed). Together, a training step at H = 3 is "
    "about 3x faster than before (docs/benchmarks/meld_text_step.md, `python benchmarks/meld_text_step.py`); "
    "`ft2_h3` (gradient through the context too) ends at the same dev figures as `ft2_h3_cng` (55.9 %, 59.3 %; "
    "same seed, a few predictions differ): the cheaper `_cng` loses nothing here.",
    "- The bundled text model (`src/avemo/inference/text_model`, a `sent_h0` model) was not rebuilt from the "
    "best variant here: a fine-tuned checkpoint carries its MiniLM blocks (4.9 M parameters for `ft2_*`, about "
    "19 MB in float32; 3.1 M, about 12 MB, for `ft1_*`), over the project's 5 MB limit for committed files.",
    "- A class-balanced loss lowers weighted F1 and accuracy (it trades the majority class, neutral, for the "
    "rare ones) without raising macro F1 here.",
]


@contextmanager
def report_lock():
    """An exclusive lock (``flock``) on the report's folder, held while a run reads the report's rows and
    writes them back with its own: two runs appending at once would otherwise each write back what it
    read, and the row of the one that wrote first would be lost."""
    import fcntl

    OUT.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(OUT.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def merged(rows: list[dict], new: list[dict]) -> list[dict]:
    """``rows`` with ``new`` in place of the rows of the same variants (appended after them); a replaced
    row whose figure changes is said on stderr (a rerun that is to stay beside the first takes ``_rerun``)."""
    names = {r["variant"]: r for r in new}
    for old in rows:
        if old["variant"] in names and old["dev_weighted_f1"] != names[old["variant"]]["dev_weighted_f1"]:
            print(f"replacing the row of {old['variant']}: dev weighted F1 {100 * old['dev_weighted_f1']:.1f} % -> "
                  f"{100 * names[old['variant']]['dev_weighted_f1']:.1f} %", file=sys.stderr, flush=True)
    return [r for r in rows if r["variant"] not in names] + new


def write_report(rows: list[dict], lines: list[str]) -> None:
    """The table of ``rows`` (each row keeps its own command line in ``command``)."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    best = max(rows, key=lambda r: r["dev_weighted_f1"])
    commands = sorted({r["command"] for r in rows if "command" in r})
    body = [
        *(line for line in lines if not (commands and line.startswith("- Command:"))),
        "Model: `gao_dialogue` with `modalities=[\"text\"]` (paper 002's text branch: a Bi-LSTM with attention "
        "pooling over all-MiniLM-L6-v2 token states, a Bi-LSTM over the window of the H previous utterances of "
        "the dialogue, eq. 10's MHA + residual + LayerNorm). Trained on MELD's official train split (9,989 "
        "utterances), early stopping on dev weighted F1 (1,109 utterances).",
        "",
        "**Dev is both the selection and the report split** (MELD's test split is not in the project): these "
        "figures are optimistic by the choice of epoch and variant made on them, and are not comparable to "
        "published test-split figures.",
        "",
        "| variant | H | dev weighted F1 | dev accuracy | dev macro F1 | best / run / max epochs | train s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        body.append(f"| {r['description']} (`{r['variant']}`) | {r['context']} | {100 * r['dev_weighted_f1']:.1f} % | "
                    f"{100 * r['dev_accuracy']:.1f} % | {100 * r['dev_macro_f1']:.1f} % | "
                    f"{r['best_epoch']} / {r['epochs_run']} / {r['train_config']['epochs']} | "
                    f"{r['train_seconds']:.0f} |")
    body += ["", f"Best on dev: `{best['variant']}` ({best['description']}), weighted F1 "
             f"{100 * best['dev_weighted_f1']:.1f} %, accuracy {100 * best['dev_accuracy']:.1f} %.", ""]
    body += context_lines(rows)
    body += ["", "Notes:", *NOTES]
    if commands:
        body += ["", "Commands (the rows come from these runs; machine, versions and load above are the last "
                 "run's): " + "; ".join(f"`{c}`" for c in commands)]
    tmp = OUT.with_suffix(".md.tmp")
    tmp.write_text("\n".join(body) + "\n")
    os.replace(tmp, OUT.with_suffix(".md"))
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"header": lines, "train": TRAIN, "rows": rows}, indent=1) + "\n")
    os.replace(tmp, OUT.with_suffix(".json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "meld"))
    parser.add_argument("--variants", default="sent_h0,sent_h3")
    parser.add_argument("--epochs", type=int, default=TRAIN["epochs"])
    parser.add_argument("--patience", type=int, default=TRAIN["patience"],
                        help="epochs without a better dev weighted F1 before training stops")
    parser.add_argument("--probs", type=Path, default=None,
                        help="save each variant's dev probabilities to this folder (outside the repo), for --ensemble")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of other variants already in docs/results/meld_text.json")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on the shared, loaded 2-core machine 2 threads were 10x slower)")
    parser.add_argument("--ensemble", default="",
                        help="comma-separated variants already run with --probs: add the row of their mean (no training)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite docs/results/meld_text.md from its JSON (no training)")
    args = parser.parse_args()
    if args.report_only or args.ensemble:
        with report_lock():
            saved = json.loads(OUT.with_suffix(".json").read_text())
            rows = saved["rows"]
            if args.ensemble:
                rows = merged(rows, [ensemble_row([v.strip() for v in args.ensemble.split(",") if v.strip()],
                                                  args.probs, rows)])
            write_report(rows, saved["header"])
        return
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    for name in names:
        try:
            variant(name)
        except ValueError as exc:
            parser.error(str(exc))
    import torch

    from avemo.cache import FeatureCache
    from avemo.training import load_data, resolve_split

    torch.set_num_threads(args.threads)
    lines = header("MELD text with dialogue context (paper 002's text branch), selected on dev")
    data = load_data("meld", args.root)
    train, dev, _test, _info = resolve_split(data)
    cache = FeatureCache()
    rows = []
    for name in names:
        rows.append(run_variant(name, data, train, dev, cache, args.epochs, args.patience, args.probs))
        with report_lock():  # read again before each write, under the lock: another run may append meanwhile
            kept = []
            if args.append and OUT.with_suffix(".json").is_file():
                kept = json.loads(OUT.with_suffix(".json").read_text())["rows"]
            write_report(merged(kept, rows), lines)  # after every variant: a long run leaves what it finished
        print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("confusion", "train_config")}), flush=True)


if __name__ == "__main__":
    main()
