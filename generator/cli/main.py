"""The CLI root. Commands are thin: parse, wire, render. One module per command group.

Exit codes: 0 ok, 1 findings (observed flows the policies would deny), 2 usage or
input error. Errors of the FlowpolError hierarchy become one line on stderr.
"""

from __future__ import annotations

import sys

import typer

from recorder.errors import FlowpolError

app = typer.Typer(
    name="flowpol",
    help="Least-privilege Kubernetes NetworkPolicies from observed traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each command group module adds its commands to ``app``.
    import importlib

    for mod in ("generate", "import_", "snapshot", "verify"):
        try:
            importlib.import_module(f"generator.cli.{mod}").register(app)
        except ModuleNotFoundError as e:
            if e.name != f"generator.cli.{mod}":
                raise


_register()


def main() -> None:
    try:
        app(standalone_mode=False)
    except FlowpolError as e:
        typer.echo(f"flowpol: error: {e}", err=True)
        sys.exit(e.exit_code)
    except (typer.Exit,) as e:  # explicit exits from commands
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("flowpol: aborted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(2)
        raise
    sys.exit(0)


if __name__ == "__main__":
    main()
