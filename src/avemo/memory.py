"""Keep the C heap of a long prediction from growing with the file's length (glibc's mmap threshold).

What grew. ``avemo predict`` keeps nothing per chunk or per frame of a long file (audio is encoded
30 s at a time, frames are decoded one at a time; the result holds a few floats per window: its JSON
is 2.4 MB per hour), yet its peak resident memory grew with the length: 910 MB for a 1-minute video,
1001 MB for 10 minutes, 1100 MB for 30 (torch, one thread, on a 2-core Intel Xeon; on a 2-core AMD
EPYC 881, 894 and 909 MB, and 639 -> 912 MB from a 1- to a 30-minute WAV: ``docs/benchmarks/predict.md``,
column "dynamic threshold"). What Python and the C code still used after each 30 s chunk stayed flat
(``tracemalloc``, glibc's ``mallinfo2``); what grew was the *free* part of glibc's heaps: freed
blocks the heap could not give back to the system.

Why. glibc serves a request above ``M_MMAP_THRESHOLD`` (128 KiB at start) with a mapping of its own,
returned to the system when freed, and a smaller one from a heap. The threshold is dynamic: each
time a mapped block is freed, it rises to that block's size (up to 32 MiB). The Whisper encoder's
temporaries of a 30 s chunk are 3 to 72 MB each (per-layer tensors of 1500 frames, the MLP's
activations, the concatenated states); once one of them was freed, the next ones below the new
threshold came from a heap, between small long-lived blocks, and chunk after chunk left holes a
bigger block did not fit into (``mallopt(3)``, ``M_MMAP_THRESHOLD``; "Malloc Internals", glibc wiki).

The fix. :func:`bound_heap_growth` fixes the threshold at 8 MiB and the heap's trim threshold at twice
that (glibc's own rule for its dynamic pair), with ``mallopt``; a fixed value turns the dynamic
adjustment off. Blocks of 8 MiB and more are mapped and given back when freed; smaller ones, decoded
frames among them (2.7 MB at 720p, 6.2 MB at 1080p RGB), stay on a heap as they did. It lowers the
peak (Intel: 895 MB instead of 1001 for 10 minutes, 988 instead of 1100 for 30; AMD: 851 instead of 894
and 889 instead of 909, and 762 instead of 912 for the 30-minute WAV, though 668 instead of 639 for the
1-minute one) and costs no page faults
(fewer than before); it does not flatten it: the 3 MB per-layer tensors of the encoder, which runs in
a thread of its own and so in a heap of its own, still fragment that heap. ``AVEMO_MMAP_THRESHOLD=1048576``
(1 MiB) flattens it (the audio expert alone: 691 MB for 1 minute and 696 for 10, against 708 and 794
at 8 MiB), but a 720p video then faults five times as many pages (63,000 instead of 13,000 per 4 s,
0.16 s more system time): worth it for long audio or low-resolution files, not as the default
(``docs/benchmarks/heap_thresholds.md``).

A :class:`~avemo.inference.predictor.Predictor` calls :func:`bound_heap_growth` when it is made, and
so does loading the Whisper encoder (``load_encoder``), so that ``avemo extract`` and ``avemo train``
processes that embed long files get it too (``avemo extract`` of the 30-minute WAV with ``-f whisper_base``,
AMD: peak RSS 894 MB against 930 MB with the dynamic threshold). It
changes where memory comes from, not what is computed (the same predictions, to the bit). It is a
no-op outside glibc (macOS, Windows, musl), when the user set glibc's own ``MALLOC_MMAP_THRESHOLD_``
or ``MALLOC_TRIM_THRESHOLD_``, and with ``AVEMO_MMAP_THRESHOLD=0``; ``AVEMO_MMAP_THRESHOLD=BYTES``
picks another threshold (the trim threshold is twice it).
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
