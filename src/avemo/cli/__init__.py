"""The ``avemo`` command line: thin wrappers over the library.

Errors a user can cause are printed as one line (``avemo: error: FILE: reason``) with
exit code 2; commands with many inputs go on past bad ones and list them at the end, then exit 1
where they give one result per input (info, predict, extract, prepare) and 0 where they give one
result from all of them (train, evaluate, benchmark); the README's "Exit codes" says it for users.
Of the files a command skipped, the first 20 are named one a line and the others counted by reason,
with where the full list is (:func:`~avemo.cli.listing._print_skipped`).

One Typer app (:mod:`avemo.cli.app`), one module per command (``info``, ``extract``, ``prepare``,
``train``, ``evaluate``, ``benchmark``, ``predict`` with ``demo``, ``export``, ``models``, ``serve``);
the modules they share: ``options`` (option declarations and help texts), ``progress``, ``listing``
(skipped and duplicate files), ``files``, ``inputs`` and ``transcripts``.
"""

from __future__ import annotations

from avemo.cli.app import _help_as_paragraphs, app, main

# the commands register on the app as their modules are imported, in the order of `avemo --help`
from avemo.cli import info, extract, prepare, train, evaluate, benchmark, predict, export, models, serve  # noqa: F401  # isort: skip

_help_as_paragraphs(app)

__all__ = ["app", "main"]
