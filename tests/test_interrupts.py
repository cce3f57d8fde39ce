"""Ctrl-C during ``avemo predict``, for real: a subprocess, SIGINT, the exit code and what is left on disk.

It used to end in SIGABRT ("terminate called without an active exception": the audio expert's thread
was still inside native code when the interpreter exited) and lost the finished results of a
batch. Now the expert threads stop, the exit code is 130, and ``--out`` holds the files that were
done, or nothing. The signal is sent once the run reports progress on the long file (a marker
line on stderr, not a fixed delay), so the experts are at work when it arrives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def _interrupt_when(marker: str, args: list, tmp_path: Path) -> tuple[int, str]:
    """Run ``avemo ARGS``; send SIGINT once ``marker`` appears on its stderr; (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "avemo.cli", *map(str, args)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 600
            while marker not in err_path.read_text():
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
