"""The lines that name the files or takes a command skipped, or set aside as duplicates: the first
:data:`SKIPPED_SHOWN` one a line, the others counted by kind of reason, with where the full list is."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from rich.markup import escape

from avemo.cli.app import console_err

#: How many skipped files or takes a command names one by one; the others are counted by reason.
SKIPPED_SHOWN = 20


def _print_skipped(items: Iterable[tuple[str | Path, str]], full_list: str) -> None:
    """On stderr: the files or takes (what, reason) a command skipped, the first :data:`SKIPPED_SHOWN`
    one a line, then one line that counts the others by kind of reason and says where ``full_list``
    they all are (a file written, or the option that writes one): a wrong --root read 1,217 files that
    follow no naming convention, and their lines buried everything else."""
    _print_capped(items, full_list, "[yellow]skipped[/]", "skipped")


def _print_duplicates(duplicates: Iterable[tuple[str | Path, str]], full_list: str | None = None) -> None:
    """On stderr: the files (path, reason) a dataset reader set aside as copies of a take it reads from
    another file (:attr:`~avemo.datasets.scan.ScanResult.duplicates`): not files it could not use. As
    the skipped ones (:func:`_print_skipped`), the first :data:`SKIPPED_SHOWN` one a line, then a count
    (and where ``full_list`` they all are, when a command writes them)."""
    _print_capped(duplicates, full_list, "[cyan]duplicate[/]", "duplicates")


def _print_capped(items: Iterable[tuple[str | Path, str]], full_list: str | None, label: str, plural: str) -> None:
    """The lines of :func:`_print_skipped` and :func:`_print_duplicates`: ``label`` (console markup)
    begins the line of each of the first :data:`SKIPPED_SHOWN` items, ``plural`` names the others. The
    list of supported containers is said once (:func:`~avemo.media.sniff.supported_said_once`)."""
    from avemo.media.sniff import supported_said_once  # not at import: it imports PyAV

    items = [(str(what), reason) for what, reason in items]
    items = list(zip([what for what, _ in items], supported_said_once([reason for _, reason in items]), strict=True))
    for what, reason in items[:SKIPPED_SHOWN]:
        console_err.print(f"{label} {escape(what)}: {escape(reason)}", soft_wrap=True)
    if len(items) > SKIPPED_SHOWN:
        rest = items[SKIPPED_SHOWN:]
        where = f"; all {len(items)} {full_list}" if full_list else ""
        console_err.print(escape(f"... and {len(rest)} more {plural} ({_reason_counts(rest)}){where}"), soft_wrap=True)


def _reason_counts(items: Sequence[tuple[str, str]], shown: int = 5) -> str:
    """``"reasons: not an EmoDB name: ... ×1197, ..."``: how many of ``items`` (what, reason) have each
    kind of reason (:func:`_reason_kind`), the most frequent first; a kind whose reasons are all the
    same text is named by that text. Beyond ``shown`` kinds, the others are counted together."""
    kinds: dict[str, Counter] = {}
    for what, reason in items:
        kinds.setdefault(_reason_kind(what, reason), Counter())[reason] += 1
    ranked = sorted(kinds.items(), key=lambda kv: -kv[1].total())
    parts = [f"{_shorten(next(iter(texts)) if len(texts) == 1 else kind)} ×{texts.total()}"
             for kind, texts in ranked[:shown]]
    if len(ranked) > shown:
        others = ranked[shown:]
        parts.append(f"{len(others)} other reasons ×{sum(texts.total() for _, texts in others)}")
    return f"reason{'s' if len(items) > 1 else ''}: " + ", ".join(parts)


def _reason_kind(what: str, reason: str) -> str:
    """``reason`` without what is particular to one file or take ``what``: its path and name, quoted
    values, paths and words with digits (codes, take names, line numbers) become "…", so that "EmoDB
    speaker 07 is not one of 03, 08, ..." and "EmoDB speaker 02 is not ..." are one kind of reason."""
    for part in sorted({what, Path(what).name} - {""}, key=len, reverse=True):
        reason = re.sub(rf"(?<![\w.]){re.escape(part)}(?![\w.])", "…", reason)
    reason = re.sub(r"'[^']*'|\"[^\"]*\"|\S*[/\\]\S*|[\w.:-]*\d[\w.:-]*", "…", reason)
    return re.sub(r"…(?:[\s,;]*…)+", "…", reason)


def _shorten(text: str, width: int = 80) -> str:
    """``text``, cut to ``width`` characters with "…"."""
    return text if len(text) <= width else text[:width - 1] + "…"
