"""Silence what native code (C/C++ inside a library) writes straight to a file descriptor.

Such output bypasses Python's ``sys.stdout``/``sys.stderr``: MediaPipe's TFLite and absl print start-up
notices on descriptor 2, and torch's TorchScript-based ONNX exporter prints a whole graph on
descriptor 1 before raising an error the caller reports in one line, and shape-inference warnings
on descriptor 2. Python-level errors are exceptions and still reach the caller.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def silenced(fd: int) -> Iterator[None]:
    """The null device as file descriptor ``fd`` (1: standard output, 2: standard error) meanwhile;
    nothing is silenced where the descriptor cannot be duplicated (an embedded interpreter)."""
    (sys.stdout if fd == 1 else sys.stderr).flush()
    try:
        saved = os.dup(fd)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
