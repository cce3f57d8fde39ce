"""Ctrl-C during ``avemo predict``, ``extract``, ``train``, ``evaluate`` and ``benchmark``, for real: a
subprocess, SIGINT, the exit code and what is left on disk.

It used to end in SIGABRT ("terminate called without an active exception": the audio expert's thread
was still inside native code when the interpreter exited) and lost the finished results of a
batch. Now the expert threads stop, the exit code is 130, and ``--out`` holds the files that were
done, or nothing (a folder the command made and left empty is removed). The signal is sent once
the run reports progress on the long file (a marker line on stderr, not a fixed delay), so the
experts are at work when it arrives. Ctrl-C during openSMILE in the ``avemo`` process waits, in
the same way, for a line that a hook prints from inside openSMILE's run (:data:`IN_OPENSMILE`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Two short clips and a 30-minute one (minutes of work on these machines)."""
    from avemo.media.synth import write_clip

    root = tmp_path_factory.mktemp("interrupts")
    return {
        "a": write_clip(root / "a.wav", duration=1.5, audio="voice"),
        "b": write_clip(root / "b.wav", duration=1.5, audio="voice", seed=1),
        "long": write_clip(root / "long.wav", duration=1800, audio="tone"),  # cheap to make, as slow to predict
    }


#: the line that :data:`_OPENSMILE_HOOK` prints when an openSMILE run first calls back into Python
IN_OPENSMILE = "avemo-test: inside openSMILE's run"
#: ``avemo`` whose openSMILE runs print :data:`IN_OPENSMILE` on stderr from their first sink callback:
#: the process is then inside the C++ call ``smile.run()`` for the rest of the clip (seconds), so a
#: Ctrl-C sent on that line reaches openSMILE mid-run, not the Python code between two files
#: (where the SIGINT used to land, and the test passed without the fix that it guards)
_OPENSMILE_HOOK = f"""
import sys
from opensmile.core.lib import OpenSMILE

set_callback = OpenSMILE.external_sink_set_callback_ex

def marked(self, sink, callback):
    def call(data, meta):
        if not getattr(self, "avemo_test_marked", False):
            self.avemo_test_marked = True
            print({IN_OPENSMILE!r}, file=sys.stderr, flush=True)
        return callback(data, meta)
    return set_callback(self, sink, call)

OpenSMILE.external_sink_set_callback_ex = marked
from avemo.cli import main
main()
"""


def _interrupt_when(marker: str | Callable[[], bool], args: list, tmp_path: Path, *,
                    hook: str | None = None) -> tuple[int, str]:
    """Run ``avemo ARGS`` (through the Python code ``hook`` when given); send SIGINT once ``marker``
    appears on its stderr (or, for a function, once it returns true); (exit code, stderr)."""
    ready = marker if callable(marker) else lambda: marker in err_path.read_text()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    err_path = tmp_path / "stderr.txt"
    start = ["-m", "avemo.cli"] if hook is None else ["-c", hook]
    with open(err_path, "w") as err:
        # SIGINT at its default: a shell that starts the tests in the background (``make test &``)
        # ignores it, the child would inherit that, and Python would never see the Ctrl-C
        process = subprocess.Popen([sys.executable, *start, *map(str, args)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=err,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 600
            while not ready():
                assert process.poll() is None, f"ended before the marker: {err_path.read_text()[-2000:]}"
                assert time.monotonic() < deadline, "no progress line within 600 s"
                time.sleep(0.1)
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return code, err_path.read_text()


def _clean_exit(code: int, stderr: str) -> None:
    assert code == 130, stderr[-2000:]
    assert stderr.rstrip().endswith("avemo: interrupted")
    assert "terminate called" not in stderr and "Traceback" not in stderr


def test_an_interrupted_batch_keeps_the_files_done(inputs, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "results.json"
    code, stderr = _interrupt_when("[3/3] long.wav:", ["predict", inputs["a"], inputs["b"], inputs["long"],
                                                        "--format", "json", "--out", out], tmp_path)
    _clean_exit(code, stderr)
    assert [Path(p["path"]).name for p in json.loads(out.read_text())] == ["a.wav", "b.wav"]
    assert "interrupted: the results of the 2 files done (of 3) were written" in stderr
    assert [p.name for p in out_dir.iterdir()] == ["results.json"]  # no temporary file left


def test_an_interrupted_single_file_writes_nothing(inputs, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, stderr = _interrupt_when("[1/1] long.wav:", ["predict", inputs["long"], "--out", out_dir / "r.json"],
                                   tmp_path)
    _clean_exit(code, stderr)
    assert list(out_dir.iterdir()) == []


# ------------------------------------------------------- extract, train, evaluate, benchmark
def _entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.npz")) if cache.is_dir() else []


def _whole_cache(cache: Path) -> None:
    """Every entry loads, and no temporary file is left (an entry is written whole or not at all)."""
    import numpy as np

    for entry in _entries(cache):
        with np.load(entry) as data:
            assert data.files
    assert [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".npz"] == []


PATIENT = "patience = 1000\n"  # training that goes on until it is interrupted


@pytest.mark.parametrize("workers", ["1", "2"])  # openSMILE in this process, or in worker processes
def test_an_interrupted_extraction_keeps_whole_entries_and_writes_no_summary(make_ravdess, tmp_path, workers):
    """With one worker, Ctrl-C reaches openSMILE's run on the second file (the first one stored),
    where Python's own handler would raise in a sink callback that ctypes prints and drops: the run
    went on, and so did the extraction (exit 0, all 16 entries, one of them short of a frame)."""
    corpus, cache, summary = make_ravdess(("01", "02"), duration=60.0), tmp_path / "cache", tmp_path / "summary.json"
    args = ["extract", corpus, "-f", "egemaps", "-j", workers, "--cache", cache, "--summary", summary]
    if workers == "1":
        def in_second_run() -> bool:
            return (tmp_path / "stderr.txt").read_text().count(IN_OPENSMILE) >= 2

        code, stderr = _interrupt_when(in_second_run, args, tmp_path, hook=_OPENSMILE_HOOK)
    else:
        code, stderr = _interrupt_when(lambda: bool(_entries(cache)), args, tmp_path)
    _clean_exit(code, stderr)
    assert not summary.exists() and 1 <= len(_entries(cache)) < 16  # stopped before the end
    _whole_cache(cache)


def test_an_interrupted_training_leaves_a_resumable_run(make_ravdess, tmp_path):
    (tmp_path / "train.toml").write_text(PATIENT)
    run = tmp_path / "run"
    code, stderr = _interrupt_when(lambda: (run / "history.csv").exists(), [
        "train", "-d", "ravdess", "-r", make_ravdess(("01", "05", "07")), "-m", "egemaps_mlp", "--epochs", 1000,
        "--config", tmp_path / "train.toml", "--out", run, "--cache", tmp_path / "cache", "-j", 1], tmp_path)
    _clean_exit(code, stderr)
    assert sorted(p.name for p in run.iterdir()) == ["history.csv", "last"]  # no final checkpoint, no temporary
    assert (run / "last" / "state.json").is_file()


def test_an_interrupted_evaluation_writes_no_report(make_ravdess, tmp_path):
    run, cache = tmp_path / "run", tmp_path / "eval_cache"
    trained = subprocess.run([sys.executable, "-m", "avemo.cli", "train", "-d", "ravdess", "-r",
                              make_ravdess(("01", "05", "07")), "-m", "egemaps_mlp", "--epochs", "1", "--out", run,
                              "--cache", tmp_path / "cache", "-j", "1"],
                             env={**os.environ, "PYTHONPATH": str(REPO / "src")}, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "out"
    out.mkdir()
    code, stderr = _interrupt_when(lambda: bool(_entries(cache)), [
        "evaluate", "-c", run, "-r", make_ravdess(("01", "02"), duration=60.0), "-j", 1, "--cache", cache,
        "--json", out / "report.json", "--plots", out / "plots"], tmp_path)
    _clean_exit(code, stderr)
    assert list(out.iterdir()) == []  # no report, and the plots folder it made is removed again
    _whole_cache(cache)


def test_an_interrupted_benchmark_writes_no_report(make_ravdess, tmp_path):
    (tmp_path / "tiny.toml").write_text('name = "tiny"\ntitle = "t"\ndataset = "ravdess"\nplan = "ravdess"\n'
                                        '[train]\nepochs = 1000\n' + PATIENT +
                                        '[groups]\n"audio only" = ["egemaps_mlp"]\n'
                                        '[[entries]]\nmodels = ["egemaps_mlp"]\n')
    cache, out = tmp_path / "cache", tmp_path / "results"
    started = []

    def training() -> bool:  # every clip extracted, then a moment of training
        if len(_entries(cache)) < 24:
            return False
        started.append(time.monotonic())
        return time.monotonic() - started[0] > 2

    code, stderr = _interrupt_when(training, ["benchmark", tmp_path / "tiny.toml", "-r",
                                              make_ravdess(("01", "05", "07")), "--folds", 1, "--cache", cache,
                                              "--out", out], tmp_path)
    _clean_exit(code, stderr)
    assert not out.exists()  # the report folder it made, still empty, is removed again
