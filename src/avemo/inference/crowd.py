"""The crowd gate: a linear detector of "several people talk at once" on the audio expert's embeddings.

The audio head was trained on single actors; a crowd (party, street, babble of several talkers with
no foreground speaker) is speech to the voice-activity detector, and the head answers it as if it
were one speaker. :class:`CrowdDetector` is a standardised logistic regression on the same Whisper
embedding the head reads (one per timeline window, one for the clip), trained by
``benchmarks/build_crowd_detector.py`` on babble mixtures of the bundle's corpora (positives) and
single speakers, clean and with babble behind them (negatives). A window whose score is at least
``threshold`` gets no audio vote; when most of the speech windows are crowd windows, the clip's
audio term is not used either (:class:`~avemo.inference.backends.ExpertsBackend`).

It is stored in the bundle as a small JSON file named by ``model.json``'s ``config.abstention.crowd``
(float32 values); a bundle without it behaves as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import ConfigError

FORMAT = "avemo.crowd_detector"
FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class CrowdDetector:
    """``sigmoid(((x - mean) / std) . weights + bias)``: the probability that an embedding is a crowd."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    weights: np.ndarray  # (D,)
    bias: float
    threshold: float = 0.8

    def __post_init__(self) -> None:
        shapes = {a.shape for a in (self.mean, self.std, self.weights)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ConfigError(f"crowd detector: mean, std and weights must be vectors of one length, got "
                              f"shapes {[a.shape for a in (self.mean, self.std, self.weights)]}")
        if not np.all(np.isfinite(self.weights)) or not np.all(self.std > 0):
            raise ConfigError("crowd detector: weights must be finite and std positive")

    @property
    def width(self) -> int:
        return len(self.weights)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, D) embeddings -> (n,) crowd probabilities."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ConfigError(f"crowd detector expects (n, {self.width}) embeddings, got {x.shape}")
        z = ((x - self.mean) / self.std) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))

    def gate(self, scores: np.ndarray) -> np.ndarray:
        """True where a score means a crowd (at least ``threshold``)."""
        return np.asarray(scores, dtype=np.float64) >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        def floats(a):
            return [float(v) for v in np.asarray(a, dtype=np.float32)]

        return {"format": FORMAT, "format_version": FORMAT_VERSION, "threshold": float(self.threshold),
                "bias": float(np.float32(self.bias)), "mean": floats(self.mean), "std": floats(self.std),
                "weights": floats(self.weights)}

    @classmethod
    def from_dict(cls, data: Any) -> CrowdDetector:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"not a crowd detector (format {FORMAT!r} expected)")
        if data.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"crowd detector format_version {data.get('format_version')!r} is not {FORMAT_VERSION}")
        try:
            arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("mean", "std", "weights")}
            return cls(**arrays, bias=float(data["bias"]), threshold=float(data["threshold"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"crowd detector: bad or missing field ({exc})") from None

    def save(self, path: str | Path) -> Path:
        from avemo.output_file import OutputFile

        with OutputFile(path) as out:
            out.commit(json.dumps(self.to_dict(), separators=(",", ":")) + "\n")
        return Path(path)


def load_crowd_detector(path: str | Path, width: int | None = None) -> CrowdDetector:
    """The detector stored at ``path``; one-line ConfigError naming the file when it cannot be read or
    its width is not the audio expert's embedding width ``width``."""
    path = Path(path)
    try:
        detector = CrowdDetector.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the crowd detector ({type(exc).__name__}: {exc})") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.reason}") from None
    if width is not None and detector.width != width:
        raise ConfigError(f"{path}: the crowd detector reads {detector.width}-d embeddings, but the audio expert "
                          f"gives {width}-d ones")
    return detector
