"""avemo: audio-visual emotion recognition."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from avemo.errors import AvemoError  # noqa: E402

__all__ = ["AvemoError", "Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    # imported on first use: `import avemo` stays light (no torch, no media libraries)
    if name == "Predictor":
        from avemo.inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'avemo' has no attribute {name!r}")
