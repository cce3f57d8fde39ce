"""``python -m avemo`` is the ``avemo`` console script: the entry point of ``[project.scripts]``."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from avemo.cli.train import train

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
    assert "label space\n" in train.__doc__  # where the docstring breaks the line
    lines = [line.strip() for line in done.stdout.splitlines()]
    start = lines.index(next(line for line in lines if line.startswith("Several corpora")))
    assert lines[start - 1] == "" and lines[start - 2].startswith("Train MODEL")  # the paragraphs stay apart


#: ``python -m avemo info`` whose file reading meets a Ctrl-C that a nested ``PyRun_*`` call saw first: the
#: interpreter's "unhandled KeyboardInterrupt" flag is up (as CPython 3.11 leaves it when a library
#: runs code that way during training) before the interrupt reaches ``avemo``
_FLAG_UP_THEN_CTRL_C = """
import ctypes, sys
import avemo.cli
import avemo.describe

def reading(path, faces=True):
    ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 1
    raise KeyboardInterrupt

avemo.describe.describe_file = reading
sys.argv = ["avemo", *sys.argv[1:]]
avemo.cli.main()
"""


def test_ctrl_c_exits_with_130_when_a_library_saw_it_first(tmp_path):
    """It used to end with -2 (the interpreter killed itself with SIGINT at exit, after ``avemo``
    had handled the interrupt and cleaned up), about one Ctrl-C in three during a benchmark."""
    import ctypes

    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt")
    except ValueError:
        pytest.skip("this interpreter keeps the flag where no symbol reaches it (Python >= 3.12)")
    import avemo
    from avemo.media.synth import write_clip

    clip = write_clip(tmp_path / "clip.wav", duration=0.5, audio="tone")
    (tmp_path / "flag_up.py").write_text(_FLAG_UP_THEN_CTRL_C)  # run as a module, as `python -m avemo` is
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(avemo.__file__).parents[1])])}
    done = subprocess.run([sys.executable, "-m", "flag_up", "info", str(clip)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert done.stderr.rstrip().endswith("avemo: interrupted") and "Traceback" not in done.stderr


def test_each_command_lives_in_the_module_named_after_it_in_the_order_of_help():
    """``avemo.cli`` was one module of 2,208 lines; each command is now in ``avemo.cli.<command>``
    (``demo`` beside ``predict``), and ``avemo --help`` lists them in the order it always had, which is
    the order in which ``avemo/cli/__init__.py`` imports their modules."""
    from avemo.cli import app

    commands = [(info.name or info.callback.__name__, info.callback.__module__) for info in app.registered_commands]
    assert commands == [(name, f"avemo.cli.{'predict' if name == 'demo' else name}") for name in (
        "info", "extract", "prepare", "train", "evaluate", "benchmark", "predict", "demo", "export", "models", "serve")]


def test_a_commands_help_names_its_own_options_or_the_command_whose_option_it_names():
    """``info --help`` said "(--dataset folder)", an option info does not have: an option a command's help
    names is its own, or one of a command named in the same sentence (``avemo train --dataset folder``)."""
    import re

    import typer.main

    from avemo.cli import app

    commands = typer.main.get_command(app).commands
    owned = {name: {opt for p in c.params for opt in (*p.opts, *p.secondary_opts)} for name, c in commands.items()}
    stray = []
    for name, command in commands.items():
        for sentence in re.split(r"(?<=\.)\s|;", " ".join((command.help or "").split())):
            named = {other for other in commands if re.search(rf"\b{other}\b", sentence)}
            for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", sentence):
                if option not in owned[name] and not any(option in owned[other] for other in named):
                    stray.append((name, option, sentence))
    assert not stray, stray


@pytest.mark.parametrize("command", [
    ["train", "--root", "DATA", "--model", "egemaps_logreg"],
    ["evaluate", "--checkpoint", "RUN", "--root", "DATA"],
    ["extract", "DATA"],
    ["benchmark", "ravdess_au", "--root", "DATA"],
])
def test_workers_below_one_are_refused_by_every_command(command, avemo_main, tmp_path):
    """-j 0: train and evaluate read it as their default (every core) where extract refused it."""
    args = [str(tmp_path / a) if a in ("DATA", "RUN") else a for a in command]
    code, _, err = avemo_main(*args, "-j", "0")
    assert code == 2 and err.strip() == "avemo: error: --workers must be at least 1, got 0", err


def test_one_result_per_input_exits_1_one_result_from_all_exits_0_with_the_files_skipped(
        ravdess_subset, avemo_main, tmp_path):
    """The README's exit-code rule on one folder with a corrupt clip: extract (a result per file) exits 1;
    train and evaluate (one result from all the files) exit 0 and record the file they skipped."""
    import json

    root = ravdess_subset(("01", "02"), step=12)
    bad = root / "Actor_01" / "03-01-08-02-02-02-01.flac"  # a well-named corrupt clip
    assert not bad.exists()  # a new file: never write through a link to the shared data
    bad.write_bytes(b"\0" * 64)
    cache, run = tmp_path / "cache", tmp_path / "run"
    code, _, err = avemo_main("extract", "--root", root, "--dataset", "ravdess", "-f", "egemaps", "--cache", cache,
                              "--summary", tmp_path / "summary.json")
    assert code == 1, err
    assert bad.name in (tmp_path / "summary.json").read_text()
    code, _, err = avemo_main("train", "--root", root, "--model", "egemaps_logreg", "--cache", cache, "--out", run)
    assert code == 0 and bad.name in err, err
    assert bad.name in json.dumps(json.loads((run / "checkpoint.json").read_text())["data"]["skipped"])
    code, _, err = avemo_main("evaluate", "--checkpoint", run, "--root", root, "--cache", cache,
                              "--json", tmp_path / "ev.json")
    assert code == 0 and bad.name in err, err
    assert bad.name in json.dumps(json.loads((tmp_path / "ev.json").read_text())["skipped"])
