"""The CLI root. Commands are thin: parse, wire, render. One module per command group.

Exit codes: 0 ok, 1 findings (observed flows the policies would deny), 2 usage or
input error. Errors of the FlowpolError hierarchy become one line on stderr. Bad input
wins over findings: a command that reads flows prints its findings and writes its output,
then raises the input error (generator.pipeline.raise_for_bad_input).
"""

from __future__ import annotations

import os
import sys

import typer

from generator.cli.command import FlowpolTyper, Interrupted, OutputClosed
from generator.version import __version__
from recorder.errors import FlowpolError

app = FlowpolTyper(
    name="flowpol",
    help="Least-privilege Kubernetes NetworkPolicies from observed traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"flowpol {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True,
                                       callback=_print_version,
                                       help="Print the version and exit.")) -> None:
    pass


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


def written_text() -> str:
    """What an interrupted command leaves behind, in a few words."""
    from generator.output.files import written_so_far

    changed = written_so_far()
    if not changed:
        return "nothing written"
    where = sorted({str(p.parent) if p.suffix else str(p) for p in changed})
    return (f"{len(changed)} file(s) in {', '.join(where[:3])} written or replaced before "
            "the stop: that output is incomplete, run the command again")


def _quiet_stdout() -> None:
    """After EPIPE: later writes and the interpreter's final flush of stdout go nowhere
    (the Python documentation's recipe, "Note on SIGPIPE" in the signal module)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _report_bug(e: BaseException) -> None:
    """An exception nothing else handled: exit 2 (exit 1 would read as findings), what
    was being read, and what a bug report needs; the traceback with FLOWPOL_DEBUG=1."""
    from generator import now_reading

    from generator.cli.common import say

    where = now_reading.current()
    message = " ".join(str(e).split())[:500]  # one line, whatever the exception holds
    say([f"flowpol: error: internal error while reading {where}" if where is not None
         else "flowpol: error: internal error",
         f"flowpol: this is a bug in flowpol {__version__}: please report it with the "
         f"command line and this: {type(e).__name__}: {message}",
         f"flowpol: {written_text()}"], err=True)
    if os.environ.get("FLOWPOL_DEBUG") == "1":
        import traceback

        traceback.print_exception(e, file=sys.stderr)
    else:
        typer.echo("flowpol: run with FLOWPOL_DEBUG=1 for the traceback", err=True)


def main() -> None:
    try:
        # standalone_mode=False: typer.Exit(n) and a command's int return value come
        # back as the return value instead of exiting inside typer.
        rc = app(standalone_mode=False, prog_name="flowpol")
        sys.stdout.flush()  # a closed pipe shows here when the output was short
    except (OutputClosed, BrokenPipeError):
        # The reader had enough (`| head`): as for other CLIs, that is no error.
        _quiet_stdout()
        sys.exit(0)
    except Interrupted:
        from generator.cli.common import say

        say([f"flowpol: interrupted; {written_text()}"], err=True)
        sys.exit(130)
    except FlowpolError as e:
        from generator.cli.common import say

        # one line each, whatever a file name or an excerpt of the input in it holds
        say([f"flowpol: error: {e}"] + ([f"flowpol: hint: {e.hint}"] if e.hint else []),
            err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:  # defensive: non-standalone typer returns it instead
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("flowpol: aborted", err=True)
        sys.exit(130)
    except _click_exception() as e:  # usage errors: unknown option, missing argument
        e.show()  # type: ignore[attr-defined]
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - the last resort: a bug in flowpol
        _report_bug(e)
        sys.exit(2)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
