"""Small faces in wide shots: the face pipeline with and without MediaPipe's tiled search.

What it measures, on this machine:

1. Wide shots made from the real clips (the RAVDESS clip and the six CREMA-D clips): every frame
   scaled so that the face is 1/10, 1/15, 1/20 or 1/25 of the height of a 1920x1080 face-free scene
   (``avemo.media.synth.backdrop``: a colour gradient with blotches for the odd clips, blurred blocks
   for the even ones; a fixed, seeded place per clip) and pasted into it
   (``avemo.media.synth.wide_shot``), encoded as H.264 (libx264 ``veryfast``, CRF 20) at the
   clip's frame rate. ``face_crops`` at 8 frames/s (the rate, tracker and detector settings of
   ``avemo predict``'s video expert) runs on each with ``tiles=False`` (the old behaviour) and
   ``tiles=True`` (the default): the share of sampled frames where a face was found, and where it
   was found on the face (its centre inside the face box of the close-up's whole-frame detection,
   mapped into the wide shot), and the time per sampled frame (1080p decoding included).
   The video expert of ``avemo predict`` (``FerVideoExpert.analyse``) on the same wide shots, tiles off
   and on: the analysed frames where it had the speaker's face.
2. The original clips, every frame and 8 frames/s, with and without tiles, ``--repeats`` runs
   interleaved (median): time per frame, and whether any box, score or mask differs.
3. False positives: face-free 1920x1080 scenes (``--scenes`` seeds each of gradient, noise and
   blocks, and a blurred enlarged texture cut from beside the face of each real clip): scenes where
   ``detect`` finds a face with and without tiles, and the tiles' candidates before the short-range
   confirmation; and a 30 s face-free video through ``face_crops`` at 8 frames/s (what the tiled
   searches, backed off as the tracker's rule 6 says, cost a video without a face).

The result is a Markdown section written to ``docs/benchmarks/small_faces.md``.

    python benchmarks/small_faces.py [--repeats 3] [--scenes 20] [--workdir /tmp/small-faces]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import header, load, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FRACTIONS = (10, 15, 20, 25)
WIDE = (1920, 1080)
FPS = 8.0


def clips() -> list[Path]:
    return [DATA / "ravdess" / "videos" / "01-01-07-02-02-01-01.mp4", *sorted((DATA / "crema_d" / "VideoFlash").glob("*.flv"))]


def close_ups(path: Path):
    """Every frame of a clip, its rate, and the face box of the whole-frame search in each (NaN: none)."""
    from avemo.features.face import get_detector
    from avemo.media import iter_frames, probe

    detector = get_detector("mediapipe", tiles=False)
    frames, boxes = [], []
    for _, image in iter_frames(path):
        frames.append(image)
        found = detector.detect(image)
        boxes.append(max(found, key=lambda d: d.area).box if found else np.full(4, np.nan))
    detector.close()
    return frames, float(probe(path).video.fps), np.array(boxes)


def make_wide_clips(work: Path) -> list[dict]:
    """The wide shots of every clip at every fraction: ``{clip, fraction, path, fps, truth}``."""
    from avemo.media.synth import backdrop, wide_shot, write_frames

    made = []
    for k, clip in enumerate(clips()):
        frames, fps, boxes = close_ups(clip)
        face_h = float(np.nanmedian(boxes[:, 3] - boxes[:, 1]))
        kind = "gradient" if k % 2 == 0 else "blocks"
        scene = backdrop(WIDE, kind, seed=100 + k)
        rng = np.random.default_rng(k)
        for fraction in FRACTIONS:
            scale = WIDE[1] / fraction / face_h
            fw, fh = frames[0].shape[1] * scale, frames[0].shape[0] * scale
            at = (rng.uniform(0, 1 - fw / WIDE[0]), rng.uniform(0, 1 - fh / WIDE[1]))
            path = work / f"{clip.stem}_1-{fraction}.mp4"
            shots = [wide_shot(img, face_h, 1 / fraction, scene, at=at) for img in frames]
            if not path.exists():
                write_frames(path, [s[0] for s in shots], fps, preset="veryfast", crf=20)
            origin = shots[0][2]
            truth = boxes * scale + np.tile(origin, 2)
            made.append({"clip": clip.name, "fraction": fraction, "path": path, "fps": fps, "truth": truth,
                         "scene": kind})
    return made


TILED_SEARCHES = [0]  # tiled searches run so far (counted by a wrapper installed in main())


def count_tiled_searches() -> None:
    from avemo.features.face.detect import MediaPipeDetector

    original = MediaPipeDetector.detect_tiles

    def counted(self, image):
        TILED_SEARCHES[0] += 1
        return original(self, image)

    MediaPipeDetector.detect_tiles = counted


def run_crops(path: Path, tiles: bool, fps: float | None = FPS) -> tuple[float, dict]:
    """``face_crops`` on ``path``: wall seconds and its features (no face at all: ``mask`` all False),
    with ``"tiled"``: the tiled searches it ran."""
    from avemo.errors import FeatureError
    from avemo.features import get_extractor
    from avemo.media import iter_frames

    ex = get_extractor("face_crops", n_frames=None, fps=fps, tiles=tiles)
    before = TILED_SEARCHES[0]
    t = time.perf_counter()
    try:
        feats = dict(ex.extract(path))
    except FeatureError:
        wall = time.perf_counter() - t
        times = np.array([t for t, _ in iter_frames(path, fps=fps, size=(16, 16))])
        feats = {"times": times, "mask": np.zeros(len(times), bool), "boxes": np.full((len(times), 4), np.nan)}
    else:
        wall = time.perf_counter() - t
    feats["tiled"] = TILED_SEARCHES[0] - before
    return wall, feats


def on_face(feats: dict, truth: np.ndarray, fps: float) -> tuple[int, int, int]:
    """(frames whose close-up had a face, of those with a face found, of those found on that face)."""
    idx = np.minimum(np.floor(feats["times"] * fps + 1e-6).astype(int), len(truth) - 1)
    want = np.isfinite(truth[idx, 0])
    boxes = feats["boxes"]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    t = truth[idx]
    inside = (cx > t[:, 0]) & (cx < t[:, 2]) & (cy > t[:, 1]) & (cy < t[:, 3])
    return int(want.sum()), int((feats["mask"] & want).sum()), int((feats["mask"] & want & inside).sum())


def wide_rows(made: list[dict]) -> list[dict]:
    rows = []
    for item in made:
        row = {k: item[k] for k in ("clip", "fraction", "scene")}
        for tiles in (False, True):
            wall, feats = run_crops(item["path"], tiles)
            n, found, right = on_face(feats, item["truth"], item["fps"])
            row[tiles] = {"frames": len(feats["times"]), "wall": wall, "n": n, "found": found, "right": right,
                          "any": int(feats["mask"].sum()), "tiled": feats["tiled"]}
        rows.append(row)
        print(row["clip"], row["fraction"], {k: row[k] for k in (False, True)}, flush=True)
    return rows


def expert_rows(made: list[dict]) -> list[tuple]:
    """The video expert of ``avemo predict`` (``FerVideoExpert.analyse``, torch engine) on the wide shots:
    (fraction, frames analysed, with a face tiles off, with a face tiles on)."""
    from avemo.inference.video import FerVideoExpert, VideoExpertConfig

    experts = {tiles: FerVideoExpert(VideoExpertConfig(tiles=tiles)) for tiles in (False, True)}
    rows = []
    for fraction in FRACTIONS:
        outs = {tiles: [experts[tiles].analyse(m["path"]) for m in made if m["fraction"] == fraction]
                for tiles in (False, True)}
        rows.append((fraction, sum(o.n_frames for o in outs[True]),
                     *(sum(len(o.times) for o in outs[tiles]) for tiles in (False, True))))
        print(rows[-1], flush=True)
    return rows


def original_rows(repeats: int) -> list[dict]:
    """Every original clip, every frame and 8 frames/s, tiles off and on interleaved."""
    rows = []
    for clip in clips():
        for fps in (None, FPS):
            walls: dict[bool, list[float]] = {False: [], True: []}
            feats = {}
            run_crops(clip, True, fps)  # warm-up
            for _ in range(repeats):
                for tiles in (False, True):
                    wall, feats[tiles] = run_crops(clip, tiles, fps)
                    walls[tiles].append(wall)
            same = all(np.array_equal(feats[False][k], feats[True][k], equal_nan=True)
                       for k in ("boxes", "mask", "scores", "eyes"))
            rows.append({"clip": clip.name, "fps": fps, "frames": len(feats[True]["times"]), "same": same,
                         "tiled": feats[True]["tiled"],
                         "coverage": float(feats[True]["mask"].mean()),
                         **{tiles: statistics.median(w) for tiles, w in walls.items()}})
            print(rows[-1], flush=True)
    return rows


def texture_scenes() -> list[tuple[str, np.ndarray]]:
    """Blurred, enlarged textures cut from beside the face of each real clip (no face in them)."""
    import cv2

    from avemo.features.face import get_detector
    from avemo.media import sample_frames

    detector = get_detector("mediapipe", tiles=False)
    out = []
    for clip in clips():
        image = sample_frames(clip, 1).images[0]
        box = detector.detect(image)[0].box
        left, right = image[:, : max(int(box[0]) - 10, 1)], image[:, int(box[2]) + 10 :]
        part = left if left.shape[1] >= right.shape[1] else right
        out.append((clip.name, cv2.GaussianBlur(cv2.resize(part, WIDE), (0, 0), 3)))
    detector.close()
    return out


def mean_ms(fn, images) -> float:
    """Mean milliseconds of ``fn(image)`` over ``images`` (after one warm-up call)."""
    fn(images[0])
    t = time.perf_counter()
    for image in images:
        fn(image)
    return (time.perf_counter() - t) / len(images) * 1000


def false_positive_rows(scenes: int, work: Path, wide_clip: Path, repeats: int) -> tuple[list[tuple], dict]:
    """Scenes with a face found, by kind: (kind, scenes, whole frame, tile candidates, tiles confirmed);
    and the time of a tiled search, and of a face-free video through ``face_crops``."""
    from avemo.features.face import get_detector
    from avemo.media import iter_frames
    from avemo.media.synth import backdrop, write_frames

    wide_frames = [image for _, image in iter_frames(wide_clip, fps=2.5)]

    plain, tiled = get_detector("mediapipe", tiles=False), get_detector("mediapipe")
    groups = {kind: [backdrop(WIDE, kind, seed=s) for s in range(scenes)] for kind in ("gradient", "noise", "blocks")}
    groups["blurred texture from the clips"] = [img for _, img in texture_scenes()]
    rows = []
    for kind, images in groups.items():
        whole = sum(bool(plain.detect(img)) for img in images)
        candidates = sum(bool(tiled.tile_candidates(img)) for img in images)
        confirmed = sum(bool(tiled.detect(img)) for img in images)
        rows.append((kind, len(images), whole, candidates, confirmed))
        print(rows[-1], flush=True)
    tile_ms = {"a face-free scene (gradient)": mean_ms(tiled.detect_tiles, groups["gradient"]),
               "a wide shot, face 1/20 (RAVDESS)": mean_ms(tiled.detect_tiles, wide_frames),
               "whole frame, the same wide shot": mean_ms(lambda im: plain.detect(im), wide_frames)}
    for d in (plain, tiled):
        d.close()
    t = time.perf_counter()
    get_detector("mediapipe").close()
    startup_ms = (time.perf_counter() - t) * 1000
    video = work / "no_face_30s.mp4"
    if not video.exists():
        scene = backdrop(WIDE, "blocks", seed=7)
        write_frames(video, [np.roll(scene, 3 * i, axis=1) for i in range(750)], 25.0, preset="veryfast", crf=20)
    no_face: dict[bool, tuple[float, dict]] = {}
    walls: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for tiles in (False, True):
            wall, feats = run_crops(video, tiles)
            walls[tiles].append(wall)
            no_face[tiles] = (statistics.median(walls[tiles]), feats)
    return rows, {"tile_ms": tile_ms, "no_face": no_face, "startup_ms": startup_ms}


def markdown(wide: list[dict], expert: list[tuple], orig: list[dict], fp: list[tuple], extra: dict, args,
             start_load: str) -> list[str]:
    lines = header("Small faces in wide shots: the tiled search", ("opencv-python-headless", "av", "mediapipe"))
    lines = [f"- Load average (1/5/15 min) at start: {start_load}; at end: {load()}" if line.startswith("- Load average")
             else line for line in lines]
    lines += [
        "Wide shots made from the 7 real clips (1 RAVDESS, 6 CREMA-D): each frame scaled so that the face is",
        "1/N of the height of a face-free 1920x1080 scene, pasted into it and encoded as H.264; `face_crops`",
        f"at {FPS:g} frames/s (the video expert's rate and settings). *found*: sampled frames with a face, of",
        "those whose close-up has one; *on the face*: its centre inside the close-up's face box mapped into",
        "the wide shot; ms per sampled frame include decoding every 1080p frame. Before = `tiles=False`",
        "(the old behaviour), after = `tiles=True` (the default).",
        "",
        "| face height | frames | found before | found after | on the face after | ms/frame before | ms/frame after "
        "| tiled searches |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fraction in FRACTIONS:
        rs = [r for r in wide if r["fraction"] == fraction]
        n = sum(r[True]["n"] for r in rs)
        frames = {t: sum(r[t]["frames"] for r in rs) for t in (False, True)}
        found = {t: sum(r[t]["found"] for r in rs) for t in (False, True)}
        right = sum(r[True]["right"] for r in rs)
        ms = {t: 1000 * sum(r[t]["wall"] for r in rs) / frames[t] for t in (False, True)}
        lines.append(f"| 1/{fraction} | {n} | {found[False] / n:.1%} | {found[True] / n:.1%} | {right / n:.1%} "
                     f"| {ms[False]:.1f} | {ms[True]:.1f} | {sum(r[True]['tiled'] for r in rs)} |")
    lines += ["", "Per clip (found before -> after, of the frames whose close-up has a face):", "",
              "| clip | scene | " + " | ".join(f"1/{f}" for f in FRACTIONS) + " |",
              "|---|---|" + "---:|" * len(FRACTIONS)]
    for clip in dict.fromkeys(r["clip"] for r in wide):
        rs = {r["fraction"]: r for r in wide if r["clip"] == clip}
        cells = [f"{rs[f][False]['found']}->{rs[f][True]['found']}/{rs[f][True]['n']}" for f in FRACTIONS]
        lines.append(f"| {clip} | {rs[FRACTIONS[0]]['scene']} | " + " | ".join(cells) + " |")
    lines += ["", "The video expert of `avemo predict` itself (`FerVideoExpert.analyse`, 8 frames/s, the bundle's settings)",
              "on the same wide shots, all 7 clips: analysed frames with the speaker's face, tiles off -> on:", "",
              "| face height | frames analysed | with a face, tiles off | with a face, tiles on |", "|---|---:|---:|---:|"]
    lines += [f"| 1/{f} | {n} | {off} ({off / n:.1%}) | {on} ({on / n:.1%}) |" for f, n, off, on in expert]
    return lines + markdown_tail(orig, fp, extra, args)


def markdown_tail(orig: list[dict], fp: list[tuple], extra: dict, args) -> list[str]:
    lines = ["", f"The original clips (median of {args.repeats} runs each, tiles off and on interleaved):", "",
             "| clip | frames | sampling | coverage | ms/frame tiles off | ms/frame tiles on | change | tiled searches | outputs identical |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in orig:
        off, on = 1000 * r[False] / r["frames"], 1000 * r[True] / r["frames"]
        sampling = "every frame" if r["fps"] is None else f"{r['fps']:g} frames/s"
        lines.append(f"| {r['clip']} | {r['frames']} | {sampling} | {r['coverage']:.3f} | {off:.2f} | {on:.2f} "
                     f"| {on / off - 1:+.1%} | {r['tiled']} | {'yes' if r['same'] else '**no**'} |")
    total = {t: sum(r[t] for r in orig) for t in (False, True)}
    lines += ["", f"All original runs together: {total[True] / total[False] - 1:+.1%} wall time with tiles on "
              "(the same code runs: the whole-frame search finds the face, so no tiled search does; the",
              "difference is the shared machine's noise). Each run includes the detector's start-up (two",
              f"MediaPipe graphs, {extra['startup_ms']:.0f} ms).", "",
              f"False positives: face-free 1920x1080 scenes ({args.scenes} seeds of each generated kind; one",
              "texture per clip). Scenes where a face is found:", "",
              "| scene | scenes | whole frame (tiles off) | tile candidates, unconfirmed | tiles on (confirmed) |",
              "|---|---:|---:|---:|---:|"]
    lines += [f"| {k} | {n} | {a} | {b} | {c} |" for k, n, a, b, c in fp]
    nf = extra["no_face"]
    ms = {t: 1000 * nf[t][0] / len(nf[t][1]["times"]) for t in (False, True)}
    lines += ["", "One search of a 1080p frame (15 tiles, 540 px, each resized to 192x192), mean ms: "
              + "; ".join(f"tiled search, {k}: {v:.0f}" if not k.startswith("whole") else f"{k}: {v:.1f}"
                          for k, v in extra["tile_ms"].items()) + ".",
              f"A 30 s face-free 1080p video (a blocks scene panning) at {FPS:g} frames/s, median of {args.repeats} runs: "
              f"{ms[False]:.1f} ms/frame "
              f"tiles off, {ms[True]:.1f} ms/frame tiles on ({nf[True][1]['tiled']} tiled searches: the wait doubles after each "
              f"empty one, and restarts at 1 s after a frame where the whole-frame search found a face); faces found: "
              f"{int(nf[False][1]['mask'].sum())} and {int(nf[True][1]['mask'].sum())} of {len(nf[True][1]['times'])} frames.", "",
              "The tracker takes no tiled-search face under half the height of the face it followed in the last 3 s",
              "(rule 6 of `avemo.features.face.track`: `small_face_ratio`, `small_face_after`), so that a close-up",
              "speaker who looks down does not hand the track to a small face in the background. The wide shots above",
              "have their small face from the first frame and the original clips run no tiled search, so it changes",
              "neither.", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=20, help="seeds of each generated face-free scene kind")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="avemo-small-faces-"))
    work.mkdir(parents=True, exist_ok=True)
    start_load = load()
    count_tiled_searches()
    made = make_wide_clips(work)
    wide = wide_rows(made)
    expert = expert_rows(made)
    orig = original_rows(args.repeats)
    wide_clip = next(m["path"] for m in made if m["fraction"] == 20)
    fp, extra = false_positive_rows(args.scenes, work, wide_clip, args.repeats)
    lines = markdown(wide, expert, orig, fp, extra, args, start_load)
    write_section("small_faces", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
