"""What the resumable part-wise benchmark scripts share (``--parts a,b``): choosing the parts, running
them in order with a logged time, and the pickled results each part keeps in the work folder."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def save(path: Path, obj: Any) -> None:
    """Pickle ``obj`` to ``path`` atomically (a part interrupted mid-write leaves the old result)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh)
    os.replace(tmp, path)


def save_merged(path: Path, obj: dict) -> None:
    """Save the results dict ``obj`` with what ``path`` holds now taken into it, under an exclusive lock,
    so that processes sharing a ``--work`` (e.g. ``--variants plain`` and ``--variants augmented`` of one
    part) keep each other's results: the stored entries ``obj`` lacks are added to it, key by key down
    its nested dicts (in place: references into ``obj`` stay valid), and the stored items of a list
    it lacks are appended; where both have another entry, ``obj``'s wins."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _absorb(obj, load(path, {}))
        save(path, obj)


def _absorb(obj: dict, stored: dict) -> None:
    for key, value in stored.items():
        if key not in obj:
            obj[key] = value
        elif isinstance(obj[key], dict) and isinstance(value, dict):
            _absorb(obj[key], value)
        elif isinstance(obj[key], list) and isinstance(value, list):  # e.g. each process's run records
            obj[key].extend(item for item in value if item not in obj[key])


def load(path: Path, default: Any = None) -> Any:
    """What :func:`save` wrote to ``path``, or ``default`` when nothing was."""
    if not path.exists():
        return default
    with open(path, "rb") as fh:
        return pickle.load(fh)


def parse_parts(text: str, known: Sequence[str]) -> list[str]:
    """The parts named in comma-separated ``text``; an unknown one stops the script."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(known))
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; choose from {list(known)}")
    return parts


def run_parts(parts: Sequence[str], known: Sequence[str], scope: Mapping[str, Callable], ctx: Any) -> None:
    """``scope["part_<name>"](ctx)`` for each part of ``parts``, in the order of ``known``."""
    for part in known:
        if part in parts:
            t0 = time.perf_counter()
            log(f"part {part} ...")
            scope[f"part_{part}"](ctx)
            log(f"part {part} done in {time.perf_counter() - t0:.0f} s")
