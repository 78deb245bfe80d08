"""The Typer application that every command module registers on, and the entry point that maps errors
to exit codes (0 success, 2 bad input with one line on stderr, 1 internal failure).

The entry point imports only the module of the command asked for (`load_commands`), so that
``cryoplan --version`` or ``cryoplan assess`` does not pay for the imaging, thermal and service libraries.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import typer
from typer.exceptions import TyperException

from cryoplan import __version__
from cryoplan.errors import InputError

app = typer.Typer(
    name="cryoplan",
    help="Plan, simulate and verify liver-tumour cryoablation: eligibility, imaging, freeze plans, reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"cryoplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """cryoplan: from a liver-tumour case to a verified cryoablation plan."""


# Command name → the module of `cryoplan.cli` that registers it.
COMMANDS = {
    "assess": "assess",
    "batch": "batch",
    "schema": "schema",
    "inspect": "imaging",
    "plan": "planning",
    "demo": "planning",
    "verify": "planning",
    "probes": "thermal",
    "isotherms": "thermal",
    "simulate": "thermal",
    "validate": "thermal",
    "serve": "service",
    "users": "service",
}


def load_commands(argv: Sequence[str] = ()) -> None:
    """Register the commands that `argv` (the arguments after ``cryoplan``) can reach.

    The named command's module alone; none for a bare ``--version``; every module otherwise (help, an
    unknown name), so that help lists every command and an unknown one is reported as such.
    """
    words = [word for word in argv if not word.startswith("-")]
    if words and words[0] in COMMANDS:
        modules = {COMMANDS[words[0]]}
    elif "--version" in argv and not words:
        modules = set()
    else:
        modules = set(COMMANDS.values())
    for module in sorted(modules):
        importlib.import_module(f"cryoplan.cli.{module}")


def main() -> None:
    """Console-script entry point."""
    try:
        load_commands(sys.argv[1:])
        status = app(standalone_mode=False)
    except TyperException as error:  # a usage error from Typer's parser: one line, exit 2
        message = error.format_message()
        context = getattr(error, "ctx", None)
        if not message.strip() and context is not None:  # a bare group: show its help
            typer.echo(context.get_help())
            sys.exit(0)
        print(f"cryoplan: error: {message}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", 2))
    except typer.Abort:
        print("cryoplan: interrupted", file=sys.stderr)
        sys.exit(130)
    except InputError as error:
        print(f"cryoplan: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("cryoplan: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # an internal failure: one line, exit 1
        print(f"cryoplan: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)
