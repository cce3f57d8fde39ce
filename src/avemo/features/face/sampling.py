"""Which frames of a clip the face extractors look at: N spread over a window, a rate, or all.

* ``n_frames=N``: the frames nearest to the centres of N equal parts of the window
  (:func:`avemo.media.sample_frames`; a window with fewer frames repeats them). The N
  full-size frames are decoded first, so N is meant to be small (paper 001 uses 30 frames
  over 3 s, 3D-CNN clips use 16-32).
* ``fps=R``: frames resampled to R per second, streamed (:func:`avemo.media.iter_frames`):
  memory does not grow with the video's length.
* neither: every decoded frame, streamed.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def iter_sampled_frames(
    path: str | Path,
    *,
    n_frames: int | None = None,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """``(time, RGB image)`` in increasing time, chosen as the module docstring says.

    Raises MissingStreamError for a file without video, MediaError for an unreadable one.
    """
    if n_frames is not None:
        frames = sample_frames(path, n_frames, start=start, duration=duration)
        for t, image in zip(frames.times, frames.images, strict=True):
            yield float(t), image
    else:
        yield from iter_frames(path, fps=fps, start=start, duration=duration)
