"""Which frames of a clip the face extractors look at: N spread over a window, a rate, or all.

* ``n_frames=N``: the frames nearest to the centres of N equal parts of the window
  (:func:`avemo.media.sample_frames`; a window with fewer frames repeats them). The N
  full-size frames are decoded first, so N is meant to be small (paper 001 uses 30 frames
  over 3 s, 3D-CNN clips use 16-32).
* ``fps=R``: frames resampled to R per second, streamed (:func:`avemo.media.iter_frames`):
  memory does not grow with the video's length.
* neither: every decoded frame, streamed.

The first two repeat frames where the video has fewer than they ask for (a window shorter than N
frames, a video slower than R frames per second): the N or R-per-second count a model reads stays
fixed, and :class:`FrameCount` says how many of the frames given were distinct decoded frames, so
that the caller can tell the user (a prediction's warnings) instead of repeating them silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avemo.errors import ConfigError
from avemo.media import iter_frames, sample_frames


def check_sampling(
    n_frames: int | None, fps: float | None, start: float, duration: float | None, where: str
) -> None:
    """Raise ConfigError for an impossible sampling request."""
    if n_frames is not None and fps is not None:
        raise ConfigError(
            f"{where}: set one of n_frames / fps, and the other to None (got n_frames={n_frames}, fps={fps})"
        )
    if n_frames is not None and n_frames <= 0:
        raise ConfigError(f"{where}: n_frames must be positive, got {n_frames}")
    if fps is not None and fps <= 0:
        raise ConfigError(f"{where}: fps must be positive, got {fps}")
    if start < 0:
        raise ConfigError(f"{where}: start must be >= 0, got {start}")
    if duration is not None and duration <= 0:
        raise ConfigError(f"{where}: duration must be positive, got {duration}")


@dataclass
class FrameCount:
    """The frames :func:`iter_sampled_frames` gave (``sampled``) and how many of them were distinct
    decoded frames (``distinct``; fewer than ``sampled`` where frames were repeated)."""

    sampled: int = 0
    distinct: int = 0

    @property
    def repeated(self) -> bool:
        return self.distinct < self.sampled


def iter_sampled_frames(
    path: str | Path,
    *,
    n_frames: int | None = None,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    count: FrameCount | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """``(time, RGB image)`` in increasing time, chosen as the module docstring says; ``count``, if
    given, is updated as frames are given (a repeat: for N frames, the time of the decoded frame it
    is, the previous one's; at a rate, the same image as the previous one, which
    :func:`~avemo.media.iter_frames` yields again for a source slower than the rate).

    Raises MissingStreamError for a file without video, MediaError for an unreadable one.
    """
    count = FrameCount() if count is None else count
    if n_frames is not None:
        frames = sample_frames(path, n_frames, start=start, duration=duration)
        for k, (t, image) in enumerate(zip(frames.times, frames.images, strict=True)):
            count.sampled += 1
            count.distinct += int(k == 0 or t != frames.times[k - 1])
            yield float(t), image
    else:
        previous = None
        for t, image in iter_frames(path, fps=fps, start=start, duration=duration):
            count.sampled += 1
            count.distinct += int(image is not previous)
            previous = image
            yield t, image
