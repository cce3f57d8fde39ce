"""avemo: audio-visual emotion recognition."""

from __future__ import annotations

from typing import Any

from avemo.errors import AvemoError
from avemo.version import __version__

__all__ = ["AvemoError", "Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    # imported on first use: `import avemo` stays light (no torch, no media libraries)
    if name == "Predictor":
        from avemo.inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'avemo' has no attribute {name!r}")
