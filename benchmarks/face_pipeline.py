"""Throughput and memory of the face pipeline (decode + detect + track + align + crop), FaceMesh and STIP.

What it measures, on this machine:

1. a generated 10 s 1280x720 30 fps clip with a face (``avemo.media.synth.write_clip``) and the
   real RAVDESS clip (640x480, 29.97 fps): frames per second of
   * decoding alone (PyAV, RGB conversion of every frame),
   * ``face_crops`` on every frame (112x112 RGB, aligned), with the default tracker
     (whole-frame detection every 0.5 s, the face confirmed near its last box in between) and
     with a whole-frame detection on every frame (``full_detect_interval=0``),
   * ``face_landmarks`` on every frame, ``stip`` with its defaults;
2. per-frame MTCNN on the same 720p frames, at full size and downscaled to 640x360 (the size
   our detector sees), when a Python with the ``mtcnn`` package (TensorFlow) is given with
   ``--mtcnn-python``; it cannot live in avemo's environment (TensorFlow), so it runs there;
3. a 10-minute 720p video (the 10 s clip copied 60 times without re-encoding) through
   ``face_crops`` (5 frames/s) and ``face_landmarks`` (5 frames/s), each in a fresh process:
   wall time and peak resident memory (``ru_maxrss``).

Each in-process timing is the median of ``--repeats`` runs after one warm-up run. The result is
a Markdown section written to ``--out`` (default ``docs/benchmarks/face_pipeline.md``).

    python benchmarks/face_pipeline.py [--mtcnn-python /tmp/mtcnn-venv/bin/python] [--long-minutes 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import assemble, load, machine, peak_rss_mb, versions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RAVDESS = REPO.parent / "shared" / "data" / "ravdess" / "videos" / "01-01-07-02-02-01-01.mp4"

MTCNN_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import av, numpy as np, cv2
    from mtcnn import MTCNN
    path, n, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    frames = []
    with av.open(path) as c:
        for f in c.decode(video=0):
            img = f.to_ndarray(format="rgb24")
            if width and img.shape[1] != width:
                img = cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])), interpolation=cv2.INTER_AREA)
            frames.append(img)
            if len(frames) >= n + 3:
                break
    detector = MTCNN()
    for f in frames[:3]:
        detector.detect_faces(f)
    found = 0
    t = time.perf_counter()
    for f in frames[3:]:
        found += bool(detector.detect_faces(f))
    dt = time.perf_counter() - t
    from importlib.metadata import version
    print(json.dumps({"fps": (len(frames) - 3) / dt, "frames": len(frames) - 3, "found": found,
                      "mtcnn": version("mtcnn"), "tensorflow": version("tensorflow-cpu")}))
    """
)








def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeats`` runs after a warm-up; and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def concat_copies(src: Path, dst: Path, copies: int) -> Path:
    """``copies`` back-to-back copies of ``src``'s video stream, remuxed (no re-encoding)."""
    import av

    with av.open(str(src)) as inp:
        packets = [p for p in inp.demux(video=0) if p.dts is not None]
        vin = inp.streams.video[0]
        with av.open(str(dst), "w") as out:
            vout = out.add_stream_from_template(vin)
            span = max(p.pts + (p.duration or 0) for p in packets) - min(p.pts for p in packets)
            for k in range(copies):
                for p in packets:
                    p.stream = vout
                    q = av.Packet(bytes(p))
                    q.stream = vout
                    q.pts, q.dts, q.duration = p.pts + k * span, p.dts + k * span, p.duration
                    q.time_base = p.time_base
                    q.is_keyframe = p.is_keyframe
                    out.mux(q)
    return dst




def child(name: str, path: str, config: str) -> None:
    """Run one extractor on ``path`` and print wall time, peak RSS and what came out (JSON)."""
    import numpy as np

    from avemo.features import get_extractor

    ex = get_extractor(name, json.loads(config))
    t = time.perf_counter()
    feats = ex.extract(path)
    wall = time.perf_counter() - t
    rss_mb = peak_rss_mb()
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_rss_mb": rss_mb,
                "frames": int(len(feats["times"])),
                "coverage": float(feats["coverage"]),
                "output_mb": sum(np.asarray(v).nbytes for v in feats.values()) / 2**20,
            }
        )
    )


def run_child(name: str, path: Path, config: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", name, str(path), json.dumps(config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_mtcnn(python: str, path: Path, n: int, width: int) -> dict | None:
    proc = subprocess.run(
        [python, "-c", MTCNN_SCRIPT, str(path), str(n), str(width)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        print(f"MTCNN run failed: {proc.stderr[-1500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "face_pipeline.md")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mtcnn-python", default=None, help="a Python with the mtcnn package (TensorFlow)")
    parser.add_argument("--mtcnn-frames", type=int, default=30)
    parser.add_argument("--long-minutes", type=float, default=10.0, help="0 skips the long-video run")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--child", nargs=3, metavar=("EXTRACTOR", "PATH", "CONFIG_JSON"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from avemo.media.synth import write_clip

    work = Path(args.workdir or tempfile.mkdtemp(prefix="avemo-face-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load_start = load()
    clip = work / "synth_720p_10s.mp4"
    if not clip.exists():
        write_clip(clip, size=(1280, 720), fps=30, duration=10, audio=None)
    inputs = {"synthetic 1280x720 30 fps, 10 s": clip}
    if RAVDESS.exists():
        inputs["RAVDESS 640x480 29.97 fps, 4 s"] = RAVDESS

    rows = _throughput_rows(inputs, args.repeats)

    mtcnn_rows = []
    if args.mtcnn_python:
        for width, what in ((0, "1280x720 frames as decoded"), (640, "frames downscaled to 640x360")):
            res = run_mtcnn(args.mtcnn_python, clip, args.mtcnn_frames, width)
            if res:
                mtcnn_rows.append((what, res))

    long_rows, long_desc = _long_rows(work, clip, args.long_minutes)

    lines = _markdown(args, rows, mtcnn_rows, long_rows, long_desc, load_start)
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    assemble()  # docs/benchmarks.md
    print(text)


def _throughput_rows(inputs, repeats: int) -> list[tuple]:
    """Frames per second of decoding and of each face extractor on each input."""
    from avemo.features import get_extractor
    from avemo.media import iter_frames, probe

    rows = []
    for label, path in inputs.items():
        n = sum(1 for _ in iter_frames(path))
        dt, _ = timed(lambda p=path: sum(1 for _ in iter_frames(p)), repeats)
        rows.append((label, "decode + RGB conversion only", n / dt, ""))
        for interval, what in (
            (0.5, "default: whole frame every 0.5 s, local confirmation between"),
            (0.0, "whole-frame detection on every frame"),
        ):
            ex = get_extractor("face_crops", n_frames=None, full_detect_interval=interval)
            dt, feats = timed(lambda e=ex, p=path: e.extract(p), repeats)
            rows.append(
                (
                    label,
                    f"face_crops 112x112 RGB aligned, {what}",
                    n / dt,
                    f"coverage {float(feats['coverage']):.3f}",
                )
            )
        ex = get_extractor("face_landmarks", fps=probe(path).video.fps)
        dt, feats = timed(lambda e=ex, p=path: e.extract(p), repeats)
        rows.append(
            (
                label,
                "face_landmarks (tracking + FaceMesh 478 points) every frame",
                len(feats["times"]) / dt,
                f"coverage {float(feats['coverage']):.3f}",
            )
        )
        ex = get_extractor("stip")
        dt, feats = timed(lambda e=ex, p=path: e.extract(p), 1)
        rows.append(
            (
                label,
                "stip defaults (120 px high, 4 scales)",
                int(feats["n_frames"]) / dt,
                f"{len(feats['points'])} points",
            )
        )

    return rows


def _long_rows(work: Path, clip: Path, minutes: float) -> tuple[list[tuple], str]:
    """The face extractors on a long video (the clip remuxed back to back) and on the clip, each in a
    fresh process; ``(rows, description of the long video)``."""
    from avemo.media import probe

    long_desc = ""
    long_rows = []
    if minutes > 0:
        copies = max(1, round(minutes * 60 / 10))
        long_clip = work / f"synth_720p_{copies * 10}s.mp4"
        if not long_clip.exists():
            concat_copies(clip, long_clip, copies)
        info = probe(long_clip)
        for name, config in (
            ("face_crops", {"n_frames": None, "fps": 5.0, "size": [112, 112]}),
            ("face_landmarks", {"fps": 5.0}),
        ):
            for label, path in (("10 s", clip), (f"{copies * 10} s", long_clip)):
                long_rows.append((name, label, config, run_child(name, path, config)))
        long_desc = (
            f"{info.video.width}x{info.video.height}, {info.duration:.0f} s, {info.video.frames} frames"
        )

    return long_rows, long_desc


def _markdown(args, rows, mtcnn_rows, long_rows, long_desc: str, load_start) -> list[str]:
    """The report's lines."""
    lines = [
        "## Face pipeline: throughput and memory",
        "",
        f"Generated by `benchmarks/face_pipeline.py` on {time.strftime('%Y-%m-%d')}.",
        "",
        f"- Command: `python benchmarks/face_pipeline.py {' '.join(sys.argv[1:])}`".rstrip() + "",
        f"- Machine: {machine()}",
        f"- Load average (1/5/15 min) at start: {load_start}; at end: {load()} (other jobs shared the cores)",
        f"- Packages: {versions('scipy', 'opencv-python-headless', 'av', 'mediapipe')}",
        "",
        "Frames per second of the whole step (decode + detect + track + align + crop, or the named",
        f"extractor), median of {args.repeats} runs after a warm-up:",
        "",
        "| input | step | frames/s | note |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {a} | {b} | {c:.1f} | {d} |" for a, b, c, d in rows]
    lines.append("")
    if mtcnn_rows:
        res0 = mtcnn_rows[0][1]
        lines += [
            f"Per-frame MTCNN (`mtcnn` {res0['mtcnn']}, TensorFlow {res0['tensorflow']} CPU, default",
            f"settings, detection only, {res0['frames']} frames of the synthetic 720p clip, in its own virtual environment",
            "made with `python3.11 -m venv /tmp/mtcnn-venv && /tmp/mtcnn-venv/bin/pip install tensorflow-cpu mtcnn av",
            "opencv-python-headless`):",
            "",
            "| input | frames/s | frames with a face |",
            "|---|---:|---:|",
        ]
        lines += [f"| {what} | {r['fps']:.1f} | {r['found']}/{r['frames']} |" for what, r in mtcnn_rows]
        lines.append("")
    else:
        lines += [
            "MTCNN was not measured in this run (no `--mtcnn-python`); the issue quotes about 16 frames/s here.",
            "",
        ]
    if long_rows:
        lines += [
            f"Long video ({long_desc}; the 10 s clip remuxed back to back), each run in a fresh process,",
            "next to the same run on the 10 s clip (peak RSS = VmHWM of that process, imports included):",
            "",
            "| extractor | config | video | frames out | wall s | peak RSS MiB | output MiB | coverage |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {n} | `{json.dumps(c)}` | {v} | {r['frames']} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} "
            f"| {r['output_mb']:.1f} | {r['coverage']:.3f} |"
            for n, v, c, r in long_rows
        ]
        lines += [
            "",
            "Coverage is below 1 on the long video because every 10 s copy starts with the face somewhere",
            "else (a cut): the tracker does not jump to a face elsewhere before `reacquire_after` (0.5 s),",
            "so 2-3 frames per cut at 5 frames/s are marked missing.",
            "",
        ]
    return lines


if __name__ == "__main__":
    main()
