"""External per-take tables: the shared OpenFace AU means and a user's OpenFace per-frame CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avemo.datasets import (
    AU_MEANS_COLUMNS,
    OpenFaceConfig,
    VisualTable,
    attach,
    load_au_means,
    load_table,
    openface_functionals,
    openface_table,
    read_ravdess,
)
from avemo.datasets.tables import AU_INTENSITY_COLUMNS, AU_PRESENCE_COLUMNS
from avemo.errors import ConfigError, DatasetError, FeatureError


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def write_au_table(path: Path, stems: list[str], rng: np.random.Generator, header: list[str] | None = None) -> np.ndarray:
    header = header or ["video", *AU_MEANS_COLUMNS]
    values = np.concatenate(
        [rng.uniform(0, 5, (len(stems), len(AU_INTENSITY_COLUMNS))), rng.uniform(0, 1, (len(stems), len(AU_PRESENCE_COLUMNS)))],
        axis=1,
    )
    lines = [",".join(header)]
    lines += [",".join([stem, *(f"{v:.6f}" for v in row)]) for stem, row in zip(stems, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return values.round(6).astype(np.float32)


# --- the shared RAVDESS AU means ---------------------------------------------------------------


@pytest.mark.shared_data
def test_au_means_attach_to_all_shared_audio_clips(au_table, ravdess_speech_root):
    table = load_au_means(au_table)
    assert table.name == "openface_au_means" and table.dataset == "ravdess"
    assert table.dim == 35 and len(table) == 1200 and table.columns == AU_MEANS_COLUMNS
    clips = read_ravdess(ravdess_speech_root).clips
    result = attach(clips, table)
    assert result.missing == [] and result.x.shape == (1200, 35) and result.x.dtype == np.float32
    X = table.matrix(clips)
    assert np.array_equal(X, result.x)
    # row i belongs to clip i: check one against the CSV text (video 01-01-01-01-01-01-01 = audio 03-01-...-01)
    first_line = au_table.read_text().splitlines()[1].split(",")
    assert first_line[0] == "01-01-01-01-01-01-01"
    i = next(i for i, c in enumerate(clips) if c.path.name == "03-01-01-01-01-01-01.flac")
    assert np.allclose(X[i], np.array(first_line[1:], dtype=np.float32))
    # presences are fractions of frames, intensities 0..5
    assert X[:, 17:].max() <= 1.0 and X[:, :17].max() <= 5.0 and X.min() >= 0.0


@pytest.mark.shared_data
def test_au_means_shared_video_has_a_row(au_table, ravdess_video):
    table = load_table("openface_au_means", au_table)
    [clip] = read_ravdess(ravdess_video.parent).clips
    assert clip in table and table.vector(clip).shape == (35,)


def test_matrix_lists_missing_takes(tmp_path):
    rng = np.random.default_rng(0)
    values = write_au_table(tmp_path / "au.csv", ["01-01-07-02-02-01-01", "02-01-03-01-01-01-02"], rng)
    touch(tmp_path / "audio", "03-01-07-02-02-01-01.wav", "03-01-03-01-01-01-02.wav", "03-01-04-01-01-01-02.wav")
    clips = read_ravdess(tmp_path / "audio").clips
    table = load_au_means(tmp_path / "au.csv")
    result = attach(clips, table)
    assert [c.take for c in result.clips] == ["01-03-01-01-01-02", "01-07-02-02-01-01"]
    assert [c.take for c in result.missing] == ["01-04-01-01-01-02"]
    assert np.allclose(result.x, values[[1, 0]], atol=1e-6)
    with pytest.raises(DatasetError) as info:
        table.matrix(clips)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "au.csv")) and "1 of 3 clips" in message
    assert "ravdess:01-04-01-01-01-02" in message
    with pytest.raises(DatasetError, match="no row for take ravdess:01-04-01-01-01-02"):
        table.vector(result.missing[0])
    assert attach([], table).x.shape == (0, 35)


def test_tables_do_not_match_other_datasets(tmp_path):
    rng = np.random.default_rng(1)
    write_au_table(tmp_path / "au.csv", ["01-01-07-02-02-01-01"], rng)
    table = load_au_means(tmp_path / "au.csv")
    touch(tmp_path / "a", "03-01-07-02-02-01-01.wav")
    clip = read_ravdess(tmp_path / "a").clips[0]
    from dataclasses import replace

    assert table.row(replace(clip, dataset="folder")) is None
    assert table.row(clip) is not None


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda h, r: (h[:-1], [x[:-1] for x in r]), "lacks column(s) AU45_c;"),
        (lambda h, r: (h, [r[0], [r[1][0], "high", *r[1][2:]]]), "line 3 column 'AU01_r': 'high' is not a number"),
        (lambda h, r: (h, [r[0], [r[1][0], "7.5", *r[1][2:]]]), "line 3 column AU01_r: 7.5 is not a finite value within 0..5"),
        (lambda h, r: (h, [r[0], [*r[1][:-1], "nan"]]), "column AU45_c: nan"),
        (lambda h, r: (h, [r[0], r[0]]), "has two rows"),
        (lambda h, r: (h, [r[0], ["03-01-01-01-01-01-01", *r[1][1:]]]), "audio-only (03) name"),
        (lambda h, r: (h, [r[0], ["clip_7", *r[1][1:]]]), "line 3: video 'clip_7': not a RAVDESS name"),
    ],
)
def test_bad_au_tables(tmp_path, mutate, fragment):
    header = ["video", *AU_MEANS_COLUMNS]
    rows = [["01-01-07-02-02-01-01", *["0.5"] * 35], ["01-01-06-01-01-01-02", *["0.25"] * 35]]
    header, rows = mutate(header, rows)
    path = tmp_path / "au.csv"
    path.write_text("\n".join(",".join(x) for x in [header, *rows]) + "\n")
    with pytest.raises(DatasetError) as info:
        load_au_means(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_visual_table_checks_its_shape_and_unknown_table_names():
    with pytest.raises(DatasetError, match="shape"):
        VisualTable("t", "ravdess", ("a", "b"), ("x",), np.zeros((1, 3)))
    with pytest.raises(DatasetError, match="unknown feature table"):
        load_table("hog_means", "x.csv")


# --- OpenFace per-frame output -------------------------------------------------------------------

AU_R = [f"AU{n:02d}_r" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)]
AU_C = [f"AU{n:02d}_c" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)]


def write_openface_csv(
    path: Path, n: int, *, seed: int = 0, success=None, confidence=None, face_id=None, with_face_id: bool = True
) -> dict[str, np.ndarray]:
    """An OpenFace 2 FeatureExtraction-style CSV (leading spaces in the header, as OpenFace writes it)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {"frame": np.arange(1, n + 1, dtype=float)}
    if with_face_id:
        cols["face_id"] = np.zeros(n) if face_id is None else np.asarray(face_id, float)
    cols["timestamp"] = np.arange(n) / 30.0
    cols["confidence"] = rng.uniform(0.85, 0.98, n) if confidence is None else np.asarray(confidence, float)
    cols["success"] = np.ones(n) if success is None else np.asarray(success, float)
    cols["gaze_angle_x"] = rng.normal(0, 0.2, n)
    cols["pose_Rx"] = rng.normal(0, 0.1, n)
    for c in AU_R:
        cols[c] = rng.uniform(0, 5, n).round(2)
    for c in AU_C:
        cols[c] = rng.integers(0, 2, n).astype(float)
    header = ", ".join(cols)
    lines = [header] + [", ".join(f"{cols[c][i]:g}" for c in cols) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return cols


def test_openface_functionals_over_valid_frames(tmp_path):
    success = [1, 1, 0, 1, 1, 1, 0, 1, 1, 1]
    confidence = [0.95, 0.5, 0.95, 0.9, 0.79, 0.8, 0.99, 0.97, 0.96, 0.85]
    cols = write_openface_csv(tmp_path / "x.csv", 10, success=success, confidence=confidence)
    valid = (np.array(success) == 1) & (np.array(confidence) >= 0.8)
    assert valid.sum() == 6
    vector, names = openface_functionals(tmp_path / "x.csv", stats=("mean", "std", "max"))
    au = AU_R + AU_C
    assert names == [f"{c}_{s}" for s in ("mean", "std", "max") for c in au]
    assert vector.shape == (3 * 35,) and vector.dtype == np.float32
    data = np.stack([cols[c][valid] for c in au], axis=1)
    expected = np.concatenate([data.mean(0), data.std(0), data.max(0)])
    assert np.allclose(vector, expected, atol=1e-5)
    # a lower threshold admits the 0.5 and 0.79 frames: the means change
    looser, _ = openface_functionals(tmp_path / "x.csv", OpenFaceConfig(min_confidence=0.0))
    data_all = np.stack([cols[c][np.array(success) == 1] for c in au], axis=1)
    assert np.allclose(looser[:35], data_all.mean(0), atol=1e-5)


def test_openface_means_follow_the_au_means_table_layout(tmp_path):
    write_openface_csv(tmp_path / "x.csv", 5)
    _, names = openface_functionals(tmp_path / "x.csv", stats=("mean",))
    assert [n.removesuffix("_mean") for n in names] == list(AU_MEANS_COLUMNS)


def test_openface_extra_columns_and_old_format_without_face_id(tmp_path):
    cols = write_openface_csv(tmp_path / "x.csv", 4, with_face_id=False)
    vector, names = openface_functionals(tmp_path / "x.csv", include=("pose_R", "gaze_angle"), stats=("median",))
    assert names == ["gaze_angle_x_median", "pose_Rx_median"]
    assert np.allclose(vector, [np.median(cols["gaze_angle_x"]), np.median(cols["pose_Rx"])], atol=1e-6)


def test_openface_no_valid_frame_is_explicit(tmp_path):
    write_openface_csv(tmp_path / "x.csv", 6, success=[0, 0, 1, 1, 0, 0], confidence=[0.9, 0.9, 0.3, 0.2, 0.9, 0.9])
    with pytest.raises(FeatureError) as info:
        openface_functionals(tmp_path / "x.csv")
    assert "no frame of 6 has success == 1 and confidence >= 0.8" in str(info.value)
    assert str(tmp_path / "x.csv") in str(info.value)
    vector, names = openface_functionals(tmp_path / "x.csv", on_empty="nan")
    assert vector.shape == (70,) and np.isnan(vector).all() and len(names) == 70


def test_openface_several_faces(tmp_path):
    cols = write_openface_csv(tmp_path / "x.csv", 6, face_id=[0, 1, 0, 1, 0, 1])
    with pytest.raises(DatasetError, match=r"holds 2 faces \(face_id \[0, 1\]\)"):
        openface_functionals(tmp_path / "x.csv")
    vector, _ = openface_functionals(tmp_path / "x.csv", face_id=1, stats=("mean",))
    assert np.isclose(vector[0], cols["AU01_r"][[1, 3, 5]].mean(), atol=1e-5)
    with pytest.raises(DatasetError, match="no face_id 2"):
        openface_functionals(tmp_path / "x.csv", face_id=2)


def test_openface_bad_files_and_config(tmp_path):
    (tmp_path / "nocols.csv").write_text("frame, AU01_r\n1, 0.5\n")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) confidence, success;"):
        openface_functionals(tmp_path / "nocols.csv")
    (tmp_path / "noau.csv").write_text("frame, confidence, success, pose_Rx\n1, 0.9, 1, 0.1\n")
    with pytest.raises(DatasetError, match="no column starting with"):
        openface_functionals(tmp_path / "noau.csv")
    (tmp_path / "bin.csv").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(DatasetError, match="binary file"):
        openface_functionals(tmp_path / "bin.csv")
    with pytest.raises(DatasetError, match="does not exist"):
        openface_functionals(tmp_path / "missing.csv")
    write_openface_csv(tmp_path / "cut.csv", 5)
    text = (tmp_path / "cut.csv").read_text()
    (tmp_path / "cut.csv").write_text(text[: text.rstrip().rfind(",")] + "\n")  # an interrupted write
    with pytest.raises(DatasetError, match="line 6 column 'AU45_c': '' is not a number"):
        openface_functionals(tmp_path / "cut.csv")
    with pytest.raises(ConfigError, match="unknown statistic"):
        OpenFaceConfig(stats=("mean", "kurtosis"))
    with pytest.raises(ConfigError, match="unknown option"):
        openface_functionals(tmp_path / "noau.csv", min_confidense=0.5)


def test_openface_table_attaches_to_audio_takes(tmp_path):
    of = tmp_path / "openface"
    of.mkdir()
    write_openface_csv(of / "01-01-07-02-02-01-01.csv", 8, seed=1)
    write_openface_csv(of / "01-01-03-01-01-01-02.csv", 8, seed=2)
    write_openface_csv(of / "01-01-04-01-01-01-02.csv", 3, success=[0, 0, 0])  # no face found
    write_openface_csv(of / "webcam.csv", 3)  # not a RAVDESS name
    (of / "sub").mkdir()
    write_openface_csv(of / "sub" / "02-01-07-02-02-01-01.csv", 3)  # the video-only file of a take already read
    table, skipped = openface_table(of, dataset="ravdess", stats=("mean",))
    assert table.takes == ("01-03-01-01-01-02", "01-07-02-02-01-01")
    assert table.dim == 35 and table.source is None
    reasons = {s.path.name: s.reason for s in skipped}
    assert set(reasons) == {"01-01-04-01-01-01-02.csv", "webcam.csv", "02-01-07-02-02-01-01.csv"}
    assert "no frame of 3" in reasons["01-01-04-01-01-01-02.csv"]
    assert "already has a row" in reasons["02-01-07-02-02-01-01.csv"]
    touch(tmp_path / "audio", "03-01-07-02-02-01-01.wav", "03-01-04-01-01-01-02.wav")
    result = attach(read_ravdess(tmp_path / "audio").clips, table)
    assert [c.take for c in result.clips] == ["01-07-02-02-01-01"]
    assert [c.take for c in result.missing] == ["01-04-01-01-01-02"]
    single, _ = openface_functionals(of / "01-01-07-02-02-01-01.csv", stats=("mean",))
    assert np.array_equal(result.x[0], single)
