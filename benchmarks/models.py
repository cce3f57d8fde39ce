"""Benchmark every registered model and write ``docs/models.md`` from the registry.

For each model: kind, paper, inputs, trainable parameters, and wall-clock milliseconds per
training step (forward, loss, backward, SGD step) at batch 8 and per inference (eval, no grad) at
batch 1, at the model's *default* input sizes (a text input: token embeddings of its own
``InputSpec``), on CPU (all available cores unless ``--threads``)
or on CUDA with ``--device cuda`` (mixed precision with ``--amp``).

Each model runs in its own subprocess, so one model's memory is released before the next and a
crash or time-out is recorded instead of stopping the run. Before the batch-8 training step the
child measures the memory growth of a batch-1 step and skips the batch-8 step (reporting the
estimate) when it would not fit in the memory available. A model fitted in closed form (``closed_form``:
``whisper_logreg``'s L-BFGS on all training clips at once) has no training step: its train column says
so, with a note.

    python benchmarks/models.py --json docs/models.json   # all models -> docs/models.md (+ what --merge reads)
    python benchmarks/models.py --models msaf mcbp --repeats 5 --out /tmp/models.md
    python benchmarks/models.py --device cuda --amp   # on a GPU machine
    python benchmarks/models.py --models whisper_mlp --merge docs/models.json --json docs/models.json  # some rows
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FREE_SEQUENCE = 300  # frames (3 s at 10 ms) for inputs of free length
FREE_VECTOR = 128  # values for vector inputs of free size (mfa_fercnn's stip)
FREE_TOKENS = 32  # tokens of a text input: above the 95th percentile of MELD's training utterances (20 words)
MiB = 1024 * 1024


def available_memory() -> int:
    """Bytes of memory available now (Linux ``MemAvailable``; inf elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return sys.maxsize


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def make_inputs(specs, batch, generator):
    import torch

    out = {}
    for name, spec in specs.items():
        free = (FREE_TOKENS if spec.modality == "text" else FREE_SEQUENCE) if spec.kind == "sequence" else FREE_VECTOR
        shape = (batch, *(free if d is None else d for d in spec.shape))
        out[name] = (
            torch.rand(shape, generator=generator)
            if spec.kind == "frames"
            else torch.randn(shape, generator=generator)
        )
    return out


def measure(name: str, args: argparse.Namespace) -> dict:
    """Run in the child: build ``name`` and time it (see module docstring)."""
    import torch

    from avemo.models import count_parameters, create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_model(name, num_classes=8).to(device)
    result = {
        "name": name,
        "params": count_parameters(model),
        "dense_sketch": getattr(model, "dense_sketch_size", 0),
    }
    gen = torch.Generator().manual_seed(0)
    if model.needs_fit:
        data = make_inputs(model.inputs, 64, gen)
        model.fit({k: v.to(device) for k, v in data.items()}, (torch.arange(64) % 8).to(device))

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def autocast():
        return torch.autocast(device.type, enabled=args.amp and device.type == "cuda")

    def timed(fn, repeats):
        fn()  # warm-up
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    x1 = {k: v.to(device) for k, v in make_inputs(model.inputs, 1, gen).items()}
    model.eval()

    def infer():
        with torch.no_grad(), autocast():
            model(x1)

    result["infer_ms"] = timed(infer, args.repeats)
    if getattr(model, "closed_form", False):
        result["train_ms"], result["train_note"] = None, "closed form"
        return result

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and device.type == "cuda")
    model.train()

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = model.loss(model.forward_outputs(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    # memory needed at batch 8, extrapolated from a batch-2 step (batch norm needs 2 examples)
    x2 = {k: v.to(device) for k, v in make_inputs(model.inputs, 2, gen).items()}
    before = peak_rss()
    step(x2, torch.tensor([0, 1], device=device))
    growth = max(peak_rss() - before, 0)
    needed = growth * 4  # batch 8 vs batch 2
    result["train_estimate_mib"] = needed / MiB
    if device.type == "cpu" and needed > 0.6 * available_memory():
        result["train_ms"] = None
        result["train_note"] = f"skipped: needs ~{needed / 2**30:.0f} GiB"
        return result
    x8 = {k: v.to(device) for k, v in make_inputs(model.inputs, args.batch, gen).items()}
    y8 = (torch.arange(args.batch) % 8).to(device)
    result["train_ms"] = timed(lambda: step(x8, y8), args.repeats)
    result["peak_rss_mib"] = peak_rss() / MiB
    return result


def run_child(name: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--device",
        args.device,
        "--repeats",
        str(args.repeats),
        "--batch",
        str(args.batch),
    ]
    if args.amp:
        cmd.append("--amp")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    # Busy-waiting OpenMP threads stall badly when other jobs share the cores (a 0.5 ms step took
    # 300 ms): let idle threads sleep unless the caller chose otherwise.
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {args.timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"name": name, "error": tail[:200]}
    return json.loads(lines[-1])


def fmt_ms(value) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def write_markdown(
    results: list[dict], args: argparse.Namespace, elapsed: float, load: list[float], earlier: dict | None = None,
    date: str | None = None,
) -> str:
    import torch

    from avemo.models import model_info

    device = (
        args.device if args.device != "cpu" else f"CPU, {args.threads or torch.get_num_threads()} threads"
    )
    lines = [
        "# Model zoo",
        "",
        "Generated by `python benchmarks/models.py` from the registry (`avemo.models.list_models()`);",
        "do not edit by hand. Build any of them with `avemo.models.create_model(name, num_classes=...)`;",
        "fusion models take `audio=`, `video=` (encoder names), `audio_config=`, `video_config=`.",
        "The input contract is documented in `src/avemo/models/registry.py`.",
        "",
        f"Measured {date or datetime.date.today().isoformat()} on {device} ({platform.processor() or platform.machine()}),",
        f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')},",
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
        "(other jobs shared the machine: times are indicative). Parameters: trainable, 8 classes.",
        f"Train: ms per step (forward, loss, backward, SGD step) at batch {args.batch}; infer: ms per",
        f"forward at batch 1 in eval mode; median of {args.repeats} after one warm-up; default input sizes",
        f"(free-length sequences: {FREE_SEQUENCE} frames; text: {FREE_TOKENS} tokens). Run time {elapsed / 60:.0f} min.",
        *_merged_lines(results, earlier),
        "",
        "| model | kind | paper | inputs | params | train ms (b=8) | infer ms (b=1) |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    rows, notes = _model_rows(results)
    lines += rows
    from avemo.models import list_aliases

    aliases = ", ".join(f"`{a}` = `{t}`" for a, t in sorted(list_aliases().items()))
    if aliases:
        lines += ["", f"Aliases (also accepted by `create_model`): {aliases}."]
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines += _table_1_lines(results)
    lines += ["", "## Summaries", ""]
    for r in results:
        info = model_info(r["name"])
        lines.append(f"- **`{r['name']}`** ({info['kind']}): {info['summary']}. Source: `{info['paper']}`.")
    lines += [
        "",
        "Each model's docstring (`avemo.models.model_info(name)['description']`, and its module's) states",
        "where it departs from its paper and why.",
        "",
    ]
    return "\n".join(lines)


def _merged_lines(results: list[dict], earlier: dict | None) -> list[str]:
    """Which rows come from earlier runs (``--merge``), by run."""
    if not earlier:
        return []
    runs: dict[tuple[str, float], list[str]] = {}
    for r in results:
        if r["name"] not in earlier["measured"]:
            runs.setdefault((r["run"]["date"], r["run"]["load"]), []).append(f"`{r['name']}`")
    (date, load), *others = sorted(runs, key=lambda run: -len(runs[run]))  # the run of most rows first
    rest = f"the run of {date} (load average at its end {load:.1f})"
    if others:
        parts = [f"{', '.join(runs[(d, lo)])} from the run of {d} (load average at its end {lo:.1f})" for d, lo in others]
        rest = f"earlier runs, merged with `--merge`: {'; '.join(parts)}; the rest from {rest}"
    else:
        rest += ", merged with `--merge`"
    return [f"Only {', '.join(f'`{n}`' for n in earlier['measured'])} were measured in this run; the other rows "
            f"come from {rest}."]


def _model_rows(results: list[dict]) -> tuple[list[str], list[str]]:
    """One table row per model, and the notes the rows refer to."""
    from avemo.models import default_inputs, model_info

    lines: list[str] = []
    notes = []
    for r in results:
        info = model_info(r["name"])
        inputs = "<br>".join(f"`{k}`: {v.describe()}" for k, v in default_inputs(r["name"]).items())
        paper = info["paper"]
        if "error" in r:
            lines.append(f"| `{r['name']}` | {info['kind']} | {paper} | {inputs} | — | error | error |")
            notes.append(f"- `{r['name']}`: {r['error']}")
            continue
        params = f"{r['params'] / 1e6:.2f} M"
        if r.get("dense_sketch"):
            params += f" (+{r['dense_sketch'] / 1e6:.2f} M sketch)"
            notes.append(
                f"- `{r['name']}`: the count sketches are constant buffers; counted as dense matrices "
                f"(as paper 000 / MSAF count them) the model has {(r['params'] + r['dense_sketch']) / 1e6:.2f} M."
            )
        train = fmt_ms(r.get("train_ms"))
        if r.get("train_note"):
            train = r["train_note"]
        if r.get("train_note") == "closed form":
            notes.append(f"- `{r['name']}`: fitted in closed form (full-batch L-BFGS on all training clips at once, "
                         "`avemo.models.closed_form.fit_logistic`), not by SGD steps: it has no time per step.")
        lines.append(
            f"| `{r['name']}` | {info['kind']} | {paper} | {inputs} | {params} | {train} | {fmt_ms(r.get('infer_ms'))} |"
        )
    return lines, notes


def _table_1_lines(results: list[dict]) -> list[str]:
    """Parameter counts against paper 000's Table 1 (when the run measured those models)."""
    from avemo.models.papers import ZHANG_ZHENG_TABLE_1

    lines: list[str] = []
    table = [r for r in results if r["name"] in ZHANG_ZHENG_TABLE_1 and "error" not in r]
    if table:
        lines += [
            "",
            "## Parameter counts against paper 000, Table 1",
            "",
            "3D ResNeXt-50 video encoder, MFCC 1D CNN audio encoder, 8 classes (millions).",
            "",
            "| model | paper 000 | avemo | difference |",
            "|---|---:|---:|---:|",
        ]
        for r in table:
            ours = (r["params"] + r.get("dense_sketch", 0)) / 1e6
            paper = ZHANG_ZHENG_TABLE_1[r["name"]]
            lines.append(f"| `{r['name']}` | {paper} | {ours:.3f} | {100 * (ours - paper) / paper:+.1f} % |")
        lines += [
            "",
            "- `mfcc_cnn1d`: the paper's 0.03 M is rounded (0.025-0.035 M); MSAF's network has 34,024.",
            "- `cfnsr_lstm`: paper 000 gives 26.40 M in its abstract and 26.50 M in Table 1.",
            "- `mcbp`: counted with its count sketches as dense matrices, as MSAF does (see `fusion/mcbp.py`).",
            "- `concat_fc` and `mmtm`: MSAF publishes neither; see their modules for the layouts chosen.",
        ]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="names (default: every registered model)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "models.md")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per model")
    parser.add_argument("--json", type=Path, help="also write the raw measurements here")
    parser.add_argument("--from-json", type=Path, help="rewrite the page from measurements saved with --json")
    parser.add_argument("--merge", type=Path,
                        help="an earlier run saved with --json: measure only --models, keep its other rows")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(measure(args.child, args)), flush=True)
        return 0

    from avemo.models import list_models

    if args.from_json:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        args.out.write_text(
            write_markdown(saved["results"], args, saved["elapsed"], saved["load"], saved.get("merged"), saved["date"]),
            encoding="utf-8",
        )
        print(f"wrote {args.out}")
        return 0
    names = args.models or list_models()
    earlier = None
    if args.merge:
        if not args.models:
            parser.error("--merge needs --models (the rows to measure again)")
        earlier = json.loads(args.merge.read_text(encoding="utf-8"))
        earlier["measured"] = names
    start = time.perf_counter()
    results = []
    for name in names:
        t0 = time.perf_counter()
        r = run_child(name, args)
        results.append(r)
        shown = (
            r.get("error") or f"train {r.get('train_note') or fmt_ms(r.get('train_ms')) + ' ms'}, "
                              f"infer {fmt_ms(r.get('infer_ms'))} ms"
        )
        print(f"{name:24s} {shown}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    elapsed = time.perf_counter() - start
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else [float("nan")] * 3
    run = {"date": datetime.date.today().isoformat(), "load": round(load[0], 1)}
    results = [{**r, "run": run} for r in results]
    if earlier:  # every registered model, in registry order: this run's rows, else the earlier run's
        before = {"date": earlier["date"], "load": round(earlier["load"][0], 1)}
        rows = {r["name"]: {"run": before, **r} for r in earlier["results"]} | {r["name"]: r for r in results}
        results = [rows[n] for n in list_models() if n in rows]
    args.out.write_text(write_markdown(results, args, elapsed, load, earlier), encoding="utf-8")
    if args.json:
        saved = {
            "results": results,
            "elapsed": elapsed,
            "load": load,
            "date": datetime.date.today().isoformat(),
        }
        if earlier:
            saved["merged"] = {k: earlier[k] for k in ("measured", "date", "load")}
        args.json.write_text(json.dumps(saved, indent=1), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
