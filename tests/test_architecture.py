"""The layering of the package stays as ``docs/architecture.md`` draws it.

Every ``import`` of every module under ``src/avemo`` (at module level or inside a function) is
read with :mod:`ast` and checked against the table of allowed imports in that document; the
table must fit the document's picture of the layers (every allowed import points down) and the
modules must not import each other in a circle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "avemo"
DOC = REPO / "docs" / "architecture.md"


def _section(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {name}:start -->(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"docs/architecture.md has no {name} section"
    return match.group(1)


def allowed_imports() -> dict[str, set[str]]:
    """package -> the packages it may import, as the document's table says."""
    table: dict[str, set[str]] = {}
    for line in _section("import-table").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("package", "") or set(cells[0]) <= {"-"}:
            continue
        table[cells[0]] = {c.strip() for c in cells[1].split(",") if c.strip()}
    return table


def layers() -> dict[str, int]:
    """package -> its row in the document's picture, counted from the bottom (foundation = 0)."""
    rows = [line.split()[1:] for line in _section("layers").splitlines() if line.strip() and "```" not in line]
    return {name: len(rows) - 1 - i for i, row in enumerate(rows) for name in row}


def foundation() -> set[str]:
    """The bottom row of the picture: the packages every other package may import."""
    rows = layers()
    return {name for name, row in rows.items() if row == 0}


FOUNDATION = foundation()


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The avemo modules ``name`` imports (a ``from pkg import sub`` of a submodule names the submodule)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "avemo")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "avemo":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in known else target


def package_of(module: str) -> str:
    """``avemo.training.data`` -> ``training``; ``avemo.cli`` -> ``cli``; ``avemo`` -> ``avemo``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "avemo"


def module_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {t for t in imports_of(name, path, known) if t in known and t != name}
            for name, path in known.items()}


def test_every_package_and_top_level_module_has_a_row():
    table = allowed_imports()
    packages = {package_of(m) for m in modules()}
    assert packages - set(table) == set(), "add the new package to docs/architecture.md"
    assert set(table) - packages == set(), "the table lists packages that do not exist"
    assert set(layers()) == set(table), "the picture and the table name different packages"


def test_the_table_points_down_the_picture():
    rows = layers()
    for package, targets in allowed_imports().items():
        for target in targets:
            assert target in rows, f"{package} may import {target}, which is not in the picture"
            both_foundation = package in FOUNDATION and target in FOUNDATION
            assert rows[target] < rows[package] or both_foundation, (
                f"{package} (row {rows[package]}) may import {target} (row {rows[target]}): not downwards"
            )


def test_the_table_has_no_cycle():
    table = allowed_imports()
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"cycle in the table: {' -> '.join((*path, node))}"
        if node in done:
            return
        for nxt in table.get(node, ()):
            visit(nxt, (*path, node))
        done.add(node)

    for package in table:
        visit(package, ())


def test_no_module_imports_a_package_above_it():
    table = allowed_imports()
    bad = []
    for module, targets in module_graph().items():
        package = package_of(module)
        allowed = table[package] | {package} | (FOUNDATION if package not in FOUNDATION else set())
        bad += [f"{module} imports {t}" for t in sorted(targets) if package_of(t) not in allowed]
    assert not bad, "imports the table of docs/architecture.md does not allow:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    graph = module_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("source, bad", [
    ("from avemo.training.data import gather\n", "avemo.inference.fake imports avemo.training.data"),
    ("def f():\n    from avemo.evaluation import benchmark\n", "avemo.inference.fake imports avemo.evaluation.benchmark"),
])
def test_the_check_sees_module_level_and_function_level_imports(tmp_path, source, bad):
    path = tmp_path / "fake.py"
    path.write_text(source)
    known = modules()
    targets = set(imports_of("avemo.inference.fake", path, known))
    table = allowed_imports()
    found = [f"avemo.inference.fake imports {t}" for t in sorted(targets)
             if package_of(t) not in table["inference"] | {"inference"} | FOUNDATION]
    assert found == [bad]


MAX_FUNCTION_LINES = 80


def test_no_function_is_over_80_lines():
    """The house rule, over the whole package and the benchmark scripts."""
    files = sorted(PACKAGE.rglob("*.py")) + sorted((REPO / "benchmarks").glob("*.py"))
    long = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


_OUTSIDE = re.compile(r"(?:\.\./)+shared/(?!data/)|\bGUIDE\.md\b")


def test_the_package_cites_no_file_outside_it():
    """Papers and notes are cited by reference (authors, title, section), never by a file that an
    installed package does not have (``../shared/papers/...``, the project's working notes); paths
    under ``../shared/data/`` are examples of where a dataset lives, not citations."""
    found = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".toml", ".md", ".txt", ".json"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _OUTSIDE.search(line):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "citations of files outside the package:\n" + "\n".join(found)


def test_a_config_refuses_a_bad_value_with_config_error():
    """Issue 14: one error type for a bad configuration (``*Config`` dataclasses check their values in
    ``__post_init__``), whichever layer the config belongs to; the CLI shows it as one line."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for cls in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(cls, ast.ClassDef) and cls.name.endswith("Config")):
                continue
            for node in ast.walk(cls):
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                    name = getattr(node.exc.func, "id", getattr(node.exc.func, "attr", ""))
                    if name.endswith("Error") and name != "ConfigError":
                        found.append(f"{path.relative_to(REPO)}:{node.lineno} {cls.name} raises {name}")
    assert not found, "\n".join(found)
