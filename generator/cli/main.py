"""The CLI root. Commands are thin: parse, wire, render. One module per command group.

Exit codes: 0 ok, 1 findings (observed flows the policies would deny), 2 usage or
input error. Errors of the FlowpolError hierarchy become one line on stderr. Bad input
wins over findings: a command that reads flows prints its findings and writes its output,
then raises the input error (generator.pipeline.raise_for_bad_input).
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


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"flowpol {version('flowpol')}")
        raise typer.Exit(0)


@app.callback()
def _root(_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                        help="Print flowpol's version and exit.")) -> None:
    """Least-privilege Kubernetes NetworkPolicies from observed traffic."""


def _register() -> None:
    # Each command group module adds its commands to ``app``.
    import importlib

    for mod in ("generate", "import_", "snapshot", "verify", "record", "diff", "migrate", "propose_git"):
        importlib.import_module(f"generator.cli.{mod}").register(app)


_register()


def _click_exception() -> type[Exception]:
    # typer >= 0.20 vendors click as typer._click; older typer depends on click.
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - older typer
        from click.exceptions import ClickException
    return ClickException


def main() -> None:
    try:
        # standalone_mode=False: typer.Exit(n) and a command's int return value come
        # back as the return value instead of exiting inside typer.
        rc = app(standalone_mode=False)
    except FlowpolError as e:
        typer.echo(f"flowpol: error: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:  # defensive: non-standalone typer returns it instead
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("flowpol: aborted", err=True)
        sys.exit(130)
    except _click_exception() as e:  # usage errors: unknown option, missing argument
        e.show()  # type: ignore[attr-defined]
        sys.exit(2)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
