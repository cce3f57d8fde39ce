"""Frame models on a GPU: training and evaluation throughput, peak memory, fit() against the bare step.

For every model with a face-frame input (the 3D ResNeXt-50 fusion models of paper 000, paper
001's 3D CNN, paper 003's 2D CNNs, ...), on synthetic clips of the model's own input shapes
(uint8 frames, as the ``face_crops`` cache holds them):

* **bare step**: forward, loss, backward and optimizer step on a batch already on the device,
  with the trainer's default device settings (autocast dtype, ``channels_last_3d``, cuDNN
  search); clips/s, median of ``--steps`` steps after warm-up;
* **fit()**: the project's training loop (loader, workers, transfer, augmentation, step) at the
  default settings, clips/s of its second epoch, and the ratio to the bare step; the
  derived time of one RAVDESS-sized epoch (1,440 clips); peak memory of the fit;
* **best**: the same fit with ``compile=True`` (clips/s of the second epoch; compile time);
* **evaluation**: ``predict_proba`` with the automatic evaluation batch: clips/s and peak memory.

On a GPU it writes ``docs/benchmarks/gpu_train.md`` (and reassembles ``docs/benchmarks.md``);
on a CPU it is a smoke test with tiny inputs that writes only where ``--out`` says
(``tests/test_benchmark_gpu_train.py`` runs it so in CI).

    python benchmarks/gpu_train.py                          # on a CUDA machine: every frame model
    python benchmarks/gpu_train.py --models cfnsr_lstm,msaf --compile cfnsr_lstm
    python benchmarks/gpu_train.py --device cpu --smoke --batch 2 --steps 2 --compile none --out /tmp/g.md

The rows also go to a JSON file beside the section (``gpu_train.json``). With ``--merge`` a run keeps
the rows of the models it does not measure from that file (same GPU and versions only), and with
``--skip-measured`` it measures only the models that have no row there yet: a run cut short by a
time limit goes on where it stopped. ``benchmarks/gpu_device.sh`` is the prepared run for a lent
GPU machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import SECTIONS, header, write_section  # noqa: E402

from avemo.device import torch_device  # noqa: E402
from avemo.models import count_parameters, create_model, default_inputs, list_models, smoke_config  # noqa: E402
from avemo.models.batching import TensorData, collate, to_device  # noqa: E402
from avemo.output_file import OutputFile  # noqa: E402
from avemo.training import TrainConfig, fit, predict_proba  # noqa: E402
from avemo.training.memory import eval_batch_size  # noqa: E402
from avemo.training.trainer import setup_training  # noqa: E402

GiB = 1024 ** 3
FREE_SEQUENCE = 300  # frames (3 s at 10 ms) for sequence inputs of free length
RAVDESS_CLIPS = 1440


def frame_models() -> list[str]:
    """Every registered model with a face-frame input at its default configuration."""
    return [n for n in list_models() if any(s.kind == "frames" for s in default_inputs(n).values())]


_ARRAYS: dict[tuple, list[np.ndarray]] = {}  # (input spec, n): arrays shared by the models with that input


def synthetic_data(model, n: int) -> TensorData:
    """``n`` random clips of the model's inputs (uint8 frames, float sequences and vectors), 8 labels;
    models with the same input get the same arrays (generated once)."""
    arrays = {}
    for name, spec in model.inputs.items():
        key = (spec, n)
        if key not in _ARRAYS:
            if len(_ARRAYS) > 8:  # a few GB at most
                _ARRAYS.clear()
            rng = np.random.default_rng(len(_ARRAYS))
            shape = tuple(FREE_SEQUENCE if d is None else d for d in spec.shape)
            _ARRAYS[key] = [rng.integers(0, 256, shape, dtype=np.uint8) if spec.kind == "frames"
                            else rng.standard_normal(shape, dtype=np.float32) for _ in range(n)]
        arrays[name] = _ARRAYS[key]
    return TensorData(arrays, np.arange(n) % 8, model.inputs)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else None


def bare_step(model, data: TensorData, config: TrainConfig, steps: int) -> dict:
    """Clips/s of the bare training step at ``config``'s device settings (batch already on the device)."""
    setup = setup_training(model, config)
    inputs, targets = collate([data[i] for i in range(config.batch_size)])
    inputs, targets = to_device(inputs, data.specs, setup.device), targets.to(setup.device)
    setup.net.train()

    def step() -> None:
        setup.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(setup.device.type, dtype=setup.amp_dtype, enabled=setup.use_amp):
            loss = model.loss(setup.net(inputs), targets)
        setup.scaler.scale(loss).backward()
        setup.scaler.step(setup.optimizer)
        setup.scaler.update()

    times = []
    for i in range(steps + 2):  # two warm-ups (cuDNN's algorithm search, autocast caches)
        _sync(setup.device)
        start = time.perf_counter()
        step()
        _sync(setup.device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return {"bare_clips_s": config.batch_size / statistics.median(times),
            "dtype": str(setup.amp_dtype).replace("torch.", "") if setup.amp_dtype else "float32"}


def fit_throughput(model, data: TensorData, config: TrainConfig) -> dict:
    """Clips/s of fit()'s second epoch (the first pays for warm-up and compilation), peak memory, compile time."""
    stamps: list[float] = []
    device = torch_device(config.device)
    _reset_peak(device)
    start = time.perf_counter()
    result = fit(model, data, None, config, labels=[str(i) for i in range(8)],
                 on_epoch=lambda _row: (_sync(device), stamps.append(time.perf_counter())))
    seconds = stamps[1] - stamps[0] if len(stamps) > 1 else stamps[0] - start
    return {"clips_s": len(data) / seconds, "peak_gib": _peak_gib(device), "compile_s": result.compile_seconds}


def eval_throughput(model, data: TensorData) -> dict:
    """Clips/s and peak memory of ``predict_proba`` at the automatic evaluation batch (second run)."""
    device = next(model.parameters()).device
    batch = eval_batch_size(model, data, device)
    predict_proba(model, data)  # warm-up
    _reset_peak(device)
    start = time.perf_counter()
    predict_proba(model, data)
    _sync(device)
    return {"eval_clips_s": len(data) / (time.perf_counter() - start), "eval_batch": batch,
            "eval_peak_gib": _peak_gib(device)}


def _build(name: str, smoke: bool):
    torch.manual_seed(0)
    return create_model(name, num_classes=8, **(smoke_config(name) if smoke else {}))


def measure(name: str, args: argparse.Namespace) -> dict:
    """Every figure of one model (see module docstring); an out-of-memory step is recorded, not raised."""
    base = TrainConfig(epochs=2, batch_size=args.batch, device=args.device, scheduler="none")
    n = args.batch * args.steps
    row: dict = {"name": name}
    try:
        model = _build(name, args.smoke)
        row["params_m"] = count_parameters(model) / 1e6
        data = synthetic_data(model, n)
        row.update(fit_throughput(model, data, base))
        row.update(bare_step(model, data, base, args.steps))
        row.update(eval_throughput(model, data))
        del model
        if args.compile == "all" or name in args.compile.split(","):
            best = fit_throughput(_build(name, args.smoke), data, dataclasses.replace(base, compile=True))
            row.update({"best_clips_s": best["clips_s"], "best_peak_gib": best["peak_gib"], "compile_s": best["compile_s"]})
    except torch.OutOfMemoryError as exc:
        row["error"] = f"out of memory: {str(exc).splitlines()[0][:120]}"
    except Exception as exc:  # noqa: BLE001 -- a benchmark records a failing model and goes on
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return row


def _fmt(value, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(rows: list[dict]) -> list[str]:
    """The section's table: one row per model, errors as notes below it."""
    lines = [
        "| model | params | autocast | fit() clips/s | bare step clips/s | fit / bare | 1,440-clip epoch s "
        "| best: + compile, clips/s | compile s | eval clips/s (batch) | peak GiB train / best / eval |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['name']}` | {_fmt(r.get('params_m'), 2)} M | | | | | | | | | error (below) |")
            notes.append(f"- `{r['name']}`: {r['error']}")
            continue
        ratio = r["clips_s"] / r["bare_clips_s"]
        epoch = RAVDESS_CLIPS / r["clips_s"]
        peaks = " / ".join(_fmt(r.get(k), 1) for k in ("peak_gib", "best_peak_gib", "eval_peak_gib"))
        lines.append(
            f"| `{r['name']}` | {r['params_m']:.2f} M | {r['dtype']} | {_fmt(r['clips_s'], 1)} | "
            f"{_fmt(r['bare_clips_s'], 1)} | {ratio:.2f} | {epoch:,.1f} | {_fmt(r.get('best_clips_s'), 1)} | "
            f"{_fmt(r.get('compile_s'), 0)} | {_fmt(r['eval_clips_s'], 1)} ({r['eval_batch']}) | {peaks} |"
        )
    return lines + ([""] + notes if notes else [])


def device_lines(device: torch.device) -> list[str]:
    """The accelerator, torch, CUDA and cuDNN versions (the figures depend on all of them)."""
    if device.type != "cuda":
        return [f"- Device: CPU ({torch.get_num_threads()} threads), torch {torch.__version__}: a smoke run, "
                "not GPU figures", ""]
    props = torch.cuda.get_device_properties(device)
    return [f"- GPU: {props.name}, {props.total_memory / GiB:.0f} GiB; torch {torch.__version__}, CUDA "
            f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}", ""]


def section(head: list[str], rows: list[dict], args: argparse.Namespace) -> list[str]:
    lines = list(head)
    size = "smoke-test input sizes (`smoke_config`)" if args.smoke else "each model's default input sizes"
    lines += [
        f"Synthetic clips of {size} (uint8 frames), batch {args.batch}, {args.batch * args.steps} clips per "
        "epoch, 8 classes. fit() clips/s: the second of two epochs of the training loop with the default "
        "settings (automatic autocast dtype, loader workers, pinned memory, `channels_last_3d`, cuDNN search); "
        "bare step: forward, loss, backward and optimizer step on a batch already on the GPU, same settings, "
        f"median of {args.steps} steps; 1,440-clip epoch: a RAVDESS-sized epoch at the fit() rate (derived, "
        "features cached); best: fit() with `compile=True`; eval: `predict_proba` at the automatic evaluation "
        "batch. Peak memory: `torch.cuda.max_memory_allocated` during each.",
        "",
        *table(rows),
    ]
    return lines


def destination(out: Path | None, device: torch.device) -> Path | None:
    """Where the section goes: ``--out``, else ``docs/benchmarks/gpu_train.md`` on a GPU, else nowhere."""
    if out is not None:
        return out
    return SECTIONS / "gpu_train.md" if device.type == "cuda" else None


def earlier_run(path: Path, device_line: str) -> dict:
    """The rows and commands of the JSON beside the section, refused when another device measured them."""
    if not path.exists():
        return {"rows": [], "commands": []}
    state = json.loads(path.read_text())
    if state.get("device") != device_line:
        raise SystemExit(f"gpu_train.py: --merge: {path} holds rows measured with {state.get('device')!r}, this run "
                         f"has {device_line!r}; run without --merge to start over")
    return state


def merged(earlier: list[dict], new: list[dict]) -> list[dict]:
    """The rows of both runs (this run's win), in the order of :func:`frame_models`."""
    by_name = {r["name"]: r for r in earlier} | {r["name"]: r for r in new}
    order = {name: i for i, name in enumerate(frame_models())}
    return sorted(by_name.values(), key=lambda r: order.get(r["name"], len(order)))


def _write(md: Path, lines: list[str], state: dict) -> None:
    """The JSON, then the section, each written atomically; the GPU section also reassembles docs/benchmarks.md."""
    with OutputFile(md.with_suffix(".json")) as out:
        out.commit(json.dumps(state, indent=1) + "\n")
    if md == SECTIONS / "gpu_train.md":
        write_section("gpu_train", lines)
    else:
        with OutputFile(md) as out:
            out.commit("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every frame model)")
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one), cuda, cuda:N or cpu")
    parser.add_argument("--batch", type=int, default=TrainConfig().batch_size, help="training batch (default: the trainer's)")
    parser.add_argument("--steps", type=int, default=8, help="batches per epoch and timed bare steps")
    parser.add_argument("--smoke", action="store_true", help="the models' smallest inputs (a CPU smoke test)")
    parser.add_argument("--compile", default="all",
                        help="models also timed with torch.compile: all, none or comma-separated names")
    parser.add_argument("--out", type=Path, help="write the section here (default on a GPU: docs/benchmarks/gpu_train.md)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of the models this run does not measure from the JSON beside the section "
                             "(measured with the same GPU and versions)")
    parser.add_argument("--skip-measured", action="store_true",
                        help="with --merge: measure only the models without a row there (a row with an error counts "
                             "as missing)")
    args = parser.parse_args(argv)
    device = torch_device(args.device)
    md = destination(args.out, device)
    if args.merge and md is None:
        parser.error("--merge needs a file to merge into: run on a GPU, or give --out")
    if args.skip_measured and not args.merge:
        parser.error("--skip-measured needs --merge")
    device_line = device_lines(device)[0]
    earlier = earlier_run(md.with_suffix(".json"), device_line) if args.merge else {"rows": [], "commands": []}
    names = args.models.split(",") if args.models else frame_models()
    if args.skip_measured:
        names = [n for n in names if not any(r["name"] == n and "error" not in r for r in earlier["rows"])]
    head = header("Frame models on a GPU: training and evaluation throughput, memory", ("safetensors",))
    command = head[2].removeprefix("- Command: ")
    commands = [c for c in earlier["commands"] if c != command]
    if commands:
        head.insert(3, "- Rows kept from earlier runs with the same device and versions (`--merge`): " + "; ".join(commands))
    head += [device_line, ""]
    rows = merged(earlier["rows"], [])
    lines = section(head, rows, args)
    for name in names:  # the section is rewritten after every model: an interrupted run keeps its rows
        row = measure(name, args)
        print(row, flush=True)
        rows = merged(rows, [row])
        lines = section(head, rows, args)
        if md is not None:
            _write(md, lines, {"device": device_line, "commands": [*commands, command], "rows": rows})
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
