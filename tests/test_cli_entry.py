"""``python -m avemo`` is the ``avemo`` console script: the entry point of ``[project.scripts]``."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from avemo import cli

REPO = Path(__file__).resolve().parents[1]


def _python_m_avemo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    import avemo

    env = {**os.environ, "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join([str(Path(avemo.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "avemo", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_python_m_avemo_help_lists_the_commands(tmp_path):
    done = _python_m_avemo("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Usage: python -m avemo [OPTIONS] COMMAND" in done.stdout
    for command in ("predict", "train", "evaluate", "benchmark", "serve"):
        assert f"│ {command} " in done.stdout


def test_python_m_avemo_runs_the_console_script_with_its_one_line_errors(tmp_path):
    """The same entry point as the console script: a user error is one ``avemo: error:`` line, exit 2."""
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"] == {"avemo": "avemo.cli:main"}
    done = _python_m_avemo("train", "--corpora", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "run"),
                           cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("avemo: error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "missing.toml" in done.stderr and "Traceback" not in done.stderr


def test_a_commands_help_is_wrapped_once_to_the_terminal(tmp_path):
    """A docstring's line breaks inside a paragraph are not kept (rich wraps the text to the terminal):
    at 200 columns the second paragraph of ``train --help`` is one line, not the docstring's lines."""
    done = _python_m_avemo("train", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "train in one label space (--label-space) with qualified speakers" in done.stdout
    assert "label space\n" in cli.train.__doc__  # where the docstring breaks the line
    lines = [line.strip() for line in done.stdout.splitlines()]
    start = lines.index(next(line for line in lines if line.startswith("Several corpora")))
    assert lines[start - 1] == "" and lines[start - 2].startswith("Train MODEL")  # the paragraphs stay apart
