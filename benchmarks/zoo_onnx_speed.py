"""Export time and speed of trained zoo models in onnxruntime and in torch, written to ``docs/benchmarks/zoo_onnx.md``.

For each model (random weights, statistics fitted on random inputs: speed does not depend on the
weights), saved as a trainer checkpoint: the wall time of ``avemo.inference.zoo_export.export_run``
(tracing, onnxruntime's session and the two parity checks), the graph's size, and the model on one
clip (batch 1) and on a batch of 8, in torch (``torch.inference_mode``, torch's default threads) and
in onnxruntime (:class:`~avemo.inference.engines.OnnxEngine`, its default threads): median of
``--repeats`` calls after a warm-up, and the largest difference of the logits. The network alone: the
features (decoding, face crops, MFCCs) are the same code for both engines and are not timed.

    python benchmarks/zoo_onnx_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import header, write_section  # noqa: E402

#: (model, its configuration, free length of its sequences): a 3D ResNeXt-50 at 16 frames of 112x112
#: (the full-size 30x224x224 costs 7 times as much), paper 002's audio Bi-LSTM on 3 s of log-mel
#: frames, a small 1D CNN on MFCCs
MODELS = [
    ("resnext3d_50", {"n_frames": 16, "size": (112, 112)}, 16),
    ("gao_bilstm_attention", {}, 300),
    ("mfcc_cnn1d", {}, 16),
]


def checkpoint(folder: Path, name: str, config: dict) -> Path:
    import torch

    from avemo.datasets.labels import RAVDESS
    from avemo.models import create_model, example_inputs
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import ArraySet, Normalizer

    torch.manual_seed(0)
    model = create_model(name, num_classes=len(RAVDESS), **config)
    data = example_inputs(model.inputs, batch=4, free=16, generator=torch.Generator().manual_seed(0))
    norm = Normalizer.fit(ArraySet({k: list(v.numpy()) for k, v in data.items()}), model.inputs)
    return save_checkpoint(folder / name, model, labels=RAVDESS, normalizer=norm)


def torch_logits(model, tensors):
    import torch

    with torch.inference_mode():
        return model(tensors).numpy()


def median_ms(call, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def measure(name: str, config: dict, length: int, repeats: int, folder: Path) -> list[str]:
    """The table rows of one model (batch 1 and batch 8)."""
    import numpy as np
    import torch

    from avemo.inference.engines import OnnxEngine
    from avemo.inference.zoo_export import example_batch, example_specs, export_run
    from avemo.models.checkpoint import load_checkpoint

    run = checkpoint(folder, name, config)
    t = time.perf_counter()
    out = export_run(run, folder / f"{name}_onnx")
    export_s = time.perf_counter() - t
    ckpt = load_checkpoint(run)
    names = list(ckpt.inputs)
    engine = OnnxEngine(out / "model.onnx")
    size = (out / "model.onnx").stat().st_size / 1e6
    rows = []
    for batch_size in (1, 8):
        batch = example_batch(ckpt.model, example_specs(ckpt, names), batch=batch_size, length=length, seed=1)
        tensors = {n: torch.from_numpy(batch[n]) for n in names}
        run_torch = functools.partial(torch_logits, ckpt.model, tensors)
        torch_ms = median_ms(run_torch, repeats)
        onnx_ms = median_ms(functools.partial(engine, **batch), repeats)
        diff = float(np.max(np.abs(engine(**batch)["logits"] - run_torch())))
        shape = "x".join(str(d) for d in batch[names[0]].shape)
        rows.append(f"| {name} | {shape} | {export_s:.2f} | {size:.1f} | {torch_ms:.1f} | {onnx_ms:.1f} | "
                    f"{torch_ms / onnx_ms:.2f} | {diff:.1e} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    lines = header("ONNX export of trained zoo models: export time, onnxruntime vs torch", ("onnxruntime",))
    lines += [f"- torch threads: {torch.get_num_threads()}; onnxruntime: its default intra-op threads", "",
              "| model | input (batch x ...) | export s | graph MB | torch ms | onnx ms | torch / onnx | max diff |",
              "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="avemo-zoo-onnx-") as tmp:
        for name, config, length in MODELS:
            lines += measure(name, config, length, args.repeats, Path(tmp))
            print(lines[-2], lines[-1], sep="\n", flush=True)
    lines += ["", "Export s: `export_run` on one checkpoint (tracing, then onnxruntime and torch on two example "
              "batches, the check). Times are per call on the whole batch, the network alone."]
    print(write_section("zoo_onnx", lines))


if __name__ == "__main__":
    main()
