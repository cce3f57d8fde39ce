"""Fixed-length crop / pad of frame sequences, as the papers feed their networks.

Paper 003 (Cai et al., "Multi-Modal Emotion Recognition From Speech and Facial Expression Based on Deep Learning", section II.A) makes every
utterance "a fixed length of 100 frames" by "clipping and padding"; frame-based video
models take a fixed number of frames likewise. :func:`fit_length` does this for any
array whose first axis is time, (T, D) or (T, H, W, C):

* longer than ``n``: **crop** a contiguous run of ``n`` frames, from the ``"start"``, the
  ``"center"`` (offset ``(T - n) // 2``), or a ``"random"`` offset drawn from the ``rng``
  given (a ``numpy.random.Generator`` or an int seed; required, so that runs are
  reproducible);
* shorter: keep all frames at the start and **pad** after them with ``"zeros"``, the last
  frame (``"edge"``), or by looping the sequence (``"repeat"``: frame ``i`` is ``x[i % T]``).

:class:`LengthPolicy` carries ``frames`` / ``crop`` / ``pad`` as configuration data, so a
model's input spec can say how its inputs are fitted (``LengthPolicy(100, "center", "zeros")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from avemo.errors import ConfigError, FeatureError

CropMode = Literal["center", "start", "random"]
PadMode = Literal["zeros", "edge", "repeat"]
CROP_MODES: tuple[str, ...] = ("center", "start", "random")
PAD_MODES: tuple[str, ...] = ("zeros", "edge", "repeat")


@dataclass(frozen=True)
class LengthPolicy:
    """How a variable-length sequence is brought to ``frames`` frames (see module docstring)."""

    frames: int = 100
    crop: CropMode = "center"
    pad: PadMode = "zeros"

    def __post_init__(self):
        if self.frames < 1:
            raise ConfigError(f"LengthPolicy.frames must be at least 1, got {self.frames}")
        if self.crop not in CROP_MODES:
            raise ConfigError(f"LengthPolicy.crop must be one of {list(CROP_MODES)}, got {self.crop!r}")
        if self.pad not in PAD_MODES:
            raise ConfigError(f"LengthPolicy.pad must be one of {list(PAD_MODES)}, got {self.pad!r}")

    def apply(
        self, x: np.ndarray, rng: np.random.Generator | int | None = None, *, return_mask: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """``fit_length(x, self.frames, crop=self.crop, pad=self.pad, rng=rng)``."""
        return fit_length(x, self.frames, crop=self.crop, pad=self.pad, rng=rng, return_mask=return_mask)


def fit_length(
    x: np.ndarray,
    n: int | None = None,
    *,
    policy: LengthPolicy | None = None,
    crop: CropMode | None = None,
    pad: PadMode | None = None,
    rng: np.random.Generator | int | None = None,
    return_mask: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Crop or pad ``x`` along its first axis to ``n`` frames.

    ``policy`` supplies defaults for ``n``, ``crop`` and ``pad`` (explicit arguments win;
    without either, crop ``"center"`` and pad ``"zeros"``). The result is a new array of
    shape ``(n, *x.shape[1:])`` and ``x``'s dtype. With ``return_mask`` also returns a
    boolean (n,) mask that is True for frames taken from ``x`` and False for padding
    (for ``"edge"`` / ``"repeat"`` the padding repeats real frames but is still marked False).
    """
    base = policy or LengthPolicy()
    n = base.frames if n is None else n
    crop = base.crop if crop is None else crop
    pad = base.pad if pad is None else pad
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"fit_length: n must be a positive integer, got {n!r}")
    if crop not in CROP_MODES:
        raise ConfigError(f"fit_length: crop must be one of {list(CROP_MODES)}, got {crop!r}")
    if pad not in PAD_MODES:
        raise ConfigError(f"fit_length: pad must be one of {list(PAD_MODES)}, got {pad!r}")
    x = np.asarray(x)
    if x.ndim == 0:
        raise FeatureError("fit_length: expected a sequence with time on the first axis, got a scalar")
    n = int(n)
    length = x.shape[0]
    mask = np.zeros(n, dtype=bool)
    if length >= n:
        if crop == "start" or length == n:
            offset = 0
        elif crop == "center":
            offset = (length - n) // 2
        else:
            if rng is None:
                raise ConfigError("fit_length: crop='random' needs rng (a numpy Generator or an int seed)")
            offset = int(np.random.default_rng(rng).integers(0, length - n + 1))
        mask[:] = True
        out = np.array(x[offset : offset + n], copy=True)
    else:
        if length == 0 and pad != "zeros":
            raise FeatureError(f"fit_length: cannot pad an empty sequence with {pad!r}")
        mask[:length] = True
        if pad == "zeros":
            out = np.zeros((n, *x.shape[1:]), dtype=x.dtype)
            out[:length] = x
        elif pad == "edge":
            out = np.concatenate([x, np.repeat(x[-1:], n - length, axis=0)], axis=0)
        else:
            out = np.array(x[np.arange(n) % length], copy=True)
    return (out, mask) if return_mask else out
