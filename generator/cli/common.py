"""Helpers shared by CLI commands: console, progress, option parsing."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated, Callable, Iterator, List, Optional

import typer
from rich.console import Console

from recorder.errors import UsageError


# Options of the commands that read flows (generate, verify): declared once so that they
# read and behave the same everywhere. Use as ``inputs: FlowInputs`` etc.
FlowInputs = Annotated[List[str], typer.Argument(
    metavar="INPUT...",
    help="Flow inputs: files or directories (Hubble JSON, flowpol flow logs, conntrack, "
         "pcap; .gz ok).")]
SnapshotFiles = Annotated[List[str], typer.Option(
    "--snapshot", "-s", metavar="CLUSTER",
    help="kubectl get ... -A -o json|yaml output; repeatable, or a directory.")]
InputFormat = Annotated[Optional[str], typer.Option("--format", help="Force the input format.")]
IncludeDropped = Annotated[bool, typer.Option(
    "--include-dropped", help="Count DROPPED flows as needed traffic.")]
Strict = Annotated[bool, typer.Option(
    "--strict", help="Stop at the first bad line or unreadable input and write nothing "
                     "(without it: skipped, counted, the output written from every valid "
                     "record, then exit 2).")]
Jobs = Annotated[Optional[int], typer.Option(
    "--jobs", "-j", min=1, metavar="N",
    help="Read the inputs in N worker processes (default: the CPUs available). The "
         "output is the same for every N.")]
DumpTime = Annotated[Optional[str], typer.Option(
    "--time", help="Time of time-less inputs (conntrack -L dumps), RFC 3339; "
                   "default: the file's modification time.")]


def read_options(include_dropped: bool, dump_time: str | None):
    """The ReadOptions of the shared flow-reading options."""
    from recorder.sources import ReadOptions

    return ReadOptions(include_dropped=include_dropped,
                       dump_time=parse_time_option(dump_time, "--time"))


def jobs(value: int | None) -> int:
    """The worker processes of ``--jobs``: as given, else the CPUs available."""
    from generator.parallel import available_cpus

    return value if value is not None else available_cpus()


def stderr_console() -> Console:
    return Console(stderr=True)


@contextlib.contextmanager
def progress_reporter(console: Console, what: str) -> Iterator[Callable[[int], None] | None]:
    """A live counter on a terminal; nothing at all when stderr is piped."""
    if not console.is_terminal:
        yield None
        return
    with console.status(f"{what}...") as status:
        def update(n: int) -> None:
            status.update(f"{what}: {n:,} records")
        yield update


def parse_time_option(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    from recorder.timefmt import parse_time

    try:
        return parse_time(value)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not an RFC 3339 time "
                         "(e.g. 2026-11-20T09:00:00Z)") from None


def parse_duration(value: str, option: str) -> int:
    """'60s', '5m', '2h', '7d' or plain seconds -> nanoseconds (positive)."""
    from recorder.timefmt import parse_duration as parse

    try:
        ns = parse(value.strip().lower())
    except ValueError as e:
        raise UsageError(f"{option}: {e}") from None
    if ns <= 0:
        raise UsageError(f"{option} must be positive, got {value!r}")
    return ns


def is_tty() -> bool:
    return sys.stderr.isatty()


# Minimum evidence (`flowpol diff`, `flowpol migrate`): declared once, parsed by
# ``thresholds``.
MinObservation = Annotated[str, typer.Option(
    "--min-observation", metavar="DURATION",
    help="Act only on what a recording of at least this long shows (e.g. 7d, 12h).")]
MinFlows = Annotated[int, typer.Option(
    "--min-flows", min=0, metavar="N",
    help="Act only on workloads or policies seen in at least N observed connections.")]


def thresholds(min_observation: str, min_flows: int):
    """The Thresholds of the shared minimum-evidence options."""
    from generator.review.evidence import Thresholds

    return Thresholds(parse_duration(min_observation, "--min-observation"), min_flows)
