"""Where the time of one training step of ``gao_dialogue`` with fine-tuned MiniLM blocks goes (MELD text).

Times the forward pass and the backward pass + optimizer step of ``--batches`` training batches
(after one warm-up batch; the same batches for every setting) of the ``ft2_h<H>`` models of
``benchmarks/meld_text.py`` (two fine-tuned blocks over the cached hidden states of block 4), for
the settings of :data:`SETTINGS`: the blocks over the batch padded to its longest utterance
(``finetune_bucket = 0``, the behaviour before length buckets) or in length buckets, and the
context utterances with or without gradient through the blocks (``finetune_context_grad``). Also
counts the real and padded token positions of a batch. Writes ``docs/benchmarks/meld_text_step.md``.

    python benchmarks/meld_text_step.py [--root ../shared/data/meld] [--batches 8]

The lower blocks are never run: the text input is the feature cache's ``minilm_hidden`` (layer 4),
extracted once into the cache if it is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: no spinning threads on a loaded machine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, header, write_section  # noqa: E402

#: name -> (context H, model config beyond ``ft2``'s)
SETTINGS: dict[str, tuple[int, dict]] = {
    "H = 0, padded to the batch's longest": (0, {"finetune_bucket": 0}),
    "H = 0, length buckets of 16": (0, {}),
    "H = 3, padded to the batch's longest, context with gradient": (3, {"finetune_bucket": 0}),
    "H = 3, length buckets of 16, context with gradient": (3, {}),
    "H = 3, length buckets of 16, context without gradient (`_cng`)": (3, {"finetune_context_grad": False}),
}
BATCH = 32


def time_steps(model, batches) -> tuple[float, float]:
    """Mean seconds of (forward, backward + optimizer step) over ``batches`` after the first (warm-up)."""
    import torch

    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=3e-4)
    model.train()
    forward = backward = 0.0
    for k, (inputs, labels) in enumerate(batches):
        t0 = time.perf_counter()
        loss = model.loss(model.forward_outputs(inputs), labels)
        t1 = time.perf_counter()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        if k:
            forward, backward = forward + t1 - t0, backward + t2 - t1
    n = max(len(batches) - 1, 1)
    return forward / n, backward / n


def token_counts(inputs) -> str:
    """Real / padded token positions of a batch's current utterances and present context utterances."""
    mask = inputs["text_mask"]
    out = f"current {int(mask.sum())} / {mask.numel()}"
    if "text_context_mask" in inputs:
        cmask = inputs["text_context_mask"]
        present = cmask.any(dim=2)
        out += f"; context {int(cmask.sum())} / {int(present.sum()) * cmask.shape[2]} ({int(present.sum())} utterances)"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "meld"))
    parser.add_argument("--batches", type=int, default=8, help="timed batches (one more is run as a warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import numpy as np
    import torch

    from avemo.cache import FeatureCache
    from avemo.models import create_model
    from avemo.models.batching import TensorData, collate
    from avemo.models.normalization import Normalizer
    from avemo.training import load_data, resolve_split
    from avemo.training.data import gather, previous_utterances

    torch.set_num_threads(args.threads)
    lines = header("MELD text: one training step with fine-tuned MiniLM blocks (`ft2_h<H>`)")
    data = load_data("meld", args.root)
    train, _dev, _test, _info = resolve_split(data)
    base = {"modalities": ["text"], "finetune_layers": 2, "finetune_lr": 3e-5}
    specs = dict(create_model("gao_dialogue", num_classes=len(data.labels), **base).inputs)
    t0 = time.perf_counter()
    gathered = gather(list(train), specs, tables=data.tables, cache=FeatureCache())
    lines += [f"- Training utterances: {len(gathered)} (inputs `minilm_hidden` layer 4 from the feature cache in "
              f"{time.perf_counter() - t0:.0f} s); {args.batches} timed batches of {BATCH}, {args.threads} thread(s)",
              ""]
    norm = Normalizer.fit(gathered, specs)
    order = np.random.default_rng(0).permutation(len(gathered))[: BATCH * (args.batches + 1)]
    rows = ["| setting | forward s / batch | backward + step s / batch | epoch estimate s | "
            "real / padded tokens (first batch) |", "| --- | --- | --- | --- | --- |"]
    datasets = {}
    for name, (context, extra) in SETTINGS.items():
        if context not in datasets:
            datasets[context] = TensorData(norm.transform(gathered), gathered.labels(data.labels), specs, train=True,
                                           context=context, previous=previous_utterances(gathered.takes))
        items = datasets[context]
        batches = [collate([items[int(i)] for i in order[k:k + BATCH]]) for k in range(0, len(order), BATCH)]
        torch.manual_seed(0)
        model = create_model("gao_dialogue", num_classes=len(data.labels), **base, context=context, **extra)
        forward, backward = time_steps(model, batches)
        epoch = (forward + backward) * len(gathered) / BATCH
        rows.append(f"| {name} | {forward:.3f} | {backward:.3f} | {epoch:.0f} | {token_counts(batches[0][0])} |")
        print(rows[-1], flush=True)
    lines += rows
    lines += ["", f"Load average (1/5/15 min) at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}. "
              "The epoch estimate is the timed steps' mean times the batches of an epoch (no evaluation)."]
    print(write_section("meld_text_step", lines))


if __name__ == "__main__":
    main()
