"""Cut IEMOCAP's dialogue videos into one audio-visual file per utterance: :func:`prepare_iemocap`
(``avemo prepare --dataset iemocap --root DIR --out DIR``).

The release has a video per dialogue (``Session{n}/dialog/avi/DivX/<dialog>.avi``, 720x480, both
actors side by side) and a wav per utterance. For every labelled utterance that
:func:`~avemo.datasets.iemocap.read_iemocap` reads, :func:`~avemo.media.cut.cut_clip` writes
``<out>/Session{n}/<dialog>/<utterance>.mkv``: the frames of the utterance's span (the
``[start - end]`` of its EmoEvaluation line), cropped to the speaker's half of the picture
(``side``, below), re-encoded (H.264, or MPEG-4 where FFmpeg lacks libx264), with the utterance's wav
copied in as its audio track (bit-exact). The folder's manifest
(:data:`~avemo.datasets.iemocap.MANIFEST`) lists each file with its span, side and crop;
``read_iemocap(root, media=out)`` (CLI ``--media``) reads it.

``side``: ``"auto"`` (default) takes the LEFT half for the actor whose gender the dialogue name
carries (the one who wore the motion-capture markers: ``Ses01F_*`` -> the female actor) and the
RIGHT half for the other one. That is a convention reported by other IEMOCAP preprocessing code,
not checked here (no IEMOCAP file is in the project): look at a few prepared files before training
on them. ``"left"`` and ``"right"`` take that half for every utterance, ``"full"`` the whole frame.

**Re-runs are cheap.** A file whose manifest entry matches the request (span, side, encoder, source
files) and that is newer than its dialogue video and its wav is kept; the others are cut again.
Files are written under a temporary name and renamed when complete; the manifest is rewritten
(atomically) every :data:`SAVE_EVERY` files and at the end, also when the run fails or is
interrupted (if it cut anything), so a stopped run resumes where it was.

**Failures** are per utterance and do not stop the run: a dialogue without its ``.avi``, a video
that cannot be decoded, a span that ends after the video, an unreadable wav. Each is listed in
:attr:`PrepareReport.failed` with a one-line reason; its stale file, if any, is removed.

Cost: each utterance decodes its span of the dialogue video from the key frame before it and encodes
about 30 frames per second of speech at 360x480; ``workers`` processes cut utterances in parallel.
An order of magnitude, from a one-off timing (not a benchmark script; no IEMOCAP file is in the
project) on a generated 720x480 MPEG-4 dialogue at 29.97 fps (24 utterances of 4.5 s, 2 shared
cores): about 0.8 s per utterance with one worker, 0.4 s with two, about 340 kB per file; for
IEMOCAP's roughly 10,000 labelled utterances, one to two hours. Real DivX files with sparser key
frames decode more per utterance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avemo.datasets.iemocap import MANIFEST, MANIFEST_FORMAT, PROTOCOLS, read_iemocap, read_manifest
from avemo.datasets.records import Clip
from avemo.datasets.scan import Skipped, check_root
from avemo.errors import AvemoError, ConfigError, DatasetError, reason_of
from avemo.media.cut import cut_clip, video_encoder

#: how the speaker's picture is taken from the split-screen frame (see the module doc)
SIDES = ("auto", "left", "right", "full")
#: the region of each side: (left, top, right, bottom) fractions of the frame; None: the whole frame
REGIONS: dict[str, tuple[float, float, float, float] | None] = {
    "left": (0.0, 0.0, 0.5, 1.0), "right": (0.5, 0.0, 1.0, 1.0), "full": None,
}
#: the manifest is saved after every this many files
SAVE_EVERY = 100
#: the suffix of a prepared file (Matroska: H.264 or MPEG-4 video beside PCM audio)
SUFFIX = ".mkv"


def speaker_side(utterance: str, side: str = "auto") -> str:
    """``"left"``, ``"right"`` or ``"full"``: the part of the dialogue video that shows the speaker of
    ``utterance`` (``Ses01F_impro01_M003``); ``"auto"`` follows the convention of the module doc."""
    if side not in SIDES:
        raise ConfigError(f"side {side!r} is not one of {', '.join(SIDES)}")
    if side != "auto":
        return side
    marked, speaking = utterance[5:6], utterance.rsplit("_", 1)[-1][:1]
    if marked not in ("F", "M") or speaking not in ("F", "M"):
        raise DatasetError(f"{utterance!r} is not an IEMOCAP utterance name (Ses01F_impro01_M003)")
    return "left" if speaking == marked else "right"


def prepared_file(clip: Clip) -> Path:
    """Where, relative to the prepared folder, the file of an IEMOCAP ``clip`` goes."""
    return Path(f"Session{clip.fields['session']}") / str(clip.dialogue) / f"{clip.take}{SUFFIX}"


@dataclass
class PrepareReport:
    """What :func:`prepare_iemocap` did: the utterances ``cut`` now, those ``kept`` (up to date), the
    ``failed`` ones with their reasons, and ``warnings`` (a partly damaged video, ...)."""

    out: Path
    cut: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """``12 utterances: 10 cut, 1 up to date, 1 failed; prepared files in DIR``."""
        total = len(self.cut) + len(self.kept) + len(self.failed)
        return (f"{total} utterances: {len(self.cut)} cut, {len(self.kept)} up to date, "
                f"{len(self.failed)} failed; prepared files in {self.out}")


@dataclass(frozen=True)
class _Job:
    """One utterance to cut (picklable, for worker processes)."""

    take: str
    video: str
    audio: str
    start: float
    end: float
    side: str
    codec: str
    file: str  # relative to the output folder

    def entry(self) -> dict[str, Any]:
        return {"file": self.file, "start": self.start, "end": self.end, "side": self.side, "codec": self.codec,
                "video": self.video, "audio": self.audio}


def _run_job(out: str, job: _Job) -> tuple[str, dict[str, Any] | str, list[str]]:
    """Cut one utterance: (take, its manifest entry or the reason it failed, warnings)."""
    warnings: list[str] = []
    try:
        cut = cut_clip(job.video, Path(out) / job.file, start=job.start, end=job.end, audio=job.audio,
                       region=REGIONS[job.side], codec=job.codec,
                       warn=lambda line: warnings.append(f"{job.video}: {line}"))
    except AvemoError as exc:
        return job.take, str(exc), warnings
    except Exception as exc:  # a bug: reported for this utterance, the run goes on
        return job.take, reason_of(exc), warnings
    return job.take, {**job.entry(), "crop": list(cut.crop), "frames": cut.frames}, warnings


def _up_to_date(out: Path, job: _Job, entry: Any) -> bool:
    """Whether the file of ``job`` is there, was cut as asked, and is newer than its sources."""
    if not isinstance(entry, dict) or {k: entry.get(k) for k in job.entry()} != job.entry():
        return False
    try:
        made = (out / job.file).stat().st_mtime_ns
        return made >= max(os.stat(job.video).st_mtime_ns, os.stat(job.audio).st_mtime_ns)
    except OSError:
        return False


def _save_manifest(out: Path, entries: dict[str, dict]) -> None:
    """Write the manifest atomically (a temporary file renamed over it)."""
    path = out / MANIFEST
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"format": MANIFEST_FORMAT, "utterances": dict(sorted(entries.items()))},
                                  indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise AvemoError(f"cannot write the list of prepared files ({exc.strerror or exc})", path) from None
    finally:
        tmp.unlink(missing_ok=True)


def _utterances(root: Path, protocol: str | None) -> tuple[list[Clip], list[Skipped]]:
    """The labelled utterances of ``protocol`` (None: of every protocol), and what the reader skipped."""
    clips: dict[str, Clip] = {}
    skipped: dict[str, Skipped] = {}
    for name in [protocol] if protocol is not None else list(PROTOCOLS):
        scan = read_iemocap(root, protocol=name)
        for clip in scan.clips:
            clips.setdefault(clip.take, clip)
        skipped.update({str(s): s for s in scan.skipped})
    return list(clips.values()), list(skipped.values())


def _jobs(clips: Iterable[Clip], side: str, codec: str, report: PrepareReport) -> list[_Job]:
    jobs = []
    for clip in clips:
        video = clip.fields.get("dialogue_video")
        if video is None:
            report.failed.append(Skipped(Path(clip.take), f"no dialogue video dialog/avi/DivX/{clip.dialogue}.avi "
                                                    f"in Session{clip.fields['session']}"))
            continue
        jobs.append(_Job(clip.take, str(video), str(clip.path), float(clip.fields["start"]), float(clip.fields["end"]),
                         speaker_side(clip.take, side), codec, prepared_file(clip).as_posix()))
    return jobs


def _results(out: Path, jobs: list[_Job], workers: int):
    """(take, entry or reason, warnings) of every job, as they complete."""
    if workers <= 1 or len(jobs) < 2:
        for job in jobs:
            yield _run_job(str(out), job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_job, str(out), job) for job in jobs]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def prepare_iemocap(
    root: str | Path,
    out: str | Path,
    *,
    side: str = "auto",
    protocol: str | None = None,
    codec: str = "auto",
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> PrepareReport:
    """Cut the video of every labelled utterance of the IEMOCAP release under ``root`` into ``out``
    (see the module doc). ``protocol``: only the utterances of that label protocol (default: those of
    every protocol); ``codec``: ``"auto"``, ``"libx264"`` or ``"mpeg4"``; ``progress(done, total)`` is
    called after each utterance with the number of utterances done so far and to do in all. Returns the :class:`PrepareReport`."""
    from avemo.output_file import prepare_folder

    if side not in SIDES:
        raise ConfigError(f"side {side!r} is not one of {', '.join(SIDES)}")
    if protocol is not None and protocol not in PROTOCOLS:
        raise DatasetError(f"IEMOCAP protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    encoder = video_encoder(codec)
    root_path = check_root(root, "iemocap")
    clips, skipped = _utterances(root_path, protocol)
    out_path = prepare_folder(out)
    entries = read_manifest(out_path)
    report = PrepareReport(out_path, failed=list(skipped))
    jobs = []
    for job in _jobs(clips, side, encoder, report):
        if _up_to_date(out_path, job, entries.get(job.take)):
            report.kept.append(job.take)
        else:
            jobs.append(job)
    done, total = len(report.kept), len(report.kept) + len(jobs)
    if progress is not None and done:
        progress(done, total)
    changed = 0  # manifest entries changed since the last save
    try:
        for take, result, warnings in _results(out_path, jobs, workers):
            report.warnings.extend(warnings)
            stale = None
            if isinstance(result, dict):
                entries[take] = result
                report.cut.append(take)
            else:
                stale = entries.pop(take, None)
                if isinstance(stale, dict) and stale.get("file"):
                    (out_path / str(stale["file"])).unlink(missing_ok=True)
                report.failed.append(Skipped(Path(take), result))
            changed += isinstance(result, dict) or stale is not None
            done += 1
            if progress is not None:
                progress(done, total)
            if changed >= SAVE_EVERY:
                _save_manifest(out_path, entries)
                changed = 0
    except BaseException:  # failed or interrupted: keep what was cut (an untouched new folder stays empty)
        if changed:
            _save_manifest(out_path, entries)
        raise
    _save_manifest(out_path, entries)
    return report
