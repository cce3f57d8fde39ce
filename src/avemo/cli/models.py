"""``avemo models``: the model zoo."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from avemo.cli.app import app, console


@app.command()
def models(
    kind: Annotated[str | None, typer.Option(help="Only audio, video, text or fusion models.")] = None,
    params: Annotated[bool, typer.Option("--params/--no-params", help="Build each model to count its parameters.")] = True,
) -> None:
    """List the model zoo: name, kind, paper, parameters, summary."""
    from avemo.models import count_parameters, create_model, list_aliases, list_models, model_info

    table = Table("name", "kind", "parameters", "paper", "summary")
    for name in list_models(kind):
        info = model_info(name)
        count = f"{count_parameters(create_model(name)):,}" if params else ""
        table.add_row(name, info["kind"], count, info["paper"], info["summary"])
    console.print(table)
    aliases = list_aliases()
    if aliases:
        console.print("aliases: " + ", ".join(f"{a} -> {t}" for a, t in aliases.items()))
