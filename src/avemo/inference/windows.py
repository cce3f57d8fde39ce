"""The timeline's windows, and pooling of time-stamped values into them.

A timeline has windows ``[k * hop, k * hop + window)`` for ``k = 0, 1, ...``, added until one
reaches the end of the media; the hop is at most the window (a longer one would leave gaps between
windows: refused, by the CLI, the Python API and the server alike); a last window cut short by the end is kept if it spans at least
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
from typing import TYPE_CHECKING

from avemo.errors import ConfigError

if TYPE_CHECKING:  # numpy loads when windows are built: the CLI and the server's settings read the bounds
    import numpy as np

#: the shortest hop a timeline may use, seconds (the audio expert's frames are 20 ms apart: a
#: shorter hop only repeats windows); ``avemo serve`` may be stricter (its ``min_hop``)
MIN_HOP = 0.01
#: the most windows one timeline may hold: ten hours at the default hop of 0.5 s are 72,000 (a
#: 300 s file at hop 0.001 s was 300,000 rows and 100 MB of JSON); ``avemo serve`` may be
#: stricter (its ``max_timeline_rows``)
MAX_ROWS = 100_000
#: what a window or a hop must be (inf and nan are numbers, but no length of time)
SECONDS = "a finite positive number of seconds"


def timeline_rows(duration: float | None, hop: float) -> int:
    """The most windows a ``duration``-second clip may have at ``hop`` (``duration / hop + 1``),
    without building them: what :data:`MAX_ROWS` and the server's ``max_timeline_rows`` bound."""
    return int(max(float(duration or 0.0), 0.0) / hop) + 1


def shortest_hop(duration: float | None, max_rows: int) -> float:
    """The shortest hop, in steps of 10 ms, that keeps a ``duration``-second timeline within ``max_rows``."""
    steps = max(math.ceil(float(duration or 0.0) / max_rows * 100), 1)
    while timeline_rows(duration, steps / 100) > max_rows:
        steps += 1
    return steps / 100


@dataclass(frozen=True)
class WindowGrid:
    """``window`` seconds every ``hop`` seconds (``MIN_HOP <= hop <= window``); the last window must
    span ``min_fraction`` of one."""

    window: float = 1.0
    hop: float = 0.5
    min_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not (isinstance(self.window, int | float) and math.isfinite(self.window) and self.window > 0):
            raise ConfigError(f"window must be {SECONDS}, got {self.window!r}")
        if self.window < MIN_HOP:  # no hop could be both short enough and long enough
            raise ConfigError(f"window must be at least {MIN_HOP:g} s (the shortest timeline step), got {self.window:g}")
        if not (isinstance(self.hop, int | float) and math.isfinite(self.hop) and self.hop > 0):
            raise ConfigError(f"hop must be {SECONDS}, got {self.hop!r}")
        if self.hop < MIN_HOP:
            raise ConfigError(f"hop must be at least {MIN_HOP:g} s (the shortest timeline step), got {self.hop:g}")
        if self.hop > self.window + 1e-9:
            raise ConfigError(f"hop must be at most the window ({self.window:g} s; a longer one leaves gaps between "
                              f"the windows), got {self.hop:g}")
        if not 0.0 < self.min_fraction <= 1.0:
            raise ConfigError(f"min_fraction must lie in (0, 1], got {self.min_fraction!r}")

    def with_options(self, window: float | None = None, hop: float | None = None, *,
                     window_option: str = "window=") -> WindowGrid:
        """This grid (the model's) with a caller's ``window`` and ``hop`` (None: this grid's own). A
        window given alone keeps this grid's hop, unless that is longer than the window: then the hop
        is the window (windows end to end), not an error, e.g. ``window=0.3`` on a 1 s / 0.5 s grid is
        0.3 s every 0.3 s. A hop given alone must fit this grid's window: the ConfigError says that the
        window is the model's, and to give ``window_option`` (how the caller takes a window:
        ``"--window"`` on the command line) to change it."""
        if window is None:
            if isinstance(hop, int | float) and math.isfinite(hop) and hop > self.window + 1e-9:
                raise ConfigError(f"hop must be at most the model's window of {self.window:g} s (pass {window_option} "
                                  f"to change it; a longer hop leaves gaps between the windows), got {hop:g}")
            window = self.window
        if hop is None:
            shorter = isinstance(window, int | float) and math.isfinite(window) and 0 < window < self.hop
            hop = window if shorter else self.hop
        return WindowGrid(window, hop, self.min_fraction)

    def check_rows(self, duration: float | None, path=None) -> None:
        """ConfigError (naming ``path``) when a ``duration``-second clip would have more than
        :data:`MAX_ROWS` windows; called before the analysis, as soon as the length is known."""
        rows = timeline_rows(duration, self.hop)
        if rows > MAX_ROWS:
            raise ConfigError(f"a hop of {self.hop:g} s over {duration:.0f} s makes {rows} timeline windows; at most "
                              f"{MAX_ROWS} are allowed (use a hop of at least {shortest_hop(duration, MAX_ROWS):g} s)",
                              path)

    def bounds(self, duration: float) -> np.ndarray:
        """(K, 2) ``[start, end)`` of the windows of a ``duration``-second clip (K >= 1)."""
        import numpy as np

        duration = max(float(duration), 0.0)
        self.check_rows(duration)
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
    import numpy as np

    times = np.asarray(times, dtype=np.float64)
    lo = np.searchsorted(times, bounds[:, 0] - 1e-9, side="left")
    hi = np.searchsorted(times, bounds[:, 1] - 1e-9, side="left")
    return [np.arange(a, b) for a, b in zip(lo, hi, strict=True)]
