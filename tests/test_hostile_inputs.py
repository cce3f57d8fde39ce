"""The hostile-input corpus: bad or awkward inputs and destinations given to ``avemo predict`` and ``avemo info``.

Every input is generated here. Each case asserts the one line the user reads (and the exit
code), and that nothing is left half-written: the folders involved hold exactly what they held
before (no output, no temporary file). The bundled predictor is loaded once for the module; cases
that must fail before the model loads replace it with one that fails the test when it is loaded.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avemo.errors import AvemoError
from avemo.media.synth import write_audio_streams, write_clip

pytestmark = pytest.mark.usefixtures("shared_predictor")


@pytest.fixture
def no_model(monkeypatch):
    """For checks that must happen before the model loads: loading it fails the test."""
    from avemo.inference.predictor import Predictor

    def refuse(cls, **_):
        raise AssertionError("the model was loaded although the command line was already known to be wrong")

    monkeypatch.setattr(Predictor, "default", classmethod(refuse))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    # "speech": the VAD hears most of it (of the harmonic "voice" only about 0.6 s, under the bundle's
    # min_speech, whose "too little speech" warning would join the stderr these tests read)
    write_clip(root / "voice.wav", duration=1.6, audio="speech")
    write_clip(root / "silent.wav", duration=1.0, audio="silence")
    write_clip(root / "one_frame.mp4", duration=0.04, fps=25, size=(160, 120))
    (root / "empty.mp4").write_bytes(b"")
    (root / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    whole = write_clip(root / "whole.mp4", duration=2.0, size=(96, 72)).read_bytes()
    (root / "no_index.mp4").write_bytes(whole[: len(whole) // 2])  # the moov box is at the end
    (root / "other.wav").write_bytes((root / "voice.wav").read_bytes())
    (root / "playlist.mp4").write_text("ffconcat version 1.0\nfile 'other.wav'\n")
    y = (0.3 * np.sin(np.arange(24000) * 2 * np.pi * 220 / 16000)).astype(np.float32)
    y[4000:4100] = np.nan
    sf.write(root / "nan_float.wav", y, 16000, subtype="FLOAT")
    write_audio_streams(root / "muted_first.mkv", ("silence", "voice"), default=0)
    clip = bytearray(write_clip(root / "four_seconds.mp4", duration=4.0, fps=30, size=(160, 120)).read_bytes())
    middle = len(clip) // 2
    clip[middle : middle + 3000] = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    (root / "damaged_middle.mp4").write_bytes(bytes(clip))  # a bad sector's worth of noise
    whole_mkv = write_clip(root / "four_seconds.mkv", duration=4.0, fps=30, size=(160, 120)).read_bytes()
    (root / "cut.mkv").write_bytes(whole_mkv[: int(len(whole_mkv) * 0.3)])  # an interrupted copy
    whole_flv = write_clip(root / "two_seconds.flv", duration=2.0, fps=30, size=(160, 120), audio="speech").read_bytes()
    (root / "cut.flv").write_bytes(whole_flv[: int(len(whole_flv) * 0.55)])  # a CREMA-D-like clip, cut
    whole_wav = write_clip(root / "four_seconds.wav", duration=4.0, audio="voice").read_bytes()
    (root / "cut.wav").write_bytes(whole_wav[: int(len(whole_wav) * 0.3)])  # its RIFF header still says 4 s
    (root / "no_media").mkdir()
    (root / "no_media" / "notes.txt").write_text("not media\n")
    return root


def _one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert err.startswith("avemo: error: ") and err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.mp4", "missing.mp4: file not found"),
        ("empty.mp4", "empty.mp4: file is empty (0 bytes)"),
        ("garbage.mp4", "garbage.mp4: not a media file: its first bytes are those of no supported container"),
        ("playlist.mp4", "playlist.mp4: not a media file"),  # FFmpeg would read other.wav through it
        ("no_index.mp4", "no_index.mp4: not a media file, or a corrupt container"),
        ("nan_float.wav", "nan_float.wav: the audio track holds NaN or infinite samples"),
        ("no_media", "no media files"),
    ],
)
def test_a_bad_input_is_one_line_naming_the_file(corpus, avemo_main, name, message):
    before = _listing(corpus)
    code, out, err = avemo_main("predict", corpus / name, "--format", "json")
    _one_line_error(code, err, message)
    assert out == "" and _listing(corpus) == before


def test_a_silent_file_is_a_result_without_emotion(corpus, avemo_main):
    code, out, err = avemo_main("predict", corpus / "silent.wav", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["emotion"] is None and result["probabilities"] is None and result["uncertain"] is True
    assert result["modalities"]["audio"] == {
        "used": False, "reason": "the audio track is silent (peak level -inf dBFS): no speech", "probabilities": None}
    assert result["timeline"] and all(w["emotion"] is None and w["uncertain"] for w in result["timeline"])


def test_a_batch_goes_past_bad_inputs_and_lists_them(corpus, avemo_main, tmp_path):
    out_file = tmp_path / "batch.json"
    code, _, err = avemo_main("predict", corpus / "voice.wav", corpus / "garbage.mp4",
                              corpus / "nan_float.wav", corpus / "muted_first.mkv", "--format", "json", "--out", out_file)
    assert code == 1
    assert [Path(p["path"]).name for p in json.loads(out_file.read_text())] == ["voice.wav", "muted_first.mkv"]
    assert "Not predicted (2 of 4):" in err
    assert f"  {corpus / 'nan_float.wav'}: the audio track holds NaN or infinite samples" in err
    assert _listing(tmp_path) == ["batch.json"]


def test_a_damaged_middle_is_predicted_around_the_damage_and_said(corpus, avemo_main):
    code, out, err = avemo_main("predict", corpus / "damaged_middle.mp4", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["duration"] == pytest.approx(4.0, abs=0.1)
    assert any("video packets could not be decoded and were skipped" in w for w in result["warnings"])
    assert f"avemo: warning: {corpus / 'damaged_middle.mp4'}: " in err


def test_a_truncated_file_reports_what_was_decoded(corpus, avemo_main):
    code, out, err = avemo_main("predict", corpus / "cut.mkv", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["duration"] < 1.5  # the header says 4.06 s; about a second of it decodes
    assert result["timeline"][-1]["end"] == pytest.approx(result["duration"], abs=1e-3)
    assert any(w.startswith("truncated or damaged: the header declares 4.06 s") for w in result["warnings"])


def test_a_truncated_flv_reports_the_length_that_decodes_as_info_does(corpus, avemo_main):
    """The length of a cut file was the last analysed frame's time plus an analysis step (1/8 s), past the
    end of both streams (a cut CREMA-D clip: 1.4 s, where 1.33 s decodes): now where its video's last
    frame or its audio ends, the length avemo info reports."""
    code, out, err = avemo_main("predict", corpus / "cut.flv", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    info = json.loads(avemo_main("info", corpus / "cut.flv", "--json", "--no-faces")[1])
    assert result["duration"] == pytest.approx(info["duration_s"], abs=1e-3)
    assert result["duration"] == pytest.approx(max(_decoded_ends(corpus / "cut.flv")), abs=2e-3)
    assert result["timeline"][-1]["end"] == pytest.approx(result["duration"], abs=1e-3)
    assert result["duration"] < info["header_duration_s"] - 0.5


def _decoded_ends(path: Path) -> tuple[float, float]:
    """Where the audio and the video of ``path`` end in a full decode (until the decoder stops): the
    audio's samples, the last video frame's time plus one frame."""
    import av

    ends = [0.0, 0.0]
    with av.open(str(path)) as container, contextlib.suppress(av.error.FFmpegError):
        for frame in container.decode(audio=0):
            ends[0] = float(frame.time) + frame.samples / frame.sample_rate
    with av.open(str(path)) as container, contextlib.suppress(av.error.FFmpegError):
        for frame in container.decode(video=0):
            ends[1] = float(frame.time) + 1 / float(container.streams.video[0].average_rate)
    return ends[0], ends[1]


def test_a_truncated_wav_file_is_said_to_be_truncated(corpus, avemo_main):
    """FFmpeg reads a cut WAV file as a shorter one; its RIFF header's data size tells it was cut."""
    code, out, err = avemo_main("predict", corpus / "cut.wav", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["duration"] == pytest.approx(1.2, abs=0.05)  # what is there
    truncated, *abstention = result["warnings"]  # and "too little speech" for the 1.2 s of synthetic voice
    assert truncated == "truncated or damaged: the header declares 4.00 s of audio, only 1.20 s could be decoded"
    assert all(w.startswith("too little speech") for w in abstention)
    code, out, err = avemo_main("info", corpus / "cut.wav", "--json")
    report = json.loads(out)
    assert (report["duration_s"], report["header_duration_s"]) == (pytest.approx(1.2, abs=0.05), 4.0)
    assert report["warnings"] == [truncated]
    code, out, err = avemo_main("info", corpus / "four_seconds.wav", "--json")  # the whole file: one length
    assert (json.loads(out)["header_duration_s"], json.loads(out)["warnings"], err) == (None, [], "")


def test_of_two_audio_streams_the_one_with_sound_is_predicted(corpus, avemo_main):
    code, out, _ = avemo_main("predict", corpus / "muted_first.mkv", "--format", "json")
    assert code == 0
    assert json.loads(out)["modalities"]["audio"]["used"] is True  # stream 0 is silent, stream 1 the voice


def test_csv_never_writes_a_live_formula(corpus, monkeypatch, avemo_main, tmp_path):
    monkeypatch.chdir(tmp_path)
    Path("=HYPERLINK(1).wav").write_bytes((corpus / "voice.wav").read_bytes())
    code, out, _ = avemo_main("predict", "=HYPERLINK(1).wav", "--format", "csv")
    assert code == 0
    paths = {row["path"] for row in csv.DictReader(io.StringIO(out))}
    assert paths == {"'=HYPERLINK(1).wav"}  # shown as text by spreadsheets, never run


def test_a_file_name_is_shown_as_it_is_not_as_markup(corpus, monkeypatch, avemo_main, tmp_path):
    monkeypatch.chdir(tmp_path)
    Path("[bold]take[red].wav").write_bytes((corpus / "voice.wav").read_bytes())
    code, out, _ = avemo_main("predict", "[bold]take[red].wav")
    assert code == 0 and "[bold]take[red].wav (1.6 s):" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "0"], "window must be a finite positive number of seconds, got 0.0"),
        (["--window", "nan"], "window must be a finite positive number of seconds, got nan"),
        (["--window", "inf"], "window must be a finite positive number of seconds, got inf"),
        (["--hop", "inf"], "hop must be a finite positive number of seconds, got inf"),
        (["--hop", "-1"], "hop must be a finite positive number of seconds, got -1.0"),
        (["--window", "0.25", "--hop", "0.001"], "hop must be at least 0.01 s (the shortest timeline step), got 0.001"),
        (["--window", "1", "--hop", "2"], "hop must be at most the window (1 s; a longer one leaves gaps between the "
                                          "windows), got 2"),
        (["--hop", "1.5"], "hop must be at most the model's window of 1 s (pass --window to change it; a longer hop "
                           "leaves gaps between the windows), got 1.5"),  # the models' own window: said so
        (["--window", "0.005"], "window must be at least 0.01 s (the shortest timeline step), got 0.005"),
    ],
)
def test_a_bad_window_is_refused_before_the_model_loads(corpus, avemo_main, no_model, args, message):
    code, _, err = avemo_main("predict", corpus / "voice.wav", *args)
    _one_line_error(code, err, message)


def test_a_timeline_with_too_many_rows_is_refused_before_the_analysis(corpus, monkeypatch, avemo_main, predictor):
    """The library's bound (MAX_ROWS, lowered here so that a short clip crosses it) holds for the
    CLI and the Python API alike, and is checked before the experts run."""
    from avemo.errors import ConfigError
    from avemo.inference import windows

    monkeypatch.setattr(windows, "MAX_ROWS", 20)

    def refuse(*_):
        raise AssertionError("the file was analysed although its timeline was already known to be too long")

    monkeypatch.setattr(type(predictor._backend), "run", refuse)
    code, out, err = avemo_main("predict", corpus / "voice.wav", "--window", "0.25", "--hop", "0.05")
    _one_line_error(code, err, "voice.wav: a hop of 0.05 s over 2 s makes 33 timeline windows; at most 20 are "
                               "allowed (use a hop of at least 0.09 s)")
    with pytest.raises(ConfigError, match="makes 33 timeline windows; at most 20"):
        predictor.predict(corpus / "voice.wav", hop=0.05)
    with pytest.raises(ConfigError, match="hop must be at least 0.01 s"):
        predictor.predict(corpus / "voice.wav", hop=0.001)
    with pytest.raises(ConfigError, match=r"hop must be at most the window \(1 s"):  # the Python API as the CLI
        predictor.predict(corpus / "voice.wav", window=1, hop=2)


def test_the_server_cannot_be_looser_than_the_library():
    from avemo.errors import ConfigError
    from avemo.serving.settings import ServeSettings

    with pytest.raises(ConfigError, match=r"min_hop must lie in 0.01 \(the library's shortest hop\)"):
        ServeSettings(min_hop=0.001)
    with pytest.raises(ConfigError, match=r"max_timeline_rows must lie in 1..100000"):
        ServeSettings(max_timeline_rows=1_000_000)
    assert ServeSettings(min_hop=0.5, max_timeline_rows=50).min_hop == 0.5  # stricter is fine


# ----------------------------------------------------------------------------- bad destinations
def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in. Root writes anywhere it has permissions for, so
    as root it is sysfs's top folder (no one may create files there); otherwise a folder set to 0500."""
    if os.geteuid() == 0:
        if not Path("/sys").is_dir():
            pytest.skip("running as root without /sys: no folder root cannot write")
        return Path("/sys")
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


def _bad_destination(tmp_path: Path, where: str) -> tuple[Path, Path, tuple]:
    """A file, a folder and a read-only folder in ``tmp_path``; (the destination ``where`` names, with
    READ_ONLY for the read-only folder; that folder; the listings of both folders before the command)."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    read_only = _read_only_folder(tmp_path)
    before = _listing(tmp_path), _listing(read_only)
    target = where.replace("READ_ONLY", str(read_only))
    return (tmp_path / target if not target.startswith("/") else Path(target)), read_only, before


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing/out.json", "the folder {tmp}/missing does not exist"),
        ("a_file/out.json", "cannot write the output here (Not a directory)"),
        ("a_folder", "a_folder: is a folder; give the name of the file to write"),
        ("READ_ONLY/out.json", "cannot write the output in READ_ONLY ("),  # permission denied, or a read-only fs
    ],
)
def test_a_bad_destination_is_refused_before_the_model_loads(corpus, avemo_main, no_model, tmp_path,
                                                             where, message):
    path, read_only, before = _bad_destination(tmp_path, where)
    code, _, err = avemo_main("predict", corpus / "voice.wav", "--out", path)
    _one_line_error(code, err, message.format(tmp=tmp_path).replace("READ_ONLY", str(read_only)))
    assert (_listing(tmp_path), _listing(read_only)) == before


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_disk_is_one_line(corpus, avemo_main):
    code, out, err = avemo_main("predict", corpus / "voice.wav", "--format", "json", "--out", "/dev/full")
    _one_line_error(code, err, "/dev/full: cannot write the output (No space left on device)")


def test_a_full_file_system_is_refused_before_the_model_loads(corpus, monkeypatch, avemo_main, no_model, tmp_path):
    """A full disk under a regular file is found when the output is opened, not after the work."""
    import os
    from types import SimpleNamespace

    from avemo import output_file

    full, real = tmp_path / "full", os.statvfs
    full.mkdir()
    monkeypatch.setattr(output_file.os, "statvfs", lambda p: SimpleNamespace(f_blocks=1000, f_bfree=0, f_bavail=0)
                        if Path(p) == full else real(p))
    code, _, err = avemo_main("predict", corpus / "voice.wav", "--format", "json", "--out", full / "out.json")
    _one_line_error(code, err, f"out.json: cannot write the output in {full} (No space left on device)")
    assert _listing(full) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(corpus, monkeypatch, avemo_main, tmp_path):
    from avemo import output_file

    target = tmp_path / "result.json"
    target.write_text("the previous result\n")

    def fail(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output_file.os, "fsync", fail)  # the disk fills while the result is written
    code, _, err = avemo_main("predict", corpus / "voice.wav", "--format", "json", "--out", target)
    _one_line_error(code, err, "result.json: cannot write the output (No space left on device)")
    assert target.read_text() == "the previous result\n" and _listing(tmp_path) == ["result.json"]


def test_an_output_replaces_the_file_whole_with_ordinary_permissions(corpus, avemo_main, tmp_path):
    target = tmp_path / "result.csv"
    code, _, _ = avemo_main("predict", corpus / "voice.wav", "--format", "csv", "--out", target)
    assert code == 0 and target.read_text().startswith("path,level,")
    mask = os.umask(0)
    os.umask(mask)
    assert (target.stat().st_mode & 0o777) == 0o666 & ~mask  # not mkstemp's private 0600
    assert _listing(tmp_path) == ["result.csv"]


# ------------------------------------------- the destinations of extract, evaluate and benchmark
#: a suite of one quick model for `avemo benchmark` on the generated corpus (fold 1 of the plan
#: "ravdess" tests speaker 01, validates on 05 and trains on 07)
TINY_SUITE = """name = "tiny"
title = "one quick model"
dataset = "ravdess"
plan = "ravdess"
[train]
epochs = 1
[groups]
"audio only" = ["egemaps_mlp"]
[[entries]]
models = ["egemaps_mlp"]
"""


@pytest.fixture(scope="module")
def generated(make_ravdess, tmp_path_factory) -> dict[str, Path]:
    """A generated RAVDESS-layout corpus, a checkpoint trained on it, and the tiny suite."""
    from typer.testing import CliRunner

    from avemo.cli import app

    work = tmp_path_factory.mktemp("generated")
    corpus = make_ravdess(("01", "05", "07"))
    result = CliRunner().invoke(app, ["train", "-d", "ravdess", "-r", str(corpus), "-m", "egemaps_mlp", "--epochs", "1",
                                      "--out", str(work / "run"), "--cache", str(work / "cache"), "-j", "1"])
    assert result.exit_code == 0, result.output
    (work / "tiny.toml").write_text(TINY_SUITE)
    return {"corpus": corpus, "checkpoint": work / "run", "suite": work / "tiny.toml", "cache": work / "cache"}


def _command(name: str, corpus: Path, generated: dict[str, Path], cache: Path) -> list:
    """``avemo ...`` of each command whose destination is checked; the destination option comes last."""
    evaluate = ["evaluate", "-c", generated["checkpoint"], "-r", generated["corpus"], "-j", "1", "--cache", cache]
    return {
        "extract --summary": ["extract", corpus / "voice.wav", "-f", "mfcc", "--cache", cache, "--summary"],
        "extract --out": ["extract", corpus / "voice.wav", "-f", "mfcc", "--cache", cache, "--out"],
        "evaluate --json": [*evaluate, "--json"],
        "evaluate --plots": [*evaluate, "--plots"],
        "benchmark --out": ["benchmark", generated["suite"], "-r", generated["corpus"], "--folds", "1", "--cache", cache,
                            "--out"],
        "train --out": ["train", "-d", "ravdess", "-r", generated["corpus"], "-m", "egemaps_mlp", "--epochs", "1",
                        "-j", "1", "--cache", cache, "--out"],
    }[name]


@pytest.mark.parametrize(
    ("command", "where", "message"),
    [
        *[(command, where, message) for command in ("extract --summary", "evaluate --json") for where, message in (
            ("missing/out.json", "the folder {tmp}/missing does not exist"),
            ("a_file/out.json", "cannot write the output here (Not a directory)"),
            ("a_folder", "a_folder: is a folder; give the name of the file to write"),
            ("READ_ONLY/out.json", "cannot write the output in READ_ONLY ("),
        )],
        *[(command, where, message) for command in ("extract --out", "evaluate --plots", "benchmark --out",
                                                    "train --out")
          for where, message in (
            ("a_file", "a_file: is a file; give the name of a folder"),
            ("a_file/out", "a_file/out: cannot "),  # cannot create the folder, or write in its parent
            ("READ_ONLY/out", "READ_ONLY/out: cannot "),
        )],
        *[(command, "READ_ONLY", "cannot write the output in READ_ONLY (")
          for command in ("evaluate --plots", "benchmark --out", "train --out")],
    ],
)
def test_a_bad_destination_of_a_long_command_is_refused_before_the_work(corpus, generated, avemo_main,
                                                                         tmp_path, command, where, message):
    """The work (extraction into --cache, training) never starts: the folders are as they were."""
    path, read_only, before = _bad_destination(tmp_path, where)
    code, _, err = avemo_main(*_command(command, corpus, generated, tmp_path / "cache"), path)
    _one_line_error(code, err, message.format(tmp=tmp_path).replace("READ_ONLY", str(read_only)))
    assert (_listing(tmp_path), _listing(read_only)) == before


@pytest.mark.parametrize("command", ["extract --summary", "train --out", "evaluate --json", "benchmark --out"])
def test_a_feature_cache_that_is_a_file_is_one_line(corpus, generated, avemo_main, tmp_path, command):
    (tmp_path / "a_file").write_text("x")
    code, _, err = avemo_main(*_command(command, corpus, generated, tmp_path / "a_file"), tmp_path / "out")
    _one_line_error(code, err, "a_file: is a file; give the name of a folder")


def test_a_read_only_feature_cache_is_refused_before_the_work(corpus, avemo_main, tmp_path):
    read_only = _read_only_folder(tmp_path)
    code, _, err = avemo_main("extract", corpus / "voice.wav", "-f", "mfcc", "--cache", read_only)
    _one_line_error(code, err, f"{read_only}: cannot write the output in {read_only} (")


def test_a_feature_cache_on_a_full_disk_stops_extract_with_one_line(monkeypatch, avemo_main, tmp_path):
    """The disk fills up after the first entry: the run stops there, with the cache's error (not one
    failure per file), and the entry written before stays whole."""
    import errno

    from avemo.cache import FeatureCache, store

    for i in range(3):
        write_clip(tmp_path / "clips" / f"{i}.wav", duration=0.5 + 0.2 * i, audio="voice")
    real, writes = store.os.fsync, []

    def fsync(fd):
        if writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        writes.append(fd)
        return real(fd)

    monkeypatch.setattr(store.os, "fsync", fsync)
    code, _, err = avemo_main("extract", tmp_path / "clips", "-f", "mfcc", "-j", "1", "--cache", tmp_path / "cache")
    _one_line_error(code, err, ".npz: cannot write cache entry (No space left on device)")
    entries = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(entries) == 1 and FeatureCache(tmp_path / "cache").get(entries[0].stem) is not None


@pytest.mark.parametrize("command", ["extract --out", "train --out", "evaluate --plots", "benchmark --out"])
def test_a_refusal_after_the_destination_was_made_leaves_no_folder(corpus, generated, avemo_main, tmp_path, command):
    """The output folder (and a missing parent) is made before the feature cache is refused: the
    folders the command made are removed again; a folder that was there stays."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "there").mkdir()
    for destination in (tmp_path / "new" / "out", tmp_path / "there"):
        code, _, err = avemo_main(*_command(command, corpus, generated, tmp_path / "a_file"), destination)
        _one_line_error(code, err, "a_file: is a file; give the name of a folder")
    assert _listing(tmp_path) == ["a_file", "there"] and _listing(tmp_path / "there") == []


@pytest.mark.parametrize(("command", "file_option"), [("extract --out", "--summary"), ("evaluate --plots", "--json")])
def test_a_file_may_go_into_the_folder_a_folder_option_makes(corpus, generated, avemo_main, tmp_path, command,
                                                             file_option):
    """The folder option's folder (and its missing parent) is made before the file option is checked."""
    new = tmp_path / "new"
    code, _, err = avemo_main(*_command(command, corpus, generated, generated["cache"]), new / "folder",
                              file_option, new / "summary.json")
    assert code == 0, err
    assert json.loads((new / "summary.json").read_text()) and (new / "folder").is_dir()


@pytest.mark.parametrize(("command", "function"), [("train --out", "avemo.training.train_run"),
                                                   ("benchmark --out", "avemo.evaluation.benchmark.run_benchmark")])
def test_an_interrupted_command_leaves_no_empty_folder_it_made(corpus, generated, monkeypatch, avemo_main, tmp_path,
                                                               command, function):
    def interrupt(*_, out_dir=None, **__):
        if out_dir is not None and out_dir.name == "kept":  # a run that wrote something first
            (out_dir / "history.csv").write_text("epoch\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(function, interrupt)
    (tmp_path / "there").mkdir()
    for destination in (tmp_path / "new" / "out", tmp_path / "there", tmp_path / "kept"):
        code, _, err = avemo_main(*_command(command, corpus, generated, generated["cache"]), destination)
        assert code == 130 and err.rstrip().endswith("avemo: interrupted"), err
    assert _listing(tmp_path) == (["kept", "there"] if command == "train --out" else ["there"])
    assert _listing(tmp_path / "there") == []


def test_a_failed_export_of_the_model_leaves_no_folder(monkeypatch, avemo_main, tmp_path):
    def fail(_bundle, out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        raise AvemoError("cannot export the audio expert (No space left on device)", out_dir)

    monkeypatch.setattr("avemo.inference.export.export_bundle", fail)
    code, _, err = avemo_main("export", "--out", tmp_path / "new" / "onnx")
    _one_line_error(code, err, "cannot export the audio expert")
    assert _listing(tmp_path) == []


def test_a_failed_export_is_one_line_and_leaves_nothing(corpus, monkeypatch, avemo_main, tmp_path):
    import numpy

    def full(*_, **__):
        raise OSError(28, "No space left on device")

    extract = ["extract", corpus / "voice.wav", "-f", "mfcc", "--cache", tmp_path / "cache"]
    assert avemo_main(*extract)[0] == 0  # the features are in the cache: only the export writes
    monkeypatch.setattr(numpy, "savez", full)  # the disk fills while the features are exported
    code, _, err = avemo_main("extract", corpus / "voice.wav", "-f", "mfcc", "--cache", tmp_path / "cache",
                              "--out", tmp_path / "export")
    _one_line_error(code, err, "export: cannot export the features (No space left on device)")
    assert _listing(tmp_path) == ["cache"]


@pytest.mark.parametrize("command", ["extract --summary", "evaluate --json"])
def test_a_summary_is_written_whole_when_the_work_ends(corpus, generated, avemo_main, tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = avemo_main(*_command(command, corpus, generated, generated["cache"]), out / "summary.json")
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text()) and _listing(out) == ["summary.json"]


def test_a_summary_naming_the_labels_csv_is_refused_before_the_work(corpus, generated, avemo_main, tmp_path):
    """``extract --summary labels.csv`` (``evaluate --json`` too) replaced the labels it had read with
    its summary: the --labels file, or the folder's own labels.csv."""
    import shutil

    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(corpus / "voice.wav", folder / "a.wav")
    labels = folder / "labels.csv"
    labels.write_text("path,emotion,speaker\na.wav,happy,s1\n")
    extract = ["extract", folder, "--dataset", "folder", "-f", "mfcc", "--cache", tmp_path / "cache"]
    evaluate = ["evaluate", "-c", generated["checkpoint"], "-r", folder, "--dataset", "folder", "--cache", tmp_path / "c"]
    for args, what in (([*extract, "--labels", labels, "--summary"], "the --labels file"),
                       ([*extract, "--summary"], "the dataset's labels.csv"),
                       ([*evaluate, "--json"], "the dataset's labels.csv")):
        code, _, err = avemo_main(*args, labels)
        option = args[-1]
        assert (code, err) == (2, f"avemo: error: {option} {labels}: is {what}; writing the output there would "
                                  "replace it: give another file name\n")
    assert labels.read_text() == "path,emotion,speaker\na.wav,happy,s1\n" and not (tmp_path / "cache").exists()


# ----------------------------------------------------------------------------- avemo info
def test_info_on_a_one_frame_video_checks_one_frame(avemo_main, corpus, capfd):
    code, out, err = avemo_main("info", corpus / "one_frame.mp4", "--json", capture=capfd)  # capfd: native writes too
    assert code == 0
    report = json.loads(out)
    assert report["faces"]["frames_checked"] == 1
    assert "TensorFlow Lite" not in err and "Feedback manager" not in err and "absl" not in err


def test_info_on_a_truncated_file_shows_what_decodes_and_warns_as_predict(corpus, avemo_main):
    """The header says 4.06 s, about a second decodes: both lengths, and predict's warnings as
    'avemo: warning:' lines (not log lines); an intact file has one length and no warning."""
    code, out, err = avemo_main("info", corpus / "cut.mkv", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["duration_s"] < 1.5 and report["header_duration_s"] == pytest.approx(4.064)
    assert err.splitlines() == [f"avemo: warning: {corpus / 'cut.mkv'}: {w}" for w in report["warnings"]]
    assert [w.split(",")[0] for w in report["warnings"]] == [  # each track's own length (its DURATION tag)
        f"truncated or damaged: the header declares {length} s of {what}" for length, what in (("4.06", "audio"),
                                                                                                ("4.00", "video"))]
    # the frames too: those that decode, and the header's (30 fps x 4 s)
    assert report["video"]["frames"] == _frames_that_decode(corpus / "cut.mkv") < 120 <= report["video"]["header_frames"]
    assert report["video"]["frames"] == pytest.approx(report["duration_s"] * 30, abs=1.5)
    code, out, err = avemo_main("info", corpus / "cut.mkv", "--no-faces")
    assert code == 0 and re.search(r"header_duration_s +│ 4\.064", out) and "warnings" not in out
    assert err.count("\n") == 2 and re.search(rf"video\.header_frames +│ {report['video']['header_frames']} ", out)
    code, out, err = avemo_main("info", corpus / "four_seconds.mkv", "--json")
    report = json.loads(out)
    assert code == 0 and err == "" and report["warnings"] == [] and report["header_duration_s"] is None
    assert report["duration_s"] == pytest.approx(4.064)
    assert report["video"]["frames"] == _frames_that_decode(corpus / "four_seconds.mkv")
    assert report["video"]["header_frames"] is None


def _frames_that_decode(path: Path) -> int:
    """The video frames a full decode of ``path`` gives (until the decoder stops)."""
    import av

    count = 0
    with av.open(str(path)) as container, contextlib.suppress(av.error.FFmpegError):
        for _ in container.decode(video=0):
            count += 1
    return count


def test_info_lists_every_stream_and_which_are_used(corpus, avemo_main):
    code, out, _ = avemo_main("info", corpus / "muted_first.mkv", "--json")
    assert code == 0
    streams = json.loads(out)["streams"]
    assert [(s["index"], s["kind"], s["default"], s["used"]) for s in streams] == [
        (0, "audio", True, False), (1, "audio", False, True)]


def _with_language(src: Path, dst: Path, language: str) -> Path:
    """``src``'s first audio stream remuxed into Matroska with a language tag."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="matroska") as out:
        stream = out.add_stream_from_template(inp.streams.audio[0])
        stream.metadata["language"] = language
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


def test_info_and_extract_print_names_with_brackets_as_they_are(corpus, avemo_main, tmp_path, monkeypatch):
    """File names, tags and stream lines are text, not console markup: "take [final].wav" and a
    stream's "[eng]" used to vanish from the tables ("take .wav")."""
    clip = _with_language(corpus / "muted_first.mkv", tmp_path / "take [v2].mkv", "eng")
    code, out, err = avemo_main("info", clip, "--no-faces")
    assert code == 0, err
    assert "take [v2].mkv" in out and "1 channel [eng]" in out
    (tmp_path / "bad [final].wav").write_bytes(b"RIFF junk")
    monkeypatch.chdir(tmp_path)  # a short relative name: the table does not wrap it
    code, out, err = avemo_main("extract", "bad [final].wav", "-f", "mfcc", "--cache", tmp_path / "c")
    assert code == 1 and "│ bad [final].wav " in err


def test_extract_shows_progress_lines_when_stderr_is_not_a_terminal(corpus, avemo_main, tmp_path, monkeypatch):
    """Only a terminal got a progress bar: a long extract, train or benchmark written to a log said
    nothing until it ended (MELD's text features: 140 s)."""
    from avemo.cli import progress

    monkeypatch.setattr(progress, "PROGRESS_EVERY", 0.0)  # a line at every step
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("voice.wav", "silent.wav"):
        (folder / name).write_bytes((corpus / name).read_bytes())
    code, _, err = avemo_main("extract", folder, "-f", "mfcc", "--cache", tmp_path / "c")
    assert code == 0, err
    assert "avemo: extracting: 1 of 2 (50 %)" in err and "avemo: extracting: 2 of 2 (100 %)" in err


def test_info_shows_a_long_path_whole(corpus, avemo_main, tmp_path):
    """The table cut a long path to the console's width: "/work/shared/data/ravdess/videos/01-01-07-02-0…"."""
    clip = tmp_path / ("a_rather_long_name_of_a_take_recorded_on_a_phone_" * 2 + "end.wav")
    clip.write_bytes((corpus / "voice.wav").read_bytes())
    code, out, err = avemo_main("info", clip, "--no-faces")
    assert code == 0, err
    row = [line for line in out.splitlines() if line.startswith("│ path") or line.startswith("│      ")][:6]
    folded = "".join(line.split("│")[2].strip() for line in row)
    assert folded.startswith(str(clip)) and "…" not in out


def test_info_on_garbage_is_one_line(corpus, avemo_main):
    code, _, err = avemo_main("info", corpus / "garbage.mp4")
    _one_line_error(code, err, "garbage.mp4: not a media file")


def test_info_describes_several_files_and_says_which_it_cannot_read(corpus, avemo_main, tmp_path):
    """``avemo info a.wav b.wav`` (a shell glob) was refused: one FILE. Several files: a table each, or
    a JSON list (as predict's); a bad one is one error line, the others still described, exit code 1."""
    voice, silent, garbage = corpus / "voice.wav", corpus / "silent.wav", corpus / "garbage.mp4"
    code, out, err = avemo_main("info", voice, garbage, silent, "--json", "--no-faces")
    assert code == 1
    assert [r["path"] for r in json.loads(out)] == [str(voice), str(silent)]
    assert err.splitlines() == [f"avemo: error: {garbage}: not a media file: its first bytes are those of no "
                                "supported container (aac, asf, avi, flac, flv, m4a, matroska, mov, mp3, mp4, mpegts, "
                                "ogg, wav, webm)"]
    code, out, err = avemo_main("info", voice, silent, "--no-faces")
    assert code == 0 and err == "" and out.count("┌") == 2
    assert out.index(str(voice)) < out.index(str(silent))
    # a folder: its media files (a list, even of one), as predict; a folder without any: an error line
    folder, empty = tmp_path / "clips", tmp_path / "empty"
    folder.mkdir(), empty.mkdir()
    (folder / "a.wav").write_bytes(voice.read_bytes())
    (folder / "notes.txt").write_text("not media")
    code, out, err = avemo_main("info", folder, "--json", "--no-faces")
    assert code == 0 and [r["path"] for r in json.loads(out)] == [str(folder / "a.wav")]
    code, out, err = avemo_main("info", folder, empty, "--json", "--no-faces")
    assert code == 1 and len(json.loads(out)) == 1
    assert err.startswith(f"avemo: error: {empty}: no media files (") and err.count("\n") == 1
    code, _, err = avemo_main("info", empty)  # nothing to describe: one error, as a single bad file
    assert code == 2 and err.startswith(f"avemo: error: {empty}: no media files (")
    code, out, err = avemo_main("info", voice, voice, "--json", "--no-faces")
    assert code == 0 and len(json.loads(out)) == 1 and err == f"avemo: warning: {voice}: given twice: described once\n"


def test_a_window_sent_alone_cannot_slip_under_the_servers_shortest_hop():
    """A window sent alone may take itself as its hop (shorter than the model's): under a server
    whose min_hop is over its min_window, such a window is refused (no hop could fit it)."""
    from avemo.serving.options import parse_options
    from avemo.serving.responses import ApiError
    from avemo.serving.settings import ServeSettings
    from avemo.serving.uploads import Form

    strict = ServeSettings(min_hop=0.4)
    with pytest.raises(ApiError, match=r"window must lie between 0.4 and 30 s, got 0.3"):
        parse_options(Form([], {"window": ["0.3"]}), strict)
    assert parse_options(Form([], {"window": ["0.3"]}), ServeSettings()).window == 0.3
    assert strict.limits(1.0, 0.5)["window"]["min"] == 0.4
