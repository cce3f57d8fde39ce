"""Shared fixtures: the real recordings in ../shared/data and generated media."""

from __future__ import annotations

import os
from pathlib import Path

# Before torch is imported: idle OpenMP threads sleep instead of spinning, which keeps a
# loaded 2-core CI machine from stalling (an MLP step went from 309 ms to 0.6 ms).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AVEMO_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"shared data not found at {SHARED_DATA}")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture(scope="session")
def ravdess_speech_root() -> Path:
    return SHARED_DATA / "ravdess" / "speech_audio"


@pytest.fixture(scope="session")
def au_table() -> Path:
    return SHARED_DATA / "ravdess" / "openface_au_means.csv"


@pytest.fixture(scope="session")
def ravdess_video() -> Path:
    return SHARED_DATA / "ravdess" / "videos" / "01-01-07-02-02-01-01.mp4"


@pytest.fixture(scope="session")
def crema_videos() -> list[Path]:
    return sorted((SHARED_DATA / "crema_d" / "VideoFlash").glob("*.flv"))


@pytest.fixture(scope="session")
def ravdess_subset(tmp_path_factory, ravdess_speech_root):
    """A small RAVDESS speech corpus of links to the shared files, in the Actor_XX layout:
    ``ravdess_subset(("01", "05"), step=6)`` -> a new folder with every 6th clip of each speaker."""

    def make(speakers: tuple[str, ...], step: int) -> Path:
        root = tmp_path_factory.mktemp("ravdess_subset")
        for speaker in speakers:
            folder = root / f"Actor_{speaker}"
            folder.mkdir()
            for f in sorted((ravdess_speech_root / f"Actor_{speaker}").glob("*.flac"))[::step]:
                (folder / f.name).symlink_to(f)
        return root

    return make


@pytest.fixture(scope="session")
def emodb_subset(tmp_path_factory, shared_data):
    """A small EmoDB-dev corpus of links to the shared files: ``emodb_subset(("03", "08"), step=8)``
    -> a new folder with every 8th file of each speaker."""

    def make(speakers: tuple[str, ...], step: int) -> Path:
        root = tmp_path_factory.mktemp("emodb_subset")
        files = sorted((shared_data / "emodb_dev" / "wav").glob("*"))
        for speaker in speakers:
            for f in [f for f in files if f.name.startswith(speaker)][::step]:
                (root / f.name).symlink_to(f)
        return root

    return make


@pytest.fixture(scope="session")
def small_emodb(tmp_path_factory, shared_data):
    """Two EmoDB-dev clips of each emotion (boredom included), plus a corrupt file: 15 takes, 13 with a
    label a RAVDESS model can be scored on, 12 of them readable (cross-corpus evaluation, benchmarks)."""
    root = tmp_path_factory.mktemp("emodb_small")
    files = sorted((shared_data / "emodb_dev" / "wav").glob("*.flac"))
    for letter in "WLEAFTN":
        for f in [f for f in files if f.stem[5] == letter][:2]:
            (root / f.name).symlink_to(f)
    (root / "08a01Wz.wav").write_bytes(b"RIFF not really a wave file")
    return root


@pytest.fixture(scope="module")
def predictor():
    """The bundled model's predictor, loaded once per test module."""
    from avemo import Predictor

    return Predictor.default()


@pytest.fixture
def shared_predictor(predictor, monkeypatch):
    """Commands that load the bundled model get ``predictor`` instead (they would load it on every call):
    ``pytestmark = pytest.mark.usefixtures("shared_predictor")``."""
    from avemo.inference.predictor import Predictor

    monkeypatch.setattr(Predictor, "default", classmethod(lambda cls, **_: predictor))


@pytest.fixture
def serve_stub(monkeypatch):
    """``avemo serve`` with the server itself replaced: the dict it fills with what it would have
    served (``settings``, ``predictor``; empty if it never started). Its port is not bound either:
    port 8000 may be taken on the machine that runs the tests."""
    import socket

    from avemo import serving
    from avemo.serving import server

    seen: dict = {}
    monkeypatch.setattr(serving, "run_server", lambda settings, predictor=None, **_: seen.update(
        settings=settings, predictor=predictor))
    monkeypatch.setattr(server, "bind_sockets", lambda settings: [socket.socket()])
    return seen


@pytest.fixture(scope="session")
def make_clip(tmp_path_factory):
    """Generate (once per session) a synthetic media file: ``make_clip("x.mp4", face=False, ...)``."""
    from avemo.media.synth import write_clip

    root = tmp_path_factory.mktemp("synth")
    made: dict[tuple, Path] = {}

    def make(name: str, **spec) -> Path:
        key = (name, tuple(sorted(spec.items())))
        if key not in made:
            made[key] = write_clip(root / f"{len(made):03d}_{name}", **spec)
        return made[key]

    return make


@pytest.fixture(scope="session")
def damage_middle():
    """``damage_middle(clip, out)``: ``clip`` copied to ``out`` with 3 KB of noise written over the middle
    of the file (a bad sector, a broken copy); returns ``out``."""
    import numpy as np

    def damage(clip: Path, out: Path) -> Path:
        data = bytearray(clip.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
        out.write_bytes(bytes(data))
        return out

    return damage


@pytest.fixture(scope="session")
def make_ravdess(tmp_path_factory):
    """Generate (once per session) an audio-only corpus in the RAVDESS layout: for each speaker,
    ``Actor_SS/03-01-EE-01-01-RR-SS.wav`` for 4 emotions x 2 repetitions of ``duration`` seconds of
    synthetic voice. ``make_ravdess(("01", "05", "07"), duration=1.0)`` -> the corpus folder."""
    from avemo.media.synth import write_clip

    made: dict[tuple, Path] = {}

    def make(speakers: tuple[str, ...], duration: float = 1.0) -> Path:
        key = (tuple(speakers), duration)
        if key not in made:
            root = tmp_path_factory.mktemp("ravdess_generated")
            seed = 0
            for speaker in speakers:
                folder = root / f"Actor_{speaker}"
                folder.mkdir()
                for emotion in ("01", "03", "04", "05"):
                    for repetition in ("01", "02"):
                        seed += 1
                        write_clip(folder / f"03-01-{emotion}-01-01-{repetition}-{speaker}.wav", duration=duration,
                                   audio="voice", seed=seed)
            made[key] = root
        return made[key]

    return make


@pytest.fixture
def avemo_main(monkeypatch, request):
    """Run the console entry point ``avemo ARGS`` in this process, with its one-line error handling:
    ``avemo_main(*args)`` returns (exit code, stdout, stderr) as captured by ``capsys``, or by
    ``capture=capfd`` to see what native code writes to the file descriptors too."""
    import sys

    from avemo.cli import main

    def run(*args, capture=None) -> tuple[int, str, str]:
        capture = capture or request.getfixturevalue("capsys")
        monkeypatch.setattr(sys, "argv", ["avemo", *map(str, args)])
        with pytest.raises(SystemExit) as stop:
            main()
        out = capture.readouterr()
        return stop.value.code or 0, out.out, out.err

    return run


@pytest.fixture(scope="session")
def benchmark_script():
    """Load a script of ``benchmarks/`` as a module: ``benchmark_script("models")`` (a fresh module each call)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
