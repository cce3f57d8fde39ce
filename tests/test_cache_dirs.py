"""Cache folders when the home folder cannot be written (containers, CI runners, services: HOME=/nonexistent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avemo import cache_dirs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_home(tmp_path, monkeypatch) -> Path:
    """HOME under a regular file: no process, root included, can create anything there."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("HOME", str(blocker / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # gettempdir() reads TMPDIR again
    return tmp_path / "tmp"


def test_cache_dir_prefers_xdg_then_a_private_temp_folder(no_home, tmp_path, monkeypatch):
    private = no_home / f"avemo-cache-{os.getuid()}"
    assert cache_dirs.cache_dir("models") == private / "models"
    assert (private.stat().st_mode & 0o777) == 0o700
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dirs.cache_dir("models") == tmp_path / "xdg" / "avemo" / "models"


def test_a_temp_folder_open_to_others_is_not_used(no_home):
    planted = no_home / f"avemo-cache-{os.getuid()}"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)  # as another user could have made it, to read or plant cache files
    assert cache_dirs.cache_dir("models") is None


def test_numba_gets_a_writable_cache_folder_only_when_it_needs_one(no_home, monkeypatch):
    cache_dirs.ensure_numba_cache_dir()
    assert os.environ["NUMBA_CACHE_DIR"] == str(no_home / f"avemo-cache-{os.getuid()}" / "numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/mine")
    cache_dirs.ensure_numba_cache_dir()
    assert os.environ["NUMBA_CACHE_DIR"] == "/mine"  # the user's choice is kept


def test_an_unrelated_error_is_not_called_a_model_format_error(monkeypatch):
    """A failure while building the encoder (here: librosa's mel filters) keeps its own type and message."""
    import librosa

    from avemo.features.audio.whisper_encoder import WhisperEncoder

    def broken(**_):
        raise RuntimeError("something unrelated")

    monkeypatch.setattr(librosa.filters, "mel", broken)
    with pytest.raises(RuntimeError, match="something unrelated"):
        WhisperEncoder.from_ct2()


# What a user without a writable home sees: librosa's package folder is read-only for them (numba's
# in-tree cache is unusable) and ~/.cache cannot be created. Before the fix every prediction failed
# with "unexpected Whisper encoder layout (cannot cache function '__o_fold': no locator available...)".
_AS_A_USER_WITHOUT_HOME = """
import sys
from numba.core import caching
caching.InTreeCacheLocator.from_function = classmethod(lambda cls, *a: None)
from avemo.cli import main
sys.argv = ["avemo", "predict", sys.argv[1], "--format", "json"]
main()
"""


@pytest.mark.slow
def test_prediction_works_without_a_writable_home(no_home, tmp_path):
    from avemo.media.synth import write_clip

    clip = write_clip(tmp_path / "voice.wav", duration=1.2, audio="voice")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", _AS_A_USER_WITHOUT_HOME, str(clip)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["path"] == str(clip)
    private = no_home / f"avemo-cache-{os.getuid()}"
    assert list((private / "models").glob("whisper_base_encoder_*.safetensors"))  # the encoder cache went there
    assert not Path(os.environ["HOME"]).exists()


def test_without_any_writable_temp_folder_there_is_no_cache(no_home, monkeypatch):
    """A read-only file system (a container's readOnlyRootFilesystem): not even a temp folder."""
    def no_temp_folder():
        raise FileNotFoundError(2, "No usable temporary directory found")

    monkeypatch.setattr(cache_dirs.tempfile, "gettempdir", no_temp_folder)
    assert cache_dirs.cache_dir("models") is None


_NUMBA_WITHOUT_ANY_FOLDER = """
import tempfile
from numba.core import caching

def no_temp_folder():
    raise FileNotFoundError(2, "No usable temporary directory found")

tempfile.gettempdir = no_temp_folder
caching.CacheImpl._locator_classes = []  # numba finds no writable place (for root too)
from avemo.cache_dirs import ensure_numba_cache_dir
ensure_numba_cache_dir()
import numba

@numba.njit(cache=True)
def twice(x):
    return 2 * x

print(twice(21))
"""


def test_numba_compiles_without_caching_when_no_folder_can_be_written(no_home):
    """librosa's cached functions once stopped every prediction there: 'no locator available'."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", _NUMBA_WITHOUT_ANY_FOLDER], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["42"]
