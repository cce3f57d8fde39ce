"""The commands, names and snippets of the documentation exist as written.

Users copy commands from README.md, docs/**/*.md and the model cards; options get renamed and
modules move, and the documents rot. These checks read every code span and code block of those
files and hold them to the code:

* every ``avemo COMMAND ... --option`` (also ``python -m avemo``, ``-m avemo.cli``) names a command
  of the CLI and options it has (read from the Typer app, not from its ``--help`` text), every
  ``avemo extract -f ...`` extractors that build, every ``avemo train --model M --model-config JSON``
  a configuration of M;
* every ``python benchmarks/NAME.py ... --option`` names a script that exists, answers ``--help``
  with its usage (not by running), and has the options (read from that usage);
* every dotted name ``avemo.x.y`` resolves to a module or an attribute, and every repository path
  (``src/...``, ``tests/...``, ``benchmarks/...``, ``docs/...``) exists;
* every Python block compiles and uses no name it neither defines nor imports (bar the documented
  placeholders).

They check names, not behaviour: what the commands do is tested where they are implemented.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "src/avemo/inference").glob("*/*.md")])
COMMAND = re.compile(r"(?:(?<!from )\bavemo|-m avemo(?:\.cli)?) ([a-z]+)\b(.*)")
SCRIPT = re.compile(r"\bbenchmarks/(\w+)\.py\b(.*)")
#: an indented code block (four spaces, or more in a list item), not a list item's continued text
INDENTED = re.compile(r"^ {4,}(?:[A-Z_]+=\S+ )*(?:avemo|python|torchrun|curl|pip) ")
OPTION = re.compile(r"(?<![\w/\[=-])(--?[a-zA-Z][\w-]*)")
#: names a Python block of the docs may use without defining them: placeholders the text explains
PLACEHOLDERS = {"my_predictor"}  # docs/serving.md: "any object with predict()"


def _snippets(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the code of one document: each line of a fenced or indented command block (``\\``
    continuations joined) and each inline code span; commands are cut at pipes and ``&&``."""
    found, fenced, held = [], False, None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or held or INDENTED.match(line):
            start, text = held or (number, "")
            text = text + " " + line.strip()
            if text.endswith("\\"):
                held = (start, text[:-1])
                continue
            held = None
            found.append((start, text.split(" #")[0]))
        else:
            found += [(number, span) for span in re.findall(r"`([^`]+)`", line)]
    return [(n, part) for n, text in found for part in re.split(r"\|\s|&&|;", text)]


def _where(path: Path, number: int) -> str:
    return f"{path.relative_to(REPO)}:{number}"


@cache
def _cli_options() -> dict[str, set[str]]:
    import typer.main

    from avemo.cli import app

    group = typer.main.get_command(app)
    return {name: {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}
            for name, command in group.commands.items()}


def _bad_features(arguments: str, where: str) -> list[str]:
    """The ``-f``/``--features`` value of an ``avemo extract`` of the docs, built as the command builds it."""
    from avemo.extraction import ExtractorSpec

    bad = []
    for value in re.findall(r"(?:-f|--features)[ =]([\w:=,.]+)", arguments):
        if value.isupper():  # a placeholder (FEATURES)
            continue
        try:
            [spec.build() for spec in ExtractorSpec.parse(value)]
        except Exception as exc:  # noqa: BLE001 - any refusal is the finding
            bad.append(f"{where}: `avemo extract -f {value}`: {exc}")
    return bad


def _bad_model_config(arguments: str, where: str) -> list[str]:
    """The ``--model NAME --model-config 'JSON'`` of an ``avemo train`` of the docs, built as the command
    builds the model's inputs (a registry name and JSON, not placeholders)."""
    import json

    from avemo.models import default_inputs, list_aliases, list_models

    model = re.search(r"(?:--model|-m) (\w+)", arguments)
    config = re.search(r"--model-config '([^']+)'", arguments)
    if not model or not config or model.group(1) not in {*list_models(), *list_aliases()}:
        return []
    try:
        default_inputs(model.group(1), **json.loads(config.group(1)))
    except Exception as exc:  # noqa: BLE001 - any refusal is the finding
        return [f"{where}: `avemo train --model {model.group(1)} --model-config {config.group(1)}`: {exc}"]
    return []


def test_every_avemo_command_and_option_in_the_docs_exists():
    options, bad, checked = _cli_options(), [], 0
    for path in DOCS:
        for number, text in _snippets(path):
            for match in COMMAND.finditer(text):
                command, rest = match.groups()
                rest = COMMAND.split(rest)[0]  # up to the next command on the line
                checked += 1
                if command not in options:
                    bad.append(f"{_where(path, number)}: no command `avemo {command}`")
                    continue
                unknown = [o for o in OPTION.findall(rest) if o not in options[command]]
                if unknown:
                    bad.append(f"{_where(path, number)}: `avemo {command}` has no {', '.join(unknown)}")
                if command == "extract":
                    bad += _bad_features(rest, _where(path, number))
                if command == "train":
                    bad += _bad_model_config(rest, _where(path, number))
    assert checked > 100, f"only {checked} commands found: is the scan broken?"
    assert not bad, "commands of the docs that the CLI does not have:\n" + "\n".join(bad)


def _documented_scripts() -> dict[str, list[tuple[str, list[str]]]]:
    """script name -> [(where, options)] of every benchmark command of the docs."""
    scripts: dict[str, list[tuple[str, list[str]]]] = {}
    for path in DOCS:
        for number, text in _snippets(path):
            for name, rest in SCRIPT.findall(text):
                scripts.setdefault(name, []).append((_where(path, number), OPTION.findall(rest)))
    return scripts


def _usage(name: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get(
        "PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("usage:"), f"{name}.py --help: {done.stderr[-500:]}"
    return done.stdout


def test_every_benchmark_script_with_a_main_parses_its_arguments():
    """A script run with ``--help`` must print its usage, not run (``report.py`` and
    ``make_whisper_reference.py`` once rewrote docs/benchmarks.md and a test reference on ``--help``)."""
    missing = [path.name for path in sorted((REPO / "benchmarks").glob("*.py"))
               if '__name__ == "__main__"' in (text := path.read_text(encoding="utf-8"))
               and "ArgumentParser" not in text and "gen.parser(" not in text]
    assert not missing, f"benchmark scripts that ignore --help and run: {missing}"


def test_every_benchmark_command_in_the_docs_names_a_script_and_its_options():
    scripts, bad = _documented_scripts(), []
    assert len(scripts) > 15, f"only {sorted(scripts)} found: is the scan broken?"
    absent = sorted(name for name in scripts if not (REPO / "benchmarks" / f"{name}.py").exists())
    assert not absent, f"scripts named by the docs that do not exist: {absent}"
    with_options = sorted(name for name, uses in scripts.items() if any(options for _, options in uses))
    with ThreadPoolExecutor(2) as pool:
        usages = dict(zip(with_options, pool.map(_usage, with_options), strict=True))
    for name, usage in usages.items():
        accepted = set(OPTION.findall(usage))
        for where, options in scripts[name]:
            unknown = [o for o in options if o not in accepted]
            if unknown:
                bad.append(f"{where}: benchmarks/{name}.py has no {', '.join(unknown)}")
    assert not bad, "benchmark commands of the docs with options the script does not have:\n" + "\n".join(bad)


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for part in parts[cut:]:
            if not hasattr(found, part):
                return False
            found = getattr(found, part)
        return True
    return False


def test_every_dotted_name_and_repository_path_in_the_docs_exists():
    bad, names = [], 0
    for path in DOCS:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in re.findall(r"(?<![\w/.])(avemo(?:\.\w+)+)", line):
                names += 1
                if not _resolves(name):
                    bad.append(f"{_where(path, number)}: {name} is no module or attribute")
            for ref in re.findall(r"(?<![\w/.-])((?:src|benchmarks|tests|docs)/[\w./*-]+)", line):
                ref = ref.rstrip(".,;:")
                exists = list(REPO.glob(ref)) if "*" in ref else (REPO / ref).exists() or (path.parent / ref).exists()
                if not exists:
                    bad.append(f"{_where(path, number)}: no {ref}")
    assert names > 30, f"only {names} dotted names found: is the scan broken?"
    assert not bad, "names and paths of the docs that do not exist:\n" + "\n".join(bad)


def test_every_relative_link_of_the_docs_points_to_a_file():
    """``[text](target)`` outside code blocks: a target that is no URL or in-page anchor names a file or folder
    relative to the document (a report, a figure, the model card)."""
    bad, links = [], 0
    for path in DOCS:
        text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
        for match in re.finditer(r"\]\(([^)\s]+)\)", text):
            target = match.group(1).split("#")[0]
            links += 1
            if target and not re.match(r"[a-z]+:", target) and not (path.parent / target).exists():
                bad.append(f"{path.relative_to(REPO)}: link to {match.group(1)}")
    assert links > 100, f"only {links} links found: is the scan broken?"
    assert not bad, "links of the docs to files that do not exist:\n" + "\n".join(bad)

def _python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            blocks.append((_where(path, text[: match.start()].count("\n") + 1), match.group(1)))
    return blocks


def _undefined_names(source: str) -> set[str]:
    """Names a snippet loads that it neither assigns, imports nor gets from builtins (one flat scope:
    the snippets are short scripts)."""
    tree = ast.parse(source)
    defined = set(dir(builtins)) | PLACEHOLDERS
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - defined


@pytest.mark.parametrize(("where", "source"), _python_blocks(), ids=lambda value: value if ":" in value else "")
def test_every_python_block_of_the_docs_names_what_it_uses(where, source):
    compile(source, where, "exec")
    assert not _undefined_names(source), f"{where}: the snippet uses {sorted(_undefined_names(source))} " \
                                         "without importing or defining them"


def _help_of(command: str, option: str) -> str:
    import typer.main

    from avemo.cli import app

    params = typer.main.get_command(app).commands[command].params
    return next(p.help for p in params if option in (*p.opts, getattr(p, "name", None)))


def test_the_help_names_every_builtin_plan_suite_and_model_kind():
    """``--plan``'s and the suite argument's help list the shipped names (it once named ravdess_au
    alone, while ``--plan iemocap_loso`` is what the README shows), ``models --kind`` the kinds."""
    from avemo.datasets.folds import list_builtin_plans
    from avemo.evaluation.suite import list_suites
    from avemo.models.registry import KINDS

    kind_help = _help_of("models", "--kind")
    assert [k for k in KINDS if not re.search(rf"\b{k}\b", kind_help)] == [], kind_help

    plan_help, suite_help = _help_of("train", "--plan"), _help_of("benchmark", "suite")
    assert [p for p in list_builtin_plans() if not re.search(rf"\b{p}\b", plan_help)] == [], plan_help
    assert [s for s in list_suites() if not re.search(rf"\b{s}\b", suite_help)] == [], suite_help


def test_the_docs_state_the_shipped_bundles_threshold():
    """README.md and docs/serving.md give the shipped bundle's ``tau`` (a rebuilt bundle changes it)."""
    import json

    bundle = REPO / "src/avemo/inference/default_model/model.json"
    tau = json.loads(bundle.read_text(encoding="utf-8"))["config"]["abstention"]["tau"]
    for doc in (REPO / "README.md", REPO / "docs/serving.md"):
        assert f"{tau:.3f}" in doc.read_text(encoding="utf-8"), f"{doc.name} does not give the bundle's tau {tau:.3f}"


def test_docs_benchmarks_md_is_its_sections_assembled():
    """docs/benchmarks.md is what ``python benchmarks/report.py`` writes from docs/benchmarks/*.md: a
    section edited by hand (or the page alone) shows here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmarks_report", REPO / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    assert report.assembled() == (REPO / "docs" / "benchmarks.md").read_text(), \
        "docs/benchmarks.md differs from its sections: run python benchmarks/report.py"


def test_serving_md_names_every_field_of_the_prediction_json():
    """The JSON contract of ``avemo predict --format json`` and the API (docs/serving.md) names every
    field ``Prediction.to_dict()`` writes: the clip's, a modality's and a timeline window's."""
    import dataclasses

    from avemo.inference.result import ModalityStatus, Prediction, WindowPrediction

    text = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    spans = re.findall(r"`([^`\n]+)`", text) + re.findall(r'"([a-z_]+)"', text)
    named = {word for span in spans for word in re.findall(r"[a-z_]+", span)}
    fields = {f.name for cls in (Prediction, WindowPrediction, ModalityStatus) for f in dataclasses.fields(cls)}
    fields -= {"labels"}  # the model's labels: not written (the keys of probabilities, in the model's order)
    assert "labels" not in Prediction("a.wav", 1.0, None, None, {}, None, labels=("happy",)).to_dict()
    assert sorted(fields - named) == [], "fields of the prediction JSON that docs/serving.md does not name"


def test_serving_md_names_every_route_form_field_and_error_code():
    """The API table of docs/serving.md lists every route the server has (``GET /v1/progress/{progress_id}``,
    which the web page polls, was missing), the row of ``POST /v1/predict`` and of the batch every form
    field they take (``progress_id`` was missing), and the error table every error code the server
    answers with (``invalid_request`` was missing)."""
    from avemo.serving.batch import BATCH_FIELDS
    from avemo.serving.uploads import FORM_FIELDS

    text = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    serving = {p.name: p.read_text(encoding="utf-8") for p in (REPO / "src/avemo/serving").glob("*.py")}
    routes = re.findall(r'@app\.(get|post)\(\s*"(/[^"]*)"', serving["app.py"])
    assert ("post", "/v1/predict") in routes
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `((?:GET|POST) \S+)` \|.*$", text, re.MULTILINE)}
    api = {f"{method.upper()} {path}" for method, path in routes if path not in ("/", "/openapi.json")}
    assert sorted(api - set(rows)) == [], "routes that the API table of docs/serving.md does not list"
    for route, fields in (("POST /v1/predict", FORM_FIELDS), ("POST /v1/predict/batch", BATCH_FIELDS)):
        named = set(re.findall(r"`([a-z_]+)[`=]", rows[route]))
        assert sorted(set(fields) - named) == [], f"fields of {route} that its row does not name"
    codes = {c for source in serving.values() for c in re.findall(r'(?:ApiError|error_body)\([^,()]+, "([a-z_]+)"', source)}
    errors = "\n".join(line for line in text.splitlines() if re.match(r"^\| \d{3}", line))
    assert len(codes) > 10 and sorted(c for c in codes if f"`{c}`" not in errors) == []


def test_serving_md_gives_the_settings_defaults():
    """The settings table of docs/serving.md gives each ServeSettings field's default (sizes in MiB or
    KiB as written there, other numbers as they are; text defaults are described, not checked)."""
    import dataclasses

    from avemo.serving import ServeSettings

    defaults = {f.name: getattr(ServeSettings(), f.name) for f in dataclasses.fields(ServeSettings)}
    text = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    rows = [cells for line in text.splitlines() if line.startswith("| `")
            if len(cells := [c.strip() for c in line.strip("|").split("|")]) == 3]
    bad, checked = [], set()
    for names_cell, default_cell, _ in rows:
        names = [n for n in re.findall(r"`(\w+)`", names_cell.split("(")[0]) if n in defaults]
        values = re.findall(r"[\d.]+(?: \w+)?", default_cell.replace(",", " "))
        if not values:  # a default in words ("the bundled model")
            continue
        for name, value in zip(names, values if len(values) == len(names) else values[:1] * len(names),
                               strict=True):
            number, _, unit = value.partition(" ")
            scale = {"MiB": 2**20, "KiB": 2**10}.get(unit, 1)
            if isinstance(defaults[name], int | float) and not isinstance(defaults[name], bool):
                checked.add(name)
                if abs(float(number) * scale - defaults[name]) > 1e-9:
                    bad.append(f"{name}: the page says {value}, the code {defaults[name]}")
    assert len(checked) > 12, f"only {sorted(checked)} checked: is the table still there?"
    assert not bad, "docs/serving.md settings defaults that differ from ServeSettings:\n" + "\n".join(bad)


def test_serving_md_gives_the_csv_header_and_every_column():
    """A spreadsheet user reads what each column of ``avemo predict --format csv`` holds in
    docs/serving.md ("The CSV"): the bundled model's header as written, and every optional column."""
    from avemo.inference.bundle import read_bundle
    from avemo.inference.formats import csv_columns

    text = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    assert ",".join(csv_columns(read_bundle()[0].labels)) in text
    section = text.split("### The CSV")[1].split("\n### ")[0]
    every = csv_columns((), text=True, speaker=True, text_used=True)
    assert [c for c in every if f"`{c}`" not in section] == []
