"""What the training-side commands (``extract``, ``train``, ``evaluate``, ``benchmark``) read and
check before the work: a model's options and inputs, the tables it needs, the speakers chosen, the
device, and the dataset reader's skips named in an error."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avemo.errors import AvemoError


def _check_tables(inputs: Mapping[str, Any], visual_table: Path | None, who: str | None = None, *,
                  optional: bool = False) -> None:
    """A model of these ``inputs`` that reads a table not given (--visual-table) is refused in one line
    (``who``: the model's name, said first), before any data is read or transcribed. ``optional``: the
    model's optional inputs may be left out (a late-fusion checkpoint scored on the experts a corpus can
    feed), not all of them (:func:`~avemo.training.data.check_some_input`)."""
    from avemo.datasets.tables import AU_MEANS_NAME
    from avemo.training.data import check_some_input, check_tables

    try:
        (check_some_input if optional else check_tables)(inputs, [AU_MEANS_NAME] if visual_table else [])
    except AvemoError as exc:
        if who is None:
            raise
        raise type(exc)(f"{who}: {exc.reason}", exc.path) from None


def _speakers(value: str | None) -> list[str] | None:
    if value is None or value.strip().lower() == "all":
        return None
    return [s.strip() for s in value.split(",") if s.strip()]


def _check_device(name: str) -> None:
    """A device torch does not know or cannot use (--device cuda on a machine without a GPU) is refused
    before the data is read and its features extracted (it failed with a traceback at the first epoch)."""
    from avemo.device import torch_device

    torch_device(name)


def _model_config(text: str | None) -> dict:
    if not text:
        return {}
    from avemo import config as cfg

    path = Path(text)
    if path.suffix in (".toml", ".yaml", ".yml", ".json") and path.exists():
        return cfg.load_file(path)
    try:
        value = json.loads(text)
    except ValueError:
        raise AvemoError(f"--model-config is neither a config file nor JSON: {text!r}") from None
    if not isinstance(value, dict):
        raise AvemoError("--model-config must be a JSON object, e.g. '{\"video\": \"au_mlp\"}'")
    return value


def _model_inputs(model: str, model_config: str | None):
    """The InputSpecs of a model of ``avemo train`` (with --model-config); bad names and options fail here
    in one line, before the data is read."""
    from avemo.models import default_inputs

    return default_inputs(model, **_model_config(model_config))


def _model_context(model: str, model_config: str | None) -> int | None:
    """The dialogue context of a model of ``avemo train`` (with --model-config), without building it."""
    from avemo.models import default_dialogue_context

    return default_dialogue_context(model, **_model_config(model_config))


@contextlib.contextmanager
def _naming_reader_skips(skipped: Sequence[tuple[str, str]]):
    """An error of the work that follows the reading of a corpus says how many of its files the reader
    skipped, and the first with its reason: "every speaker would be a validation speaker" or "label sets
    ... cannot be compared" came without the skipped files that often cause it (a labels CSV row with an
    empty speaker cell, a missing file), which were listed only at the end of a run that succeeded."""
    try:
        yield
    except AvemoError as exc:
        if skipped:
            path, reason = skipped[0]
            files = f"{len(skipped)} file{'s' if len(skipped) > 1 else ''}"
            exc.reason += f" (the dataset reader skipped {files}, e.g. {Path(path).name} ({reason}))"
        raise
