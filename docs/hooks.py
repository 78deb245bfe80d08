"""MkDocs hook: the reference pages are generated from the code at every build, so they cannot drift.

``reference/case-file.md`` comes from the pydantic models of `cryoplan.case`, ``reference/cli.md`` from the
command-line application's own help, ``reference/service-settings.md`` from the service's settings.
"""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path

import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from cryoplan.case import Case
from cryoplan.cli import app, load_commands
from cryoplan.service.settings import ServiceSettings

REFERENCE = Path(__file__).parent / "reference"


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (list, tuple):
        return "list of " + _type_name(typing.get_args(annotation)[0])
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"mapping {_type_name(key)} → {_type_name(value)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return f"`{getattr(annotation, '__name__', str(annotation))}`"


def _models(model: type[BaseModel], seen: dict[str, type[BaseModel]]) -> None:
    if model.__name__ in seen:
        return
    seen[model.__name__] = model
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                _models(annotation, seen)
            stack.extend(typing.get_args(annotation))


def _limits(field) -> str:
    words = []
    for item in field.metadata:
        for name, symbol in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"), ("min_length", "length ≥")):
            value = getattr(item, name, None)
            if value is not None:
                words.append(f"{symbol} {value}")
    return ", ".join(words)


def case_file_reference() -> str:
    seen: dict[str, type[BaseModel]] = {}
    _models(Case, seen)
    lines = [
        "# Case file reference",
        "",
        "Generated from the models of `cryoplan.case` at every documentation build. A case file is YAML or JSON;",
        "an unknown field, a wrong type (numbers in quotes included) or a value out of range is refused with one",
        "line naming the field.",
        "",
    ]
    for name, model in seen.items():
        lines += [f"## {name}", "", inspect.cleandoc(model.__doc__ or ""), "", "| field | type | required | limits |"]
        lines.append("|---|---|---|---|")
        for field_name, field in model.model_fields.items():
            if field.is_required():
                required = "yes"
            elif field.default is None or isinstance(field.default, BaseModel | list | dict):
                required = "no"
            else:
                required = f"no (default `{field.default}`)"
            lines.append(f"| `{field_name}` | {_type_name(field.annotation)} | {required} | {_limits(field)} |")
        lines.append("")
    return "\n".join(lines)


def cli_reference() -> str:
    load_commands()
    root = typer.main.get_command(app)
    runner = CliRunner()
    lines = ["# Command-line reference", "", "Generated from `cryoplan --help` at every documentation build.", ""]

    def walk(command, path: list[str]) -> None:
        # Typer carries its own copy of click, so the command's class supplies its context class.
        context = command.context_class(command, info_name=" ".join(path))
        if len(path) > 1:
            shown = runner.invoke(app, [*path[1:], "--help"], terminal_width=110).output
            lines.extend([f"## `{' '.join(path)}`", "", "```text", shown.rstrip(), "```", ""])
        if hasattr(command, "list_commands"):
            for name in command.list_commands(context):
                walk(command.get_command(context, name), [*path, name])

    walk(root, ["cryoplan"])
    return "\n".join(lines)


def service_settings_reference() -> str:
    lines = [
        "# Service settings",
        "",
        "Generated from `cryoplan.service.settings.ServiceSettings` at every documentation build. Each setting is",
        "an environment variable; a bad value stops `cryoplan serve` with one line naming it (exit 2).",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in ServiceSettings.model_fields.items():
        default = "computed" if field.default_factory is not None else f"`{field.default}`"
        lines.append(f"| `CRYOPLAN_{name.upper()}` | {default} | {field.description or ''} |")
    return "\n".join(lines) + "\n"


def on_pre_build(config) -> None:
    REFERENCE.mkdir(exist_ok=True)
    (REFERENCE / "case-file.md").write_text(case_file_reference())
    (REFERENCE / "cli.md").write_text(cli_reference())
    (REFERENCE / "service-settings.md").write_text(service_settings_reference())
