"""``avemo models``: the model zoo."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from avemo.cli.app import app, console
from avemo.errors import AvemoError


@app.command()
def models(
    kind: Annotated[str | None, typer.Option(help="Only audio, video or fusion (several modalities) models; "
                                                  "text: no model is text alone, those that read it are named.")] = None,
    params: Annotated[bool, typer.Option("--params/--no-params", help="Build each model to count its parameters.")] = True,
) -> None:
    """List the model zoo: name, kind, paper, parameters, summary."""
    from avemo.models import count_parameters, create_model, list_aliases, list_models, model_info

    names = list_models(kind)
    if kind is not None and not names:  # `--kind text` printed an empty table: gao_dialogue is a fusion model
        from avemo.models import default_inputs

        readers = [n for n in list_models() if kind in {s.modality for s in default_inputs(n).values()}]
        raise AvemoError(f"no model is of kind {kind} (a model of several modalities is of kind fusion); "
                         f"those that read {kind}: {', '.join(readers) or 'none'} (avemo models --kind fusion)")
    table = Table("name", "kind", "parameters", "paper", "summary")
    for name in names:
        info = model_info(name)
        count = f"{count_parameters(create_model(name)):,}" if params else ""
        table.add_row(name, info["kind"], count, info["paper"], info["summary"])
    console.print(table)
    aliases = list_aliases()
    if aliases:
        console.print("aliases: " + ", ".join(f"{a} -> {t}" for a, t in aliases.items()))
