"""The still-picture rule of ``avemo predict`` on stills and on talking faces, small ones included.

A video whose face is one still picture (a podcast's cover image) gets no video vote: the video
expert compares the region of the first face it tracked, enlarged and fixed in place, with that
first frame's in every later distinct frame (``FerVideoExpert.analyse``; ``avemo.features.face.still``).
This measures the largest share of that region that changed (``VideoExpertOutput.changed``), and
for comparison the share of a whole-frame thumbnail about 160 pixels wide (the rule before, which
classed a talking face 1/20 of a wide shot's height as still), both at 24 grey levels, on:

* stills: a frame of the RAVDESS clip held for 3 s (25 fps), x264 with a keyframe every 8 frames
  (preset medium) at CRF 23 and 35, at full size and pasted into a 1920x1080 scene at 1/10, 1/20 and
  1/25 of its height; an audiogram (the frame beside a moving waveform bar);
* talking faces: the 7 real clips (the RAVDESS MP4 and six CREMA-D FLVs), and the RAVDESS clip's
  frames pasted into the scene (its face 1/10, 1/15, 1/20, 1/25 of the height; 8 fps, CRF 23).

    python benchmarks/still_faces.py [--shared-data ../shared/data] [--workdir /tmp/still_faces]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from report import header, load, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FACE = 200.0  # the RAVDESS clip's face height in pixels, as benchmarks/small_faces.py pastes it
FRACTIONS = (1 / 10, 1 / 15, 1 / 20, 1 / 25)


def whole_frame_share(path: Path) -> float:
    """The largest share of a thumbnail about 160 pixels wide (the rule before) that changed by more than
    24 grey levels from the first frame's, over the distinct frames at 8 per second."""
    from avemo.media import iter_frames

    first, largest, previous = None, 0.0, None
    for _, image in iter_frames(path, fps=8.0):
        if image is previous:
            continue
        previous = image
        step = max(1, image.shape[1] // 160)
        thumb = image[::step, ::step].astype(np.int16).mean(axis=2)
        if first is None:
            first = thumb
        else:
            largest = max(largest, float(np.mean(np.abs(thumb - first) > 24)))
    return largest


def audiogram(image: np.ndarray, n: int) -> list[np.ndarray]:
    """``image`` on the left of a 1280x720 dark canvas, a waveform's bars moving on its right."""
    import cv2

    h = 720
    small = cv2.resize(image, (round(image.shape[1] * h / 2 / image.shape[0]), h // 2), interpolation=cv2.INTER_AREA)
    frames = []
    for k in range(n):
        canvas = np.full((h, 1280, 3), 30, dtype=np.uint8)
        canvas[180 : 180 + small.shape[0], 40 : 40 + small.shape[1]] = small
        for j in range(40):
            bar = int(120 * abs(np.sin(0.7 * j + 0.9 * k)))
            canvas[360 - bar : 360 + bar, 700 + 13 * j : 708 + 13 * j] = (230, 200, 60)
        frames.append(canvas)
    return frames


def files(shared: Path, work: Path) -> list[tuple[str, str, Path]]:
    """(kind, name, path) of every file measured, written into ``work`` where generated."""
    from avemo.media import iter_frames
    from avemo.media.synth import backdrop, wide_shot, write_frames

    clip = shared / "ravdess" / "videos" / "01-01-07-02-02-01-01.mp4"
    image = next(image for t, image in iter_frames(clip, fps=8.0) if t >= 1.0)
    scene = backdrop((1920, 1080), "gradient")
    out = []
    for crf in (23, 35):
        for fraction in (None, 1 / 10, 1 / 20, 1 / 25):
            frame = image if fraction is None else wide_shot(image, FACE, fraction, scene)[0]
            name = "full size" if fraction is None else f"1/{round(1 / fraction)} of the height"
            path = write_frames(work / f"still_{crf}_{len(out)}.mp4", [frame] * 75, fps=25, preset="medium",
                                crf=crf, keyframes=8)
            out.append(("still", f"RAVDESS frame, {name}, CRF {crf}", path))
    out.append(("still", "audiogram: the frame beside a moving waveform, CRF 23",
                write_frames(work / "audiogram.mp4", audiogram(image, 75), fps=25, preset="medium", crf=23, keyframes=8)))
    out += [("talking", f"real clip {c.name}", c) for c in [clip, *sorted((shared / "crema_d" / "VideoFlash").glob("*.flv"))]]
    frames = [image for _, image in iter_frames(clip, fps=8.0)]
    for fraction in FRACTIONS:
        wide = [wide_shot(frame, FACE, fraction, scene)[0] for frame in frames]
        out.append(("talking", f"RAVDESS clip, face 1/{round(1 / fraction)} of the height",
                    write_frames(work / f"wide_{round(1 / fraction)}.mp4", wide, fps=8, crf=23)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--workdir", type=Path, default=None, help="where the generated videos go (default: a temp folder)")
    args = parser.parse_args()
    from avemo.features.face.still import StillRule
    from avemo.inference.video import FerVideoExpert

    rule = StillRule()
    expert = FerVideoExpert()
    lines = header("The still-picture rule: stills and talking faces", ("opencv-python-headless", "av", "mediapipe"))
    lines += ["Largest share changed by more than 24 grey levels from the first frame, over a file's distinct "
              f"frames at 8 per second: of the first tracked face's region (its box {rule.box} times as wide and high, "
              f"grey, shrunk to {rule.width} pixels wide; the rule), and of a whole-frame thumbnail about "
              "160 pixels wide (the rule before, still at <= 0.002). A file is a still picture at <= "
              f"{rule.share} (`avemo.features.face.still.StillRule`).", "",
              "| kind | file | frames with a face | face region | whole frame | still |", "|---|---|---:|---:|---:|---|"]
    shares: dict[str, list[float]] = {"still": [], "talking": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for kind, name, path in files(args.shared_data, work):
            out = expert.analyse(path)
            shares[kind].append(np.nan if out.changed is None else out.changed)
            region = "-" if out.changed is None else f"{out.changed:.4f}"
            lines.append(f"| {kind} | {name} | {len(out.times)}/{out.n_frames} | {region} | "
                         f"{whole_frame_share(path):.4f} | {'yes' if out.still else 'no'} |")
            print(lines[-1], flush=True)
    still, talking = max(shares["still"]), min(shares["talking"])
    lines += ["", f"Face region: the stills' largest {still:.4f}, the talking faces' smallest {talking:.4f}; the "
              f"threshold {rule.share} is {rule.share / max(still, 1e-9):.1f} times the one and "
              f"1/{talking / rule.share:.1f} of the other. The whole frame cannot separate them: a talking "
              "face 1/20-1/25 of the height changes less of it than a still re-encoded at CRF 35.",
              "", f"- Load average at end: {load()}"]
    print(f"wrote {write_section('still_faces', lines)}")


if __name__ == "__main__":
    main()
