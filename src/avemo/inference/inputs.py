"""Which files ``avemo predict PATH...`` works on: media files given, and the media files in folders given."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from avemo.media.probe import MEDIA_SUFFIXES


def collect_media(paths: Iterable[str | Path], done: str = "predicted",
                  ) -> tuple[list[Path], list[tuple[str, str]], list[tuple[str, str]]]:
    """``(files, problems, repeats)``: every path that is not a folder (whatever its name: a wrong one is
    reported by the predictor), and the media files under each folder (recursively, sorted; other
    files in folders are ignored); ``problems`` lists folders without any media file. A path met twice
    (``clips/`` and ``clips/a.wav``, ``./a.wav`` and ``a.wav``) is kept once, and ``repeats`` says so,
    ``(path, note)`` for each such path (the first name it was met under): ``avemo predict a.wav a.wav``
    answered with one row without a word. A second name of one file (a symlink) is kept under its own
    name: it used to vanish from the results without a word (a grouped batch predicts such a copy
    once and says so, a plain one gives each name its row). ``done``: what the command does to each
    file, for the note (``avemo info`` describes them)."""
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    spellings: dict[Path, list[str]] = {}  # the names each file was met under, the one kept first
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
            if not found:
                problems.append((str(path), f"no media files ({', '.join(sorted(MEDIA_SUFFIXES))}) in this folder"))
            candidates = found
        else:
            candidates = [path]
        for p in candidates:
            key = Path(os.path.abspath(p))
            if key not in spellings:
                files.append(p)
            spellings.setdefault(key, []).append(str(p))
    return files, problems, [(names[0], _repeated(names, done)) for names in spellings.values() if len(names) > 1]


def _repeated(names: list[str], done: str) -> str:
    """What :func:`collect_media` says of a path met under ``names`` (the first one kept)."""
    times = "twice" if len(names) == 2 else f"{len(names)} times"
    others = [n for n in dict.fromkeys(names) if n != names[0]]
    return f"given {times}{', also as ' + ', '.join(others) if others else ''}: {done} once"
