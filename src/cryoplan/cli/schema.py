"""`cryoplan schema NAME`: print the JSON Schema of one of cryoplan's JSON documents."""

from __future__ import annotations

import json

import typer

from cryoplan.cli.app import app
from cryoplan.errors import InputError
from cryoplan.schemas import SCHEMAS, json_schema


@app.command(
    "schema",
    epilog="Documents: " + "; ".join(f"{key}, {description}" for key, (description, _) in SCHEMAS.items()) + ".",
)
def schema_command(
    name: str = typer.Argument(None, help=f"The document: {', '.join(SCHEMAS)}. Without one, list them."),
) -> None:
    """Print the JSON Schema (draft 2020-12) of a JSON document cryoplan reads or writes."""
    if name is None:
        for key, (description, _) in SCHEMAS.items():
            typer.echo(f"{key}: {description}")
        return
    if name not in SCHEMAS:
        raise InputError("NAME", f"one of {', '.join(SCHEMAS)}", name)
    typer.echo(json.dumps(json_schema(name), indent=2, ensure_ascii=False))
