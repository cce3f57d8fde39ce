"""A user's own OpenFace 2 output: per-frame ``FeatureExtraction`` CSVs -> clip functionals.

OpenFace 2 ``FeatureExtraction`` writes one CSV per video with a row per frame: ``frame``,
(``face_id``,) ``timestamp``, ``confidence``, ``success``, gaze, pose, landmarks and the
action units ``AUxx_r`` (intensity 0-5) and ``AUxx_c`` (presence 0/1); the column names
usually carry a leading space (``" AU01_r"``). ``confidence`` is the tracker's confidence in
its landmark estimate and ``success`` says whether a face was tracked in that frame (OpenFace
wiki, "Output Format").

:func:`openface_functionals` reduces such a file to one clip vector: the statistics
(``mean``, ``std``...) of the selected columns over the frames with ``success == 1`` and
``confidence >= min_confidence``. What happens when **no** frame passes is explicit
(``on_empty``): a :class:`~avemo.errors.FeatureError` (default) or a vector of NaN that the
caller must handle. :func:`openface_table` does this for many files and returns a
:class:`~avemo.datasets.tables.VisualTable` indexed by take, ready for
:func:`~avemo.datasets.tables.attach`.

The default threshold ``min_confidence=0.8`` is this project's choice, not an OpenFace
recommendation; it is part of the config, so results record it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from avemo import config as cfg
from avemo.datasets.csvfile import read_numeric_csv
from avemo.datasets.scan import Skipped
from avemo.datasets.tables import VisualTable
from avemo.errors import AvemoError, ConfigError, DatasetError, FeatureError

#: columns of an OpenFace CSV that describe the frame, not the face
META_COLUMNS = ("frame", "face_id", "timestamp", "confidence", "success")


def _percentile(q: float):
    return lambda x: np.percentile(x, q, axis=0)


#: statistic name -> function of a (frames, columns) array giving (columns,)
STATISTICS = {
    "mean": lambda x: x.mean(axis=0),
    "std": lambda x: x.std(axis=0),  # population std (ddof=0): defined for a single frame
    "min": lambda x: x.min(axis=0),
    "max": lambda x: x.max(axis=0),
    "median": lambda x: np.median(x, axis=0),
    "range": lambda x: x.max(axis=0) - x.min(axis=0),
    "p10": _percentile(10),
    "p25": _percentile(25),
    "p75": _percentile(75),
    "p90": _percentile(90),
}


@dataclass(frozen=True)
class OpenFaceConfig:
    """How per-frame OpenFace output becomes a clip vector.

    Attributes:
        include: column-name prefixes to summarise (``("AU",)``: the 17 intensities and 18
            presences; add ``"pose_R"`` or ``"gaze_angle"`` for head pose / gaze). Frame
            metadata columns (:data:`META_COLUMNS`) are never included.
        stats: statistics, in output order (see :data:`STATISTICS`). The output is
            statistic-major: all columns' means, then all columns' stds...
        min_confidence: frames with ``confidence`` below this are dropped.
        face_id: which face to use when the file holds several (``FaceLandmarkVidMulti``
            output); None accepts only single-face files.
        on_empty: no frame passes the filters: ``"error"`` raises a FeatureError,
            ``"nan"`` returns a vector of NaN.
    """

    include: tuple[str, ...] = ("AU",)
    stats: tuple[str, ...] = ("mean", "std")
    min_confidence: float = 0.8
    face_id: int | None = None
    on_empty: Literal["error", "nan"] = "error"

    def __post_init__(self) -> None:
        unknown = [s for s in self.stats if s not in STATISTICS]
        if unknown:
            raise ConfigError(f"OpenFaceConfig: unknown statistic(s) {unknown}; known: {list(STATISTICS)}")
        if not self.stats:
            raise ConfigError("OpenFaceConfig: stats is empty")
        if not self.include:
            raise ConfigError("OpenFaceConfig: include is empty")
        if self.on_empty not in ("error", "nan"):
            raise ConfigError(f"OpenFaceConfig: on_empty {self.on_empty!r} is not 'error' or 'nan'")


def _config(config: OpenFaceConfig | dict | None, overrides: dict[str, Any]) -> OpenFaceConfig:
    if config is None:
        config = OpenFaceConfig()
    elif isinstance(config, dict):
        config = cfg.from_dict(OpenFaceConfig, config)
    return cfg.replace(config, **overrides) if overrides else config


def read_openface_csv(path: str | Path, include: tuple[str, ...] | None = None):
    """Read an OpenFace per-frame CSV into a DataFrame (column names stripped, all numeric).

    ``include``: keep only the :data:`META_COLUMNS` and the columns starting with these
    prefixes (None: all columns).

    Raises a DatasetError naming the file when it is unreadable, not a CSV, has non-numeric
    cells, or lacks the ``confidence`` / ``success`` columns.
    """
    usecols = None if include is None else (lambda c: c in META_COLUMNS or c.startswith(include))
    return read_numeric_csv(path, what="OpenFace CSV", required=("confidence", "success"), usecols=usecols)


def openface_functionals(
    csv_path: str | Path, config: OpenFaceConfig | dict | None = None, **overrides: Any
) -> tuple[np.ndarray, list[str]]:
    """Summarise one OpenFace per-frame CSV into a clip vector.

    Returns:
        ``(vector, names)``: ``vector`` (len(stats) * n_columns,) float32 and the names
        ``f"{column}_{stat}"`` in the same order (statistic-major).

    Raises:
        DatasetError: the CSV is unreadable, lacks columns, or holds several faces and no
            ``face_id`` was chosen (or the chosen one is absent).
        FeatureError: no frame has ``success == 1`` and ``confidence >= min_confidence``
            and ``on_empty="error"``.
    """
    conf = _config(config, overrides)
    path = Path(csv_path)
    frame = read_openface_csv(path, conf.include)
    columns = [c for c in frame.columns if c not in META_COLUMNS and c.startswith(conf.include)]
    if not columns:
        raise DatasetError(f"OpenFace CSV has no column starting with {list(conf.include)}", path)
    if "face_id" in frame.columns:
        faces = sorted({int(f) for f in frame["face_id"]})
        if conf.face_id is not None:
            if conf.face_id not in faces:
                raise DatasetError(f"OpenFace CSV has no face_id {conf.face_id} (faces: {faces})", path)
            frame = frame[frame["face_id"] == conf.face_id]
        elif len(faces) > 1:
            raise DatasetError(f"OpenFace CSV holds {len(faces)} faces (face_id {faces}); choose one with face_id=", path)
    elif conf.face_id not in (None, 0):
        raise DatasetError(f"OpenFace CSV has no face_id column; face_id={conf.face_id} cannot be chosen", path)
    valid = (frame["success"].to_numpy() == 1) & (frame["confidence"].to_numpy() >= conf.min_confidence)
    names = [f"{c}_{s}" for s in conf.stats for c in columns]
    if not valid.any():
        if conf.on_empty == "nan":
            return np.full(len(names), np.nan, dtype=np.float32), names
        raise FeatureError(
            f"no frame of {len(frame)} has success == 1 and confidence >= {conf.min_confidence:g}", path
        )
    data = frame.loc[valid, columns].to_numpy(dtype=np.float64)
    vector = np.concatenate([STATISTICS[s](data) for s in conf.stats]).astype(np.float32)
    return vector, names


def openface_table(
    csv_paths: Iterable[str | Path] | str | Path,
    *,
    dataset: str,
    config: OpenFaceConfig | dict | None = None,
    name: str = "openface_functionals",
    **overrides: Any,
) -> tuple[VisualTable, list[Skipped]]:
    """Summarise many OpenFace CSVs (a list, or a folder searched recursively for ``*.csv``).

    Each CSV is named after its video (OpenFace's default: ``01-01-07-02-02-01-01.csv``); the
    take comes from that stem by ``dataset``'s naming convention (``folder``: the stem).

    Returns:
        The :class:`VisualTable` (one row per take, columns = the functional names) and the
        files that gave no row, with reasons (unparseable name, unreadable CSV, no valid
        frame, columns differing from the first file, a second file for one take).
    """
    from avemo.datasets.readers import take_of_stem

    conf = _config(config, overrides)
    if isinstance(csv_paths, str | Path) and Path(csv_paths).is_dir():
        paths = sorted(Path(csv_paths).rglob("*.csv"))
    elif isinstance(csv_paths, str | Path):
        paths = [Path(csv_paths)]
    else:
        paths = [Path(p) for p in csv_paths]
    takes: list[str] = []
    rows: list[np.ndarray] = []
    names: list[str] | None = None
    first: Path | None = None
    skipped: list[Skipped] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            take = take_of_stem(dataset, path.stem)
            if take in seen:
                raise DatasetError(f"take {take} already has a row from {seen[take]}")
            vector, file_names = openface_functionals(path, conf)
        except AvemoError as exc:
            skipped.append(Skipped(path, exc.reason))
            continue
        if names is None:
            names, first = file_names, path
        elif file_names != names:
            skipped.append(Skipped(path, f"its columns differ from those of {first}"))
            continue
        seen[take] = path
        takes.append(take)
        rows.append(vector)
    if names is None:
        raise DatasetError(f"no usable OpenFace CSV among {len(paths)} file(s)")
    return VisualTable(name, dataset, tuple(names), tuple(takes), np.stack(rows), None), skipped
