"""Reading the CSV files of datasets (label tables, demographics, feature tables) with clear errors.

Every failure a user can cause (a missing file, a binary or non-UTF-8 file, a ragged row, a
missing column, a non-numeric value) becomes a one-line :class:`~avemo.errors.DatasetError`
naming the file, never a ``csv`` / ``pandas`` traceback.

* :func:`read_text_csv` returns the header and the rows as stripped strings (label tables,
  small metadata); :func:`read_user_csv` reads a table a person wrote (a folder's labels CSV,
  ``avemo predict --speakers``) by the one rule for them: column names in any case, and a file
  that is not UTF-8 read as Windows' "ANSI" code page (:data:`WINDOWS_ANSI`) with a warning line;
* :func:`read_numeric_csv` returns a :class:`pandas.DataFrame` (feature tables, OpenFace
  per-frame output, which can hold thousands of rows of hundreds of columns).

Column names are stripped of surrounding spaces (OpenFace writes ``" AU01_r"``) and the
delimiter is the comma, semicolon or tab that splits the header into the most columns.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from avemo.errors import DatasetError

_SNIFF_BYTES = 8192

#: the encoding of a CSV that is not UTF-8, read with a warning: Windows' "ANSI" code page, in which
#: Excel ("CSV (Comma delimited)") and Notepad save a table there (``é`` as the byte 0xE9); MELD's
#: CSVs are in it too
WINDOWS_ANSI = "cp1252"


def _read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes, checked to be non-empty UTF-8 text (with or without BOM), or a DatasetError."""
    return _read_text(path, what).encode("utf-8")


def _read_text(path: Path, what: str, fallback: str | None = None, warn: Callable[[str], None] | None = None) -> str:
    """The file's non-empty text, decoded as UTF-8 (with or without BOM) or as UTF-16 with its BOM, or a
    DatasetError.

    With a ``fallback`` encoding (``"cp1252"``), a file that is not UTF-8 is decoded with it
    instead (undecodable bytes replaced) and ``warn`` receives one line saying so.
    """
    if not path.exists():
        raise DatasetError(f"{what} does not exist", path)
    if not path.is_file():
        raise DatasetError(f"{what} is not a file", path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {what} ({exc.strerror or exc})", path) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode Text"
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{what} is not UTF-16 text after its UTF-16 mark (byte {exc.start})", path) from None
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise DatasetError(f"{what} is a binary file, not a CSV text table", path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if fallback is None:
            raise DatasetError(f"{what} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV", path) from None
        text = data.decode(fallback, errors="replace")
        if warn is not None:
            warn(f"{path}: {what} is not UTF-8 text (byte {exc.start}); read as {fallback}")
    if not text.strip():
        raise DatasetError(f"{what} is empty", path)
    return text


def _delimiter(header_line: str) -> str:
    """Of ``,``, ``;`` and tab, the one that splits the header into the most columns (a tie: the first),
    so that a ``;`` table with a column named ``notes, misc`` is not read as a ``,`` one."""
    fields = {d: len(next(csv.reader([header_line], delimiter=d))) for d in (",", ";", "\t")}
    return max(fields, key=lambda d: fields[d])


def _check_columns(path: Path, what: str, header: Sequence[str], required: Iterable[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(f"{what} lacks column(s) {', '.join(missing)}; it has {', '.join(header)}", path)
    seen: set[str] = set()
    dupes = sorted({c for c in header if c in seen or seen.add(c)})  # type: ignore[func-returns-value]
    if dupes:
        raise DatasetError(f"{what} repeats column(s) {dupes}", path)


def read_text_csv(
    path: str | Path,
    *,
    what: str = "CSV file",
    required: Iterable[str] = (),
    lower: bool = False,
    fallback: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Read a small CSV as strings.

    Args:
        path: the CSV file.
        what: how error messages call the file (``"labels CSV"``).
        required: column names that must be present (after stripping / lower-casing).
        lower: lower-case the column names (for user-written tables, where ``Emotion`` and
            ``emotion`` mean the same).
        fallback: the encoding of a file that is not UTF-8 (None: such a file is an error).
        warn: receives one line when the fallback encoding was used.

    Returns:
        ``(header, rows)`` where each row is ``(line_number, values)`` with values stripped
        and exactly as many as header columns; blank lines are dropped. Nameless columns after the
        last named one are dropped with their cells when those are empty (a spreadsheet's
        ``a;b;c;;`` lines); a value in one is a ragged row.
    """
    path = Path(path)
    text = _read_text(path, what, fallback, warn)
    first_line = text.splitlines()[0]
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
        lines = list(reader)
    except csv.Error as exc:
        raise DatasetError(f"{what} is not a valid CSV ({exc})", path) from None
    header = [h.strip().lower() if lower else h.strip() for h in lines[0]]
    while header and not header[-1]:  # nameless empty columns at the end, as spreadsheets save them
        header.pop()
    _check_columns(path, what, header, required)
    rows: list[tuple[int, list[str]]] = []
    for number, values in enumerate(lines[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header) and not any(v.strip() for v in values[len(header):]):
            values = values[: len(header)]  # a row's empty cells past the last named column
        if len(values) != len(header):
            raise DatasetError(
                f"{what} line {number} has {len(values)} values for {len(header)} columns", path
            )
        rows.append((number, [v.strip() for v in values]))
    return header, rows


def read_user_csv(path: str | Path, *, what: str, warn: Callable[[str], None],
                  required: Iterable[str] = ()) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """:func:`read_text_csv` of a table a person wrote: column names lower-cased, and a file saved in
    Windows' "ANSI" code page (not UTF-8) read as :data:`WINDOWS_ANSI`, with one line to ``warn``
    naming the file."""
    return read_text_csv(path, what=what, required=required, lower=True, fallback=WINDOWS_ANSI, warn=warn)


def read_numeric_csv(
    path: str | Path,
    *,
    what: str = "CSV file",
    required: Iterable[str] = (),
    text_columns: Iterable[str] = (),
    usecols: Callable[[str], bool] | None = None,
):
    """Read a numeric table with pandas; every column but ``text_columns`` must be numbers.

    Args:
        path: the CSV file.
        what: how error messages call the file.
        required: columns that must be present (names stripped).
        text_columns: columns kept as (stripped) strings.
        usecols: keep only the columns whose stripped name passes this test (``required`` and
            ``text_columns`` must pass it too); parsing fewer columns is much faster for wide
            files such as OpenFace output (700 columns).

    Returns a :class:`pandas.DataFrame` with stripped column names and float64 numeric
    columns. Raises a DatasetError naming the file for unreadable files, missing columns,
    ragged lines and non-numeric or empty cells (with the first offending line and column);
    the text ``nan`` is accepted as a missing value.
    """
    import numpy as np
    import pandas as pd

    path = Path(path)
    data = _read_bytes(path, what)
    text_columns = set(text_columns)
    first_line = data[: data.find(b"\n") if b"\n" in data else len(data)].decode("utf-8-sig").rstrip("\r")
    delimiter = _delimiter(first_line)
    header = [h.strip() for h in next(csv.reader([first_line], delimiter=delimiter))]
    _check_columns(path, what, header, required)
    keep = [h for h in header if usecols is None or usecols(h) or h in text_columns]
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            encoding="utf-8-sig",
            sep=delimiter,
            skipinitialspace=True,
            usecols=lambda c: c.strip() in keep,
            dtype={c: str for c in text_columns},
            keep_default_na=False,
            na_values=["nan", "NaN", "-nan"],
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise DatasetError(f"{what} is not a valid CSV ({reason})", path) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in frame.columns:
        if column in text_columns:
            frame[column] = frame[column].str.strip()
            continue
        if pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype(np.float64)
            continue
        cells = frame[column].astype(str).str.strip()
        values = pd.to_numeric(cells, errors="coerce")
        bad = values.isna() & ~cells.isin(["nan", "NaN", "-nan"])
        row = int(np.flatnonzero(bad.to_numpy())[0]) if bool(bad.any()) else 0
        raise DatasetError(f"{what} line {row + 2} column {column!r}: {cells.iloc[row]!r} is not a number", path)
    return frame
