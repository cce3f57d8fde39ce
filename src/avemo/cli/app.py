"""The ``avemo`` Typer app, its global options (``--verbose``, ``--version``), the consoles the
commands print to, and the console entry point :func:`main` (one-line errors, exit codes)."""

from __future__ import annotations

import ctypes
import inspect
import logging
import sys
from typing import Annotated

import typer
from rich.console import Console

from avemo.errors import AvemoError
from avemo.version import __version__

app = typer.Typer(
    name="avemo",
    help="Audio-visual emotion recognition: predict, extract features, train, evaluate, benchmark.\n\n"
         "Outputs: a FILE option (predict --out, evaluate --json, extract --summary) writes into a folder that "
         "exists (a mistyped folder is refused before the work starts); a FOLDER option (--out of extract, train, "
         "benchmark and export, evaluate --plots) is created with its parents, and removed again when the command "
         "fails or is interrupted before writing into it (a folder that existed stays).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
console_err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"avemo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _help_as_paragraphs(typer_app: typer.Typer) -> None:
    """Each command's help (its docstring) as paragraphs of one line each. Typer's rich help keeps a
    docstring's single line breaks and then wraps the lines to the terminal once more, which left
    ragged lines ("Options given here" / "override ..."); a blank line still ends a paragraph."""
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            paragraphs = inspect.cleandoc(info.callback.__doc__).split("\n\n")
            info.help = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def _interrupt_handled() -> None:
    """Tell the interpreter that the Ctrl-C it saw was handled. CPython 3.11 sets a flag when a
    KeyboardInterrupt ends code that a library runs through ``PyRun_*`` (its own nested call), and
    when the program ran as a module it kills itself with SIGINT at exit whenever the flag is up,
    whoever caught the interrupt later: ``python -m avemo`` then ended with -2, not 130, about one
    Ctrl-C in three during training. Python 3.12 keeps the flag inside its runtime state, where no
    symbol reaches it; nothing is done there."""
    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except ValueError:  # no such symbol in this interpreter
        pass


def main() -> None:
    """Console entry point: one-line errors instead of tracebacks for user errors."""
    try:
        app()
    except AvemoError as exc:
        print(f"avemo: error: {exc}", file=sys.stderr)  # one line, never wrapped
        sys.exit(2)
    except KeyboardInterrupt:  # before or after the command (Typer handles it during one)
        print("avemo: interrupted", file=sys.stderr)
        _interrupt_handled()
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 130:  # Typer turns Ctrl-C during a command into a silent exit with code 130
            print("avemo: interrupted", file=sys.stderr)
            _interrupt_handled()
        raise
