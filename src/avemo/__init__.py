"""avemo: audio-visual emotion recognition."""

from __future__ import annotations

__version__ = "0.1.0"

from avemo.errors import AvemoError  # noqa: E402

__all__ = ["AvemoError", "__version__"]
