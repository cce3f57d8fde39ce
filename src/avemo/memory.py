"""Keep the C heap of a long prediction from growing with the file's length (glibc's mmap threshold).

What grew. ``avemo predict`` keeps nothing per chunk or per frame of a long file (audio is encoded
in 30 s chunks, frames are decoded one at a time; only a few floats per window are kept), yet its
peak resident memory rose from 906 MB on a 1-minute video to 1045 MB on a 10-minute one (torch, one
thread; ``docs/benchmarks/predict.md``). The bytes Python and the C code still used stayed flat
(``tracemalloc`` and glibc's ``mallinfo2`` after each chunk: 127 MB in use); what grew was the
*free* part of glibc's heap, 42 MB after the first chunk, 173 MB after seven, then flat: freed
blocks the heap could not give back to the system.

Why. glibc serves a request above ``M_MMAP_THRESHOLD`` (128 KiB at start) with a mapping of its own,
returned to the system when freed, and a smaller one from its heap. The threshold is dynamic: each
time a mapped block is freed, it rises to that block's size (up to 32 MiB). The Whisper encoder's
temporaries of a 30 s chunk are 3 to 30 MB each (hidden states of 1500 frames, the MLP's
activations, the concatenated states); once the first of them was freed, the next ones came from
the heap, interleaved with small long-lived blocks, and every chunk left holes a bigger block did
not fit into, so the heap kept extending (Mallocinternals, glibc wiki; ``mallopt(3)``,
``M_MMAP_THRESHOLD``).

The fix. :func:`bound_heap_growth` fixes the threshold at 8 MiB and the heap's trim threshold at twice
that (glibc's own rule for its dynamic pair), with ``mallopt``; a fixed value turns the dynamic
adjustment off. Blocks of 8 MiB and more (the encoder's 12 MB activations, its 21 MB states and their
43 MB float64 copy) are mapped and given back when freed; smaller ones (decoded frames, 6 MB at 1080p
RGB) stay on the heap, as they would after glibc's own warm-up, so a short clip costs no more page
faults than before. A threshold of 1 MiB kept the peak a little lower but faulted 47,000 pages per
4 s 720p prediction instead of 10,000 (0.1 s more system time). A
:class:`~avemo.inference.predictor.Predictor` calls it when it is made. It changes where memory comes
from, not what is computed (the same predictions, to the bit). It is a no-op outside glibc (macOS,
Windows, musl), when the user set glibc's own ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_``,
and with ``AVEMO_MMAP_THRESHOLD=0``; ``AVEMO_MMAP_THRESHOLD=BYTES`` picks another threshold (the trim
threshold is twice it).
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

#: the threshold set by default, bytes: the encoder's big temporaries are mapped, frames are not
DEFAULT_MMAP_THRESHOLD = 8 << 20
M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
ENV = "AVEMO_MMAP_THRESHOLD"

_APPLIED: int | None = None
_LOCK = threading.Lock()


def _threshold() -> int:
    """The threshold asked for: ``$AVEMO_MMAP_THRESHOLD`` (bytes; 0: leave glibc alone), else the default."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return DEFAULT_MMAP_THRESHOLD
    try:
        return max(int(value), 0)
    except ValueError:
        return DEFAULT_MMAP_THRESHOLD


def _glibc():
    """The C library when it is glibc (the only one with this behaviour and this mallopt), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc's included (find_library would run ldconfig)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def bound_heap_growth() -> int:
    """Fix glibc's mmap and trim thresholds for this process (see the module docstring), once; the mmap
    threshold set, in bytes, or 0 when nothing was changed (not glibc, the user's own setting, or off)."""
    global _APPLIED
    with _LOCK:
        if _APPLIED is None:
            _APPLIED = _apply()
        return _APPLIED


def _apply() -> int:
    threshold = min(_threshold(), 32 << 20)  # glibc refuses a threshold above 32 MiB
    if threshold <= 0 or {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ):
        return 0
    libc = _glibc()
    if libc is None:
        return 0
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if libc.mallopt(M_TRIM_THRESHOLD, 2 * threshold) != 1 or libc.mallopt(M_MMAP_THRESHOLD, threshold) != 1:
        return 0
    return threshold
