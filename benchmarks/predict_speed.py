"""Speed and memory of ``avemo predict`` with the bundled model, written to ``docs/benchmarks/predict.md``.

What it measures, on this machine:

1. **Model load**: ``from avemo import Predictor; Predictor.default(engine=...)`` in a fresh Python
   process (imports included; the ONNX graphs already exported), median of ``--repeats`` processes;
   the whole process's wall time as a ratio to a bare ``python -c "import onnxruntime"`` timed in the
   same run (so that the figure travels between machines), and whether torch was imported (the onnx
   engine must not import it).
2. **End to end on a 4 s 1280x720 30 fps clip** with a face and a voice (generated with
   ``avemo.media.synth.write_clip``): ``predictor.predict(path)`` after the model is loaded and one
   warm-up call, median of ``--repeats`` calls: wall time, CPU time of the process, real-time
   factor (wall / 4 s); and each expert alone (audio: decode + Whisper + head; video: decode +
   tracking + fer) to show what the overlap of the two threads gains. Torch and ONNX engines.
3. **Bounded memory**: videos of each of ``--long-minutes`` (320x240, 15 fps, voice; generated) and
   WAV files (48 kHz stereo, voice) of each of ``--audio-minutes``, each predicted in a fresh process
   (torch engine, ``--threads`` torch threads): wall time and peak resident memory (``VmHWM``), and
   the peak again with ``AVEMO_MMAP_THRESHOLD=0`` (glibc's dynamic mmap threshold, as avemo ran before
   :mod:`avemo.memory`). With streaming decoding, per-chunk encoding and the fixed threshold, the
   peak must not grow with the length.

    python benchmarks/predict_speed.py [--repeats 5] [--long-minutes 1,10] [--audio-minutes 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import assemble, heap_mb, load, machine, peak_rss_mb, versions  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
CLIP_SECONDS = 4.0


# ----------------------------------------------------------------------------- child processes
def child_load(engine: str, onnx_dir: str) -> None:
    t = time.perf_counter()
    from avemo import Predictor

    Predictor.default(engine=engine, onnx_dir=onnx_dir or None)
    print(json.dumps({"load_s": time.perf_counter() - t, "torch": "torch" in sys.modules,
                      "mediapipe": "mediapipe" in sys.modules}))


def child_long(path: str, threads: str = "0", modalities: str = "audio,video") -> None:
    if int(threads) > 0:
        import torch

        torch.set_num_threads(int(threads))
    from avemo import Predictor

    p = Predictor.default()
    base = peak_rss_mb()
    t = time.perf_counter()
    r = p.predict(path, modalities=modalities)
    wall = time.perf_counter() - t
    heap = heap_mb()
    print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_rss_mb(), "after_load_rss_mb": base,
                      "heap_free_mb": None if heap is None else heap[1], "windows": len(r.timeline),
                      "json_mb": len(json.dumps(r.to_dict())) / 2**20, "duration": r.duration,
                      "face_coverage": r.face_coverage}))


def run_child(*args: str, env: dict[str, str] | None = None) -> dict:
    """A fresh process running ``child_*`` (``env``: added to its environment): its JSON line, and its
    wall time from start to exit."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed: {proc.stderr[-2000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": wall}


def bare_onnxruntime(repeats: int) -> float:
    """Median wall time of ``python -c "import onnxruntime"``: the yardstick of the load figures."""
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import onnxruntime"], check=True)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


# ----------------------------------------------------------------------------- measurements
def timed(fn, repeats: int) -> tuple[float, float, object]:
    """(median wall s, median process CPU s, last result) after one warm-up call."""
    result = fn()
    walls, cpus = [], []
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--long-minutes", type=_minutes, default=[1.0, 10.0],
                        help="comma-separated lengths of the generated videos of the memory runs; 0 skips them")
    parser.add_argument("--audio-minutes", type=_minutes, default=[],
                        help="comma-separated lengths of generated 48 kHz stereo WAV files (audio only)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of the memory runs (0: torch's default)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "predict.md")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        {"load": child_load, "long": child_long}[args.child[0]](*args.child[1:])
        return

    from avemo import Predictor
    from avemo.inference.windows import WindowGrid
    from avemo.media.synth import write_clip

    work = Path(args.workdir or tempfile.mkdtemp(prefix="avemo-predict-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load_start = load()
    onnx_dir = work / "onnx"
    clip = work / "synth_720p_4s.mp4"
    if not clip.exists():
        write_clip(clip, duration=CLIP_SECONDS, size=(1280, 720), fps=30, face=True, audio="voice")

    predictors = {"torch": Predictor.default(), "onnx": Predictor.default(engine="onnx", onnx_dir=onnx_dir)}

    loads = {}
    bare = bare_onnxruntime(args.repeats)
    for engine in ("torch", "onnx"):
        runs = [run_child("load", engine, str(onnx_dir) if engine == "onnx" else "") for _ in range(args.repeats)]
        values = [r["load_s"] for r in runs]
        process = statistics.median(r["process_s"] for r in runs)
        loads[engine] = (statistics.median(values), min(values), process, any(r["torch"] for r in runs),
                         any(r["mediapipe"] for r in runs))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "avemo.cli", "--version"], capture_output=True, check=True)
    cli_start = time.perf_counter() - t

    rows = []
    for engine, p in predictors.items():
        wall, cpu, r = timed(lambda p=p: p.predict(clip), args.repeats)
        backend = p._backend
        a_wall, a_cpu, _ = timed(lambda b=backend: b.audio.analyse(clip, WindowGrid()), args.repeats)
        v_wall, v_cpu, v = timed(lambda b=backend: b.video.analyse(clip), args.repeats)
        rows.append((engine, wall, cpu, a_wall, v_wall, r, v))
        print(f"{engine}: predict {wall:.3f} s (cpu {cpu:.3f}), audio {a_wall:.3f}, video {v_wall:.3f}", flush=True)

    memory = long_runs(work, args.long_minutes, args.audio_minutes, args.threads)
    lines = _markdown(args, predictors, loads, bare, cli_start, rows, memory, load_start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    assemble()  # docs/benchmarks.md
    print(f"wrote {args.out}")


def _minutes(text: str) -> list[float]:
    """``"1,10,30"`` -> [1.0, 10.0, 30.0]; ``"0"`` or ``""`` -> none."""
    return [m for m in (float(x) for x in text.split(",") if x.strip()) if m > 0]


def long_input(work: Path, minutes: float, audio_only: bool) -> Path:
    """A generated long input (made once in ``work``): 320x240 15 fps video with a face and a voice,
    or a 48 kHz stereo WAV of the voice (decoded, downmixed and resampled to 16 kHz by the predictor)."""
    from avemo.media.synth import write_clip

    if audio_only:
        path = work / f"long_{minutes:g}min_48k_stereo.wav"
        spec = {"sample_rate": 48000, "channels": 2}
    else:
        path = work / f"long_{minutes:g}min.mp4"
        spec = {"size": (320, 240), "fps": 15, "face": True}
    if not path.exists():
        write_clip(path, duration=60 * minutes, audio="voice", **spec)
    return path


def long_runs(work: Path, video_minutes: list[float], audio_minutes: list[float], threads: int) -> list[dict]:
    """The rows of the memory table: each long input with both experts, and with the dynamic mmap
    threshold (``dynamic``: its peak MB); the shortest video also with each expert alone."""
    rows = []
    for kind, lengths in (("video", video_minutes), ("WAV 48 kHz stereo", audio_minutes)):
        for minutes in lengths:
            path = str(long_input(work, minutes, audio_only=kind != "video"))
            parts = [("audio,video", kind)]
            if kind == "video" and minutes == min(lengths):  # what the peak is made of: each expert alone
                parts += [("audio", "video, audio expert only"), ("video", "video, video expert only")]
            for modalities, label in parts:
                row = {"input": label, "minutes": minutes, **run_child("long", path, str(threads), modalities)}
                if modalities == "audio,video":
                    env = {"AVEMO_MMAP_THRESHOLD": "0"}
                    row["dynamic"] = run_child("long", path, str(threads), modalities, env=env)["peak_rss_mb"]
                rows.append(row)
                print(row, flush=True)
    return rows


def _memory_lines(rows: list[dict], threads: int) -> list[str]:
    """The long-input table of the report."""
    torch_threads = f"{threads} torch thread{'s' if threads > 1 else ''}" if threads > 0 else "torch's default threads"
    return [
        "Long inputs (video: 320x240, 15 fps, a face and a voice; WAV: 48 kHz stereo voice; generated), each "
        f"predicted in a fresh process with the torch engine and {torch_threads}. Peak RSS is the process's "
        "`VmHWM`; the last column runs the same file again with `AVEMO_MMAP_THRESHOLD=0`, glibc's dynamic mmap "
        "threshold, which is how avemo ran before `avemo.memory` fixed it (see that module). Free heap: glibc's "
        "free heap bytes after the prediction (`mallinfo2`), what fragmentation holds; result JSON: the size of "
        "the prediction's JSON, which grows with the timeline:",
        "",
        "| input | length | wall s | real-time factor | windows | face coverage | RSS after load MB | free heap MB "
        "| result JSON MB | peak RSS MB | peak RSS MB, dynamic threshold |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {r['input']} | {r['minutes']:g} min | {r['wall_s']:.1f} | {r['wall_s'] / (60 * r['minutes']):.3f} | "
          f"{r['windows']} | {_optional(r['face_coverage'], '.3f')} | {r['after_load_rss_mb']:.0f} | "
          f"{_optional(r['heap_free_mb'], '.0f')} | {r['json_mb']:.2f} | {r['peak_rss_mb']:.0f} | "
          f"{_optional(r.get('dynamic'), '.0f')} |" for r in rows],
        "",
    ]


def _optional(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _markdown(args, predictors, loads, bare: float, cli_start: float, rows, memory, load_start) -> list[str]:
    """The report's lines (``bare``: seconds of ``python -c "import onnxruntime"``, the load's yardstick)."""
    lines: list[str] = []
    lines += [
        "## Prediction: model load, end-to-end speed, memory",
        "",
        f"Generated by `benchmarks/predict_speed.py` on {time.strftime('%Y-%m-%d')}.",
        "",
        f"- Command: `{' '.join(['python benchmarks/predict_speed.py', *sys.argv[1:]])}`",
        f"- Machine: {machine()}",
        f"- Load average (1/5/15 min) at start: {load_start}; at end: {load()} (other jobs shared the cores)",
        f"- Packages: {versions('onnxruntime', 'av', 'mediapipe')}",
        f"- Model: {_model_line(predictors['torch'].model_info)}",
        "",
        "Model load in a fresh process (`from avemo import Predictor; Predictor.default(engine=...)`, imports "
        f"included), median (best) of {args.repeats} processes; the whole process (interpreter start to exit) as a "
        f"ratio to `python -c \"import onnxruntime\"` timed in the same run ({bare:.2f} s), which carries the "
        "figure across machines; `avemo --version` start-up for comparison:",
        "",
        "| engine | load s | best s | process s | ratio to importing onnxruntime | torch imported | mediapipe imported |",
        "|---|---:|---:|---:|---:|---|---|",
        *[f"| {e} | {m:.2f} | {b:.2f} | {p:.2f} | {p / bare:.1f} | {'yes' if t else 'no'} | {'yes' if mp else 'no'} |"
          for e, (m, b, p, t, mp) in loads.items()],
        f"| (`avemo --version`: interpreter + CLI imports) | {cli_start:.2f} | | | | | |",
        "",
        f"End to end on a 4 s 1280x720 30 fps clip with a face and a voice (decode, face tracking at "
        f"{predictors['torch']._backend.video.config.fps:g} analysis frames/s, fer, Whisper-base, head, fusion, "
        f"{len(rows[0][5].timeline)}-window timeline), after loading and one warm-up call, median of {args.repeats}; "
        "the experts alone show what running them in two threads gains:",
        "",
        "| engine | wall s | real-time factor | process CPU s | audio expert alone s | video expert alone s |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {e} | {w:.3f} | {w / CLIP_SECONDS:.3f} | {c:.3f} | {a:.3f} | {v:.3f} |" for e, w, c, a, v, _, _ in rows],
        "",
    ]
    if memory:
        lines += _memory_lines(memory, args.threads)
    return lines


def _model_line(info: dict) -> str:
    """The measured bundle: name, version, experts and the gates that run on every file."""
    crowd = f"crowd detector at {info['crowd_threshold']:g}" if "crowd_threshold" in info else "no crowd detector"
    return (f"{info['name']} v{info['version']} (audio {info['audio']}, video {info['video']}; Silero VAD, speech "
            f"share gate {info['abstention']['speech_share']:g}; {crowd})")


if __name__ == "__main__":
    main()
