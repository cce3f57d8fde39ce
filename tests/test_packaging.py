"""The wheel carries everything an installed avemo needs at run time: the bundled model (weights,
configuration and its model card) and the web page's assets. Built from a copy of the source tree,
so the checkout is not touched."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copy(REPO / "README.md", source)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.build_wheel({str(out)!r}))"],
        cwd=source, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out / done.stdout.strip().splitlines()[-1]


def test_wheel_ships_the_bundled_model_and_the_web_page(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    bundle = "avemo/inference/default_model/"
    for name in ("model.json", "model_card.md", "audio/checkpoint.json", "audio/model.safetensors"):
        assert bundle + name in names, f"{bundle + name} missing from {wheel.name}"
    assert {"avemo/serving/static/app.js", "avemo/serving/static/style.css"} <= names


def test_installed_bundle_shows_its_model_card(wheel, tmp_path):
    """``GET /v1/models`` of an installed package (no source checkout around it) has the card."""
    from avemo.inference.predictor import Predictor
    from avemo.serving.app import describe_model

    zipfile.ZipFile(wheel).extractall(tmp_path)
    predictor = Predictor.from_bundle(tmp_path / "avemo/inference/default_model", device="cpu")
    card = describe_model(predictor)["card"]
    assert card == (REPO / "src/avemo/inference/default_model/model_card.md").read_text(encoding="utf-8")
    assert card.startswith("#")
