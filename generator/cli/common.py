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
DumpTime = Annotated[Optional[str], typer.Option(
    "--time", help="Time of time-less inputs (conntrack -L dumps), RFC 3339; "
                   "default: the file's modification time.")]


def read_options(include_dropped: bool, dump_time: str | None):
    """The ReadOptions of the shared flow-reading options."""
    from recorder.sources import ReadOptions

    return ReadOptions(include_dropped=include_dropped,
                       dump_time=parse_time_option(dump_time, "--time"))


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


# The dialect policies are written in (`flowpol generate`, `diff`, `migrate`).
Dialect = Annotated[str, typer.Option(
    "--dialect", metavar="DIALECT",
    help="kubernetes (NetworkPolicy), cilium (CiliumNetworkPolicy) or cluster-network-policy "
         "(a Baseline ClusterNetworkPolicy plus NetworkPolicies).")]


def dialect_option(value: str) -> str:
    from generator.synthesize.render import DIALECTS

    if value not in DIALECTS:
        raise UsageError(f"--dialect {value!r} is not one of {', '.join(DIALECTS)}")
    return value


# Learned DNS names written as Cilium matchPatterns (`generate`, `migrate`).
FqdnPatterns = Annotated[List[str], typer.Option(
    "--fqdn-pattern", metavar="PATTERN",
    help="With --dialect cilium: write the learned DNS names this Cilium matchPattern admits "
         "as the pattern (e.g. '*.s3.amazonaws.com': '*' never crosses a dot, a leading '**.' "
         "is one or more labels); repeatable, the first that admits a name wins.")]


def fqdn_patterns_option(values: List[str], dialect: str) -> tuple[str, ...]:
    from generator.verify.names import matches_every_name, valid_pattern

    if values and dialect != "cilium":
        raise UsageError("--fqdn-pattern needs --dialect cilium")
    for value in values:
        if not valid_pattern(value):
            raise UsageError(f"--fqdn-pattern {value!r} is not a DNS name pattern: letters, "
                             "digits, '-', '_', '*' and single dots between labels, at most 255")
        if matches_every_name(value):
            raise UsageError(f"--fqdn-pattern {value!r} admits every DNS name, so every address "
                             "a pod resolves; give at least one fixed label, e.g. '*.example.com'")
    return tuple(dict.fromkeys(values))
