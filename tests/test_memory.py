"""avemo.memory: glibc's mmap threshold is fixed by a Predictor, which keeps the C heap of a long
prediction from growing with the file (see the module docstring), without changing a prediction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

glibc = pytest.mark.skipif(sys.platform != "linux" or __import__("platform").libc_ver()[0] != "glibc",
                           reason="the mmap threshold is glibc's")

# Where does a 12 MiB request come from once a 24 MiB mapped block was freed? glibc counts its mapped
# blocks in mallinfo2().hblks: 1 more while the 12 MiB block lives = a mapping of its own, 0 = the heap.
PROBE = """
import ctypes, sys
{setup}
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
if not hasattr(libc, "mallinfo2"):
    sys.exit(3)
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(24 << 20))  # a mapped block freed: glibc's dynamic threshold rises to 24 MiB
before = libc.mallinfo2().hblks
block = libc.malloc(12 << 20)
print(libc.mallinfo2().hblks - before)
"""


def _mapped_blocks(setup: str = "", **env: str) -> list[int]:
    """What ``setup`` printed (integers), then how many new mappings a 12 MiB request made after a 24 MiB
    block was freed, in a fresh process."""
    environ = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                                                 "AVEMO_MMAP_THRESHOLD")}
    environ.update(PYTHONPATH=str(REPO / "src"), **env)
    done = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], env=environ, capture_output=True,
                          text=True)
    if done.returncode == 3:
        pytest.skip("this glibc has no mallinfo2 (before 2.33)")
    assert done.returncode == 0, done.stderr
    return [int(x) for x in done.stdout.split()]


SETUP = "from avemo.memory import bound_heap_growth; print(bound_heap_growth())"


@glibc
def test_without_it_glibc_serves_mid_sized_blocks_from_the_heap_after_a_big_one_was_freed():
    """The behaviour that made the heap grow: the dynamic threshold rose, the 12 MiB block is not mapped."""
    assert _mapped_blocks() == [0]


@glibc
def test_bound_heap_growth_maps_every_block_of_8_mib_and_more():
    assert _mapped_blocks(SETUP) == [8 << 20, 1]


@glibc
def test_turned_off_it_leaves_glibc_alone():
    assert _mapped_blocks(SETUP, AVEMO_MMAP_THRESHOLD="0") == [0, 0]


@glibc
@pytest.mark.parametrize("name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_the_users_own_glibc_setting_is_kept(name):
    """avemo sets nothing (0); glibc does what the variable says: a 32 MiB mmap threshold keeps the 12 MiB
    block on the heap; a trim threshold alone fixes the mmap threshold at its 128 KiB start (mapped)."""
    assert _mapped_blocks(SETUP, **{name: str(32 << 20)}) == [0, 0 if name == "MALLOC_MMAP_THRESHOLD_" else 1]


def test_a_predictor_bounds_the_heap_once(monkeypatch):
    import avemo.memory as memory
    from avemo.inference.predictor import Predictor
    from avemo.inference.windows import WindowGrid

    calls = []
    monkeypatch.setattr(memory, "bound_heap_growth", lambda: calls.append(1) or 0)
    Predictor(object(), labels=("neutral",), grid=WindowGrid(), model_info={})
    assert calls == [1]
    monkeypatch.undo()
    own = {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ)
    expected = min(memory._threshold(), 32 << 20) if memory._glibc() and not own else 0
    assert memory.bound_heap_growth() == memory.bound_heap_growth() == expected



def test_loading_the_whisper_encoder_bounds_the_heap(monkeypatch):
    """``avemo extract`` / ``train`` workers never make a Predictor: the encoder load fixes the thresholds."""
    import avemo.memory as memory
    from avemo.features.audio import whisper_encoder

    calls = []
    monkeypatch.setattr(memory, "bound_heap_growth", lambda: calls.append("heap") or 0)
    monkeypatch.setattr(whisper_encoder.WhisperEncoder, "from_ct2", classmethod(lambda cls, parts: calls.append("load")))
    whisper_encoder.load_encoder.__wrapped__(None)  # around the per-process cache
    assert calls == ["heap", "load"]

def _predict_json(path: Path, **env: str) -> dict:
    environ = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", **env}
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        environ.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "avemo.cli", "predict", str(path), "-f", "json"], env=environ,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@glibc
def test_predictions_are_identical_with_and_without_the_fixed_threshold(make_clip):
    """35 s: two Whisper chunks, the second one placed differently in memory; same numbers to the bit."""
    clip = make_clip("two_chunks.mp4", duration=35.0, size=(320, 240), fps=15, audio="speech")
    fixed, dynamic = _predict_json(clip), _predict_json(clip, AVEMO_MMAP_THRESHOLD="0")
    assert fixed["emotion"] is not None and len(fixed["timeline"]) == 69
    assert fixed == dynamic


def test_the_benchmark_reads_lengths_and_reports_each_long_input(benchmark_script):
    script = benchmark_script("predict_speed")
    assert script._minutes("1,10,30") == [1.0, 10.0, 30.0] and script._minutes("0") == [] == script._minutes("")
    both = {"input": "video", "minutes": 30.0, "wall_s": 120.0, "windows": 3599, "face_coverage": 1.0,
            "after_load_rss_mb": 446.0, "heap_free_mb": 12.4, "json_mb": 1.18, "peak_rss_mb": 850.2, "dynamic": 1037.8}
    alone = {**both, "input": "video, audio expert only", "face_coverage": None, "heap_free_mb": None}
    del alone["dynamic"]
    lines = script._memory_lines([both, alone], threads=1)
    assert "1 torch thread." in lines[0]
    assert lines[4] == "| video | 30 min | 120.0 | 0.067 | 3599 | 1.000 | 446 | 12 | 1.18 | 850 | 1038 |"
    assert lines[5] == "| video, audio expert only | 30 min | 120.0 | 0.067 | 3599 |  | 446 |  | 1.18 | 850 |  |"
