"""The timeline's windows, and pooling of time-stamped values into them.

A timeline has windows ``[k * hop, k * hop + window)`` for ``k = 0, 1, ...``, added until one
reaches the end of the media; a last window cut short by the end is kept if it spans at least
``min_fraction`` of ``window``, and the first is always kept (a clip shorter than one window has
one window: the whole clip). Unlike :func:`avemo.media.iter_windows`, no window is added after
one that already reaches the end (it would only repeat the tail of that one).

Experts compute values at their own instants (Whisper frames every 20 ms, face frames at the
analysis frame rate); :func:`window_members` says which instants fall in which window, so a
window's value is pooled from the instants inside it, and a window with none of them is simply
missing for that expert (no value is carried over from a neighbouring window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avemo.errors import ConfigError


@dataclass(frozen=True)
class WindowGrid:
    """``window`` seconds every ``hop`` seconds; the last window must span ``min_fraction`` of one."""

    window: float = 1.0
    hop: float = 0.5
    min_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not (isinstance(self.window, int | float) and math.isfinite(self.window) and self.window > 0):
            raise ConfigError(f"window must be a positive number of seconds, got {self.window!r}")
        if not (isinstance(self.hop, int | float) and math.isfinite(self.hop) and self.hop > 0):
            raise ConfigError(f"hop must be a positive number of seconds, got {self.hop!r}")
        if not 0.0 < self.min_fraction <= 1.0:
            raise ConfigError(f"min_fraction must lie in (0, 1], got {self.min_fraction!r}")

    def bounds(self, duration: float) -> np.ndarray:
        """(K, 2) ``[start, end)`` of the windows of a ``duration``-second clip (K >= 1)."""
        duration = max(float(duration), 0.0)
        out = []
        k = 0
        while True:
            start = k * self.hop
            if k > 0 and start >= duration - 1e-9:
                break
            end = min(start + self.window, duration) if duration > 0 else start + self.window
            if k > 0 and end - start < self.min_fraction * self.window - 1e-9:
                break
            out.append((start, end))
            if start + self.window >= duration - 1e-9:
                break
            k += 1
        return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def window_members(times: np.ndarray, bounds: np.ndarray) -> list[np.ndarray]:
    """For each window of ``bounds`` (K, 2), the indices of ``times`` with ``start <= t < end``.

    ``times`` must be sorted. Windows overlap when ``hop < window``, so an instant may belong
    to several windows.
    """
    times = np.asarray(times, dtype=np.float64)
    lo = np.searchsorted(times, bounds[:, 0] - 1e-9, side="left")
    hi = np.searchsorted(times, bounds[:, 1] - 1e-9, side="left")
    return [np.arange(a, b) for a, b in zip(lo, hi, strict=True)]
