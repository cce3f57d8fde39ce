"""``avemo predict`` / ``demo`` / ``models``: output formats, batches with failures, one-line errors.

The bundled predictor is loaded once for the module and handed to the commands (they would load
it again on every call otherwise).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avemo.cli import app
from avemo.datasets.labels import LabelSet
from avemo.inference.bundle import read_bundle

pytestmark = pytest.mark.usefixtures("shared_predictor")


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def voice(tmp_path_factory):
    from avemo.media.synth import write_clip

    return write_clip(tmp_path_factory.mktemp("cli") / "voice.wav", duration=1.6, audio="speech")


def test_predict_json_is_the_prediction_contract(voice):
    result = _cli("predict", voice, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["path"] == str(voice) and list(data["probabilities"]) == list(read_bundle()[0].labels)
    assert data["modalities"]["video"]["used"] is False and "audio-only" in data["modalities"]["video"]["reason"]
    assert [w["start"] for w in data["timeline"]] == [0.0, 0.5, 1.0]
    assert data["model"]["name"] == "avemo-default"
    assert isinstance(data["uncertain"], bool) and 0.5 < data["speech"] <= 1.0
    assert all(isinstance(w["uncertain"], bool) and 0.0 <= w["speech"] <= 1.0 for w in data["timeline"])


def test_predict_csv_and_out_file(voice, tmp_path):
    out = tmp_path / "result.csv"
    result = _cli("predict", voice, "--format", "csv", "--window", "0.8", "--hop", "0.4", "--out", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[0]["level"] == "clip" and rows[0]["path"] == str(voice)
    windows = [r for r in rows if r["level"] == "window"]
    assert [float(r["start"]) for r in windows] == pytest.approx([0.0, 0.4, 0.8])
    assert all(r["audio"] == "True" and r["video"] == "False" for r in windows)
    assert all(r["uncertain"] in ("True", "False") and 0.5 <= float(r["speech"]) <= 1.0 for r in rows)


def test_predict_table(voice):
    result = _cli("predict", voice)
    assert result.exit_code == 0
    assert f"{voice} (1.6 s):" in result.stdout and "probabilities" in result.stdout and "timeline" in result.stdout
    assert "video: not used" in result.stdout


def test_the_csv_of_silent_files_has_the_models_probability_columns(tmp_path):
    """The columns came from the predictions' probabilities: a silent file (no emotion) had none."""
    from avemo.media.synth import write_clip

    silent = write_clip(tmp_path / "silent.wav", duration=1.2, audio="silence")
    result = _cli("predict", silent, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["emotion"] == "" and all(rows[0][label] == "" for label in read_bundle()[0].labels)


def test_a_path_given_twice_is_predicted_once_and_said_so(voice, tmp_path, avemo_main):
    """``avemo predict a.wav a.wav`` (or a folder and a file in it) gave one row without a word."""
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "a.wav").write_bytes(voice.read_bytes())
    code, out, err = avemo_main("predict", folder, folder / "a.wav", voice, voice, "--format", "json")
    assert code == 0, err
    assert [d["path"] for d in json.loads(out)] == [str(folder / "a.wav"), str(voice)]  # one row per distinct path
    assert [line for line in err.splitlines() if "warning" in line] == [
        f"avemo: warning: {folder / 'a.wav'}: given twice: predicted once",
        f"avemo: warning: {voice}: given twice: predicted once"]


def test_the_table_shows_the_windows_times_as_they_are(voice):
    """A 0.25 s grid used to be printed to one decimal: 0.0-0.2, 0.2-0.5, 0.5-0.8, 0.8-1.0."""
    result = _cli("predict", voice, "--window", "0.25")
    assert result.exit_code == 0, result.output
    rows = [[cell.strip() for cell in line.split("│")[1:3]] for line in result.stdout.splitlines()
            if line.startswith("│ 0.")]
    assert rows[:4] == [["0.0", "0.25"], ["0.25", "0.5"], ["0.5", "0.75"], ["0.75", "1.0"]]


@pytest.mark.parametrize(("name", "check"), [("r.json", json.loads), ("r.CSV", lambda t: t.startswith("path,level,"))])
def test_out_without_format_writes_what_its_extension_names(voice, tmp_path, name, check):
    """``--out r.json`` alone used to write the rich table into r.json."""
    result = _cli("predict", voice, "--out", tmp_path / name)
    assert result.exit_code == 0, result.output
    assert check((tmp_path / name).read_text())


def test_a_format_that_contradicts_the_out_extension_is_refused(voice, tmp_path, avemo_main):
    code, out, err = avemo_main("predict", voice, "--format", "csv", "--out", tmp_path / "r.json")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--format csv contradicts --out r.json, a JSON file name" in err
    assert list(tmp_path.iterdir()) == []


def test_folder_with_a_bad_file_continues_lists_it_and_exits_1(voice, tmp_path, avemo_main):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a.wav").write_bytes(voice.read_bytes())
    (folder / "b_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    (folder / "readme.txt").write_text("ignored: not a media file name")
    code, out, err = avemo_main("predict", folder, "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert [d["path"] for d in data] == [str(folder / "a.wav")]
    assert "Not predicted (1 of 2):" in err
    assert f"  {folder / 'b_broken.mp4'}: not a media file" in err


def test_a_bug_on_one_file_skips_it_writes_the_others_and_exits_1(voice, tmp_path, avemo_main, predictor,
                                                                  monkeypatch):
    """An exception that is no AvemoError (a bug) on one file of a batch: the file is listed as not
    predicted with a one-line reason, the others' results are written to --out, exit code 1 (as for
    a corrupt file)."""
    files = [tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"]
    for f in files:
        f.write_bytes(voice.read_bytes())
    real = predictor._predict

    def predict(path, *args, **kwargs):
        if Path(path).name == "b.wav":
            raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(predictor, "_predict", predict)
    out = tmp_path / "results.json"
    code, _, err = avemo_main("predict", *files, "--format", "json", "--out", out)
    assert code == 1, err
    assert [d["path"] for d in json.loads(out.read_text())] == [str(files[0]), str(files[2])]
    assert "Not predicted (1 of 3):" in err
    assert f"  {files[1]}: internal error (TypeError: unsupported operand type(s) for +: 'int' and 'str'); " \
           "please report it\n" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "/no/such/clip.mp4"], "/no/such/clip.mp4: file not found"),
        (["predict", "VOICE", "--modalities", "video"], "no video stream (an audio-only file)"),
        (["predict", "VOICE", "--format", "xml"], "--format must be one of table, json, csv"),
        (["predict", "VOICE", "--modalities", "smell"], "modalities must be a non-empty subset"),
        (["predict", "VOICE", "VOICE", "--hop", "0"], "hop must be a finite positive number of seconds"),
    ],
)
def test_single_input_errors_are_one_line_exit_2(args, message, voice, avemo_main):
    code, out, err = avemo_main(*[voice if a == "VOICE" else a for a in args])
    assert code == 2 and out == ""
    assert err.startswith("avemo: error: ") and err.count("\n") == 1 and message in err


def test_model_option_refuses_a_checkpoint_with_unknown_labels(tmp_path, voice, avemo_main):
    from avemo.models import create_model
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import Normalizer

    model = create_model("sultana_video_cnn3d", num_classes=2, n_frames=16, size=(16, 16))
    save_checkpoint(tmp_path / "own", model, labels=LabelSet("own", ("happy", "contempt")),
                    normalizer=Normalizer(kinds={"video": "frames"}))
    code, _, err = avemo_main("predict", voice, "--model", tmp_path / "own")
    assert code == 2 and "avemo does not know: contempt (known: " in err and err.count("\n") == 1
    code, _, err = avemo_main("predict", voice, "--model", tmp_path)
    assert code == 2 and f"--model {tmp_path}: not a checkpoint folder" in err  # the CLI names its option


def test_demo_generates_a_clip_and_prints_the_table():
    result = _cli("demo")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("avemo_demo.mp4 (4.0 s):")  # its name: its temporary folder is gone
    assert "audio: used" in result.stdout and "video: used" in result.stdout
    assert "avemo_demo.mp4, a 4 s clip generated now in a temporary folder and removed afterwards" in " ".join(
        result.stderr.split())
    result = _cli("demo", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["path"] == "avemo_demo.mp4"


def test_models_lists_the_zoo():
    result = _cli("models", "--kind", "audio", "--no-params")
    assert result.exit_code == 0
    assert "mfcc_cnn1d" in result.stdout and "resnext3d_50" not in result.stdout


def test_models_of_a_kind_no_model_has_names_those_that_read_it(avemo_main):
    """`avemo models --kind text` printed an empty table, while gao_dialogue (a fusion model) reads text."""
    code, out, err = avemo_main("models", "--kind", "text", "--no-params")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "no model is of kind text" in err and "those that read text: gao_dialogue" in err


def test_out_naming_an_input_file_is_refused_before_the_work(voice, tmp_path, avemo_main, monkeypatch):
    """``avemo predict clip.wav -o clip.wav`` (or a folder and one of its files) used to replace the
    recording with its own result."""
    import shutil

    from avemo.inference import predictor

    monkeypatch.setattr(predictor, "load_predictor", lambda *a, **k: pytest.fail("the model was loaded"))
    folder = tmp_path / "clips"
    folder.mkdir()
    clip = shutil.copy(voice, folder / "take 1.wav")
    before = Path(clip).read_bytes()
    for args in ([clip, "--out", clip], [folder, "--format", "csv", "-o", folder / "." / "take 1.wav"]):
        code, out, err = avemo_main("predict", *args)
        assert code == 2 and out == ""
        assert err == (f"avemo: error: --out {args[-1]}: is one of the files to predict; writing the output there "
                       "would replace it: give another file name\n")
        assert Path(clip).read_bytes() == before
    speakers = folder / "speakers.csv"  # --speakers s.csv -o s.csv replaced who is who with the results
    speakers.write_text("file,speaker\ntake 1.wav,p01\n", encoding="utf-8")
    code, out, err = avemo_main("predict", folder, "--speakers", speakers, "-o", speakers)
    assert code == 2 and out == ""
    assert err == (f"avemo: error: --out {speakers}: is the --speakers file; writing the output there would replace "
                   "it: give another file name\n")
    assert speakers.read_text(encoding="utf-8") == "file,speaker\ntake 1.wav,p01\n"


def test_progress_lines_come_through_a_batch_of_short_files(monkeypatch, capsys):
    """A folder of 12 files of 1 s each, off a terminal: a line every PROGRESS_EVERY (5) seconds of
    the batch. The clock used to start again at each file, so such a batch printed nothing at all."""
    import time

    from avemo.cli.progress import _PredictProgress

    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    files = [Path(f"clip{i:02d}.wav") for i in range(12)]
    with _PredictProgress(files) as progress:
        for index, path in enumerate(files):
            progress.update(index, str(path), 0.0, 0.0)
            now[0] += 1.0
            progress.update(index, str(path), 1.0, 1.0)
            progress.finished()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("avemo: [")]
    assert [line.split(":")[1].strip() for line in lines] == ["[5/12] clip04.wav", "[10/12] clip09.wav"]


def test_predict_prints_progress_lines_on_a_non_terminal_stderr(make_clip, voice, avemo_main, monkeypatch):
    """Off a terminal (a log file, a service, CI) ``avemo predict`` writes a progress line every
    ``PROGRESS_EVERY`` seconds while a file is analysed; the result on stdout is the same without them."""
    import re

    from avemo.cli import progress
    from avemo.cli.app import console_err

    assert not console_err.is_terminal  # captured stderr: the line mode, not the bars
    clip = make_clip("progress.mp4", duration=2.0, audio="speech")  # the video expert reports each frame
    monkeypatch.setattr(progress, "PROGRESS_EVERY", 1e9)  # the baseline: no progress line at all
    code, quiet_out, quiet_err = avemo_main("predict", clip, voice, "--format", "json")
    assert code == 0 and "analysed" not in quiet_err

    monkeypatch.setattr(progress, "PROGRESS_EVERY", 0.0)  # a line at every progress report
    code, out, err = avemo_main("predict", clip, voice, "--format", "json")
    assert code == 0
    line = re.compile(r"avemo: \[(\d)/2\] (\S+): (\d+) of (\d+) s analysed(?: \((\d+) %\))?, (\d+) s so far")
    lines = [line.fullmatch(text) for text in err.splitlines() if text.startswith("avemo: [")]
    assert lines and all(lines), err
    assert [m[1] for m in lines] == sorted(m[1] for m in lines)  # file by file, in order
    for index, path, least in (("1", clip, 2), ("2", voice, 1)):  # the video reports each frame, the audio each chunk
        mine = [m for m in lines if m[1] == index]
        assert len(mine) >= least and {m[2] for m in mine} == {path.name}
        known = [m for m in mine if m[4] != "0"]  # before the file's duration is known: "0 of 0 s", no share
        assert known and {m[4] for m in known} == {"2"}  # the file's seconds, rounded
        assert all(m[5] is not None for m in known) and all(m[5] is None for m in mine if m[4] == "0")
        shares = [int(m[5]) for m in known]
        assert shares == sorted(shares) and shares[-1] >= 90  # it advances to (nearly) the end
    # stdout holds the same result, and nothing of the progress
    assert "analysed" not in out
    assert json.loads(out) == json.loads(quiet_out)


def test_a_device_name_that_is_none_is_refused_when_predict_starts_naming_the_option(voice, avemo_main, monkeypatch):
    """`--device foo` failed once the model was loading, as "unknown device 'foo'" without naming the option."""
    import avemo.inference.predictor as predictor_module

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(predictor_module, "load_predictor", never)
    for engine in ("torch", "onnx"):
        code, out, err = avemo_main("predict", voice, "--device", "foo", "--engine", engine)
        assert (code, out) == (2, "")
        assert err == ("avemo: error: --device must be auto (a GPU when there is one), cpu, cuda or cuda:N, or another "
                       "device type of torch's (mps, xpu), got 'foo'\n")


def test_device_names_are_checked_without_torch_as_torch_parses_them():
    """The check at the start (no torch import: the onnx engine runs without it) accepts what
    torch.device parses, and only that; whether that device is here is torch's to say later."""
    import subprocess
    import sys

    import torch

    from avemo.device import DEVICE_TYPES, is_device_name

    names = ["auto", "cpu", "cuda", "cuda:1", "mps", "xpu:0", *DEVICE_TYPES, "foo", "gpu", "cuda:", "cuda:-1", " cpu", "CPU",
             "auto:0", "cuda:1:2"]
    for name in names:
        try:
            parsed = name == "auto" or bool(torch.device(name))
        except RuntimeError:
            parsed = False
        assert is_device_name(name) == parsed, name
    check = ("import sys; from avemo.device import check_device_option; check_device_option('cuda:0'); "
             "print('torch' in sys.modules)")
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "PATH": ""}
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=120)
    assert (done.returncode, done.stdout) == (0, "False\n"), done.stderr
