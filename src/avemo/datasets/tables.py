"""External per-take feature tables (OpenFace AU means, OpenFace functionals) and attaching them to clips.

A :class:`VisualTable` holds one feature vector per take of one dataset. It is the
"video" input of a clip when no face frames are decoded: the trainer asks it for
``X = table.matrix(clips)`` (``(n_clips, D)`` float32, rows in clip order) and gets a
DatasetError listing the takes that have no row, or uses :func:`attach` to get the matched
rows plus the list of clips without one (report, don't guess).

The shared RAVDESS table (``../shared/data/ravdess/openface_au_means.csv``) is read by
:func:`load_au_means`; the feature is called ``"openface_au_means"`` (35-d: the 17 OpenFace 2
AU intensities ``AUxx_r`` and 18 presences ``AUxx_c`` averaged over a video's frames). A
table row keyed by the video stem ``01-01-E-I-S-R-A`` belongs to take ``01-E-I-S-R-A``, so it
attaches to that take's audio file ``03-01-E-I-S-R-A`` as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avemo.datasets.csvfile import read_numeric_csv
from avemo.datasets.records import Clip
from avemo.errors import DatasetError

AU_MEANS_NAME = "openface_au_means"
#: OpenFace 2 AU intensity outputs (0-5), in OpenFace's column order (OpenFace wiki, "Action Units")
AU_INTENSITY_COLUMNS = tuple(
    f"AU{n:02d}_r" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
)
#: OpenFace 2 AU presence outputs (0/1); AU28 has a presence but no intensity output
AU_PRESENCE_COLUMNS = tuple(
    f"AU{n:02d}_c" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)
)
AU_MEANS_COLUMNS = AU_INTENSITY_COLUMNS + AU_PRESENCE_COLUMNS
_MAX_LISTED = 5


def _list_some(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


@dataclass(frozen=True)
class Attached:
    """The result of :func:`attach`: rows for the clips that have one, and the clips that don't."""

    x: np.ndarray
    """(n_matched, D) float32, row i belongs to ``clips[i]``"""
    clips: list[Clip]
    missing: list[Clip]


@dataclass(frozen=True, eq=False)
class VisualTable:
    """One feature vector per take of ``dataset``: ``values[i]`` is the vector of ``takes[i]``.

    Attributes:
        name: the feature name (``"openface_au_means"``), as models' input specs call it.
        dataset: the dataset whose takes index the rows; clips of another dataset never match.
        columns: the D column names.
        takes: the take id of each row (unique).
        values: (n_rows, D) float32.
        source: the file the table was read from (for messages), or None.
    """

    name: str
    dataset: str
    columns: tuple[str, ...]
    takes: tuple[str, ...]
    values: np.ndarray
    source: Path | None = None
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim != 2 or values.shape != (len(self.takes), len(self.columns)):
            raise DatasetError(
                f"table {self.name}: values of shape {values.shape} for {len(self.takes)} takes "
                f"x {len(self.columns)} columns",
                self.source,
            )
        index: dict[str, int] = {}
        for i, take in enumerate(self.takes):
            if take in index:
                raise DatasetError(f"table {self.name}: take {take} has two rows", self.source)
            index[take] = i
        values.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_index", index)

    @property
    def dim(self) -> int:
        """D, the length of one vector."""
        return len(self.columns)

    def __len__(self) -> int:
        return len(self.takes)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Clip):
            return item.dataset == self.dataset and item.take in self._index
        return item in self._index

    def row(self, clip: Clip) -> np.ndarray | None:
        """The (D,) vector of the clip's take, or None when the table has no row for it."""
        if clip.dataset != self.dataset:
            return None
        i = self._index.get(clip.take)
        return None if i is None else self.values[i]

    def vector(self, clip: Clip) -> np.ndarray:
        """The (D,) vector of the clip's take; DatasetError if the table has none."""
        row = self.row(clip)
        if row is None:
            raise DatasetError(f"{self.name} has no row for take {clip.take_key}", clip.path)
        return row

    def matrix(self, clips: Iterable[Clip]) -> np.ndarray:
        """``X`` of shape (n_clips, D) float32, row i for clip i.

        Raises:
            DatasetError: naming the table and listing the takes without a row.
        """
        clips = list(clips)
        result = attach(clips, self)
        if result.missing:
            takes = sorted({c.take_key for c in result.missing})
            raise DatasetError(
                f"{self.name} has no row for {len(result.missing)} of {len(clips)} clips: takes {_list_some(takes)}",
                self.source,
            )
        return result.x


def attach(clips: Iterable[Clip], table: VisualTable) -> Attached:
    """Look up each clip's take in ``table``: matched rows in clip order, and the clips with no row."""
    matched: list[Clip] = []
    missing: list[Clip] = []
    rows: list[int] = []
    for clip in clips:
        i = table._index.get(clip.take) if clip.dataset == table.dataset else None
        if i is None:
            missing.append(clip)
        else:
            matched.append(clip)
            rows.append(i)
    x = table.values[np.asarray(rows, dtype=np.int64)] if rows else np.zeros((0, table.dim), np.float32)
    return Attached(x=np.array(x, dtype=np.float32), clips=matched, missing=missing)


def load_au_means(path: str | Path, *, key_column: str = "video") -> VisualTable:
    """Read a RAVDESS table of per-video OpenFace AU means (the shared ``openface_au_means.csv``).

    The file needs the ``video`` column (file stem of a RAVDESS audio-video ``01`` or
    video-only ``02`` file) and the 35 :data:`AU_MEANS_COLUMNS` (any order, other columns
    ignored); values must be finite, intensities within 0-5 and presences within 0-1.

    Returns a :class:`VisualTable` named ``"openface_au_means"`` with the columns in
    :data:`AU_MEANS_COLUMNS` order, indexed by RAVDESS take.
    """
    from avemo.datasets.ravdess import parse_ravdess_name

    path = Path(path)
    frame = read_numeric_csv(
        path, what="AU means table", required=(key_column, *AU_MEANS_COLUMNS), text_columns=(key_column,)
    )
    takes = []
    for line, stem in enumerate(frame[key_column], start=2):
        try:
            parsed = parse_ravdess_name(stem)
        except DatasetError as exc:
            raise DatasetError(f"line {line}: {key_column} {stem!r}: {exc.reason}", path) from None
        if "video" not in parsed["modalities"]:
            raise DatasetError(f"line {line}: {stem} is an audio-only (03) name, not a video", path)
        takes.append(parsed["take"])
    values = frame[list(AU_MEANS_COLUMNS)].to_numpy(dtype=np.float64)
    _check_range(path, values, frame, AU_INTENSITY_COLUMNS, 0.0, 5.0)
    _check_range(path, values, frame, AU_PRESENCE_COLUMNS, 0.0, 1.0)
    return VisualTable(AU_MEANS_NAME, "ravdess", AU_MEANS_COLUMNS, tuple(takes), values.astype(np.float32), path)


def _check_range(path: Path, values: np.ndarray, frame, columns: Sequence[str], low: float, high: float) -> None:
    idx = [AU_MEANS_COLUMNS.index(c) for c in columns]
    block = values[:, idx]
    bad = ~np.isfinite(block) | (block < low) | (block > high)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DatasetError(
            f"line {r + 2} column {columns[c]}: {float(block[r, c]):g} is not a finite value within {low:g}..{high:g}", path
        )


#: table name -> loader, for trainers that get the video input of a model by name
TABLE_LOADERS: dict[str, Callable[[Path], VisualTable]] = {AU_MEANS_NAME: load_au_means}


def load_table(name: str, path: str | Path) -> VisualTable:
    """Load the per-take table called ``name`` (e.g. ``"openface_au_means"``) from ``path``."""
    try:
        loader = TABLE_LOADERS[name]
    except KeyError:
        raise DatasetError(f"unknown feature table {name!r}; known: {', '.join(sorted(TABLE_LOADERS))}") from None
    return loader(Path(path))
