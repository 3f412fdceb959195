"""Helpers shared by CLI commands: console, progress, option parsing."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Annotated, Iterable, Iterator, List, Optional

import typer

from recorder.errors import UsageError

if TYPE_CHECKING:  # rich is imported where a console is made (~50 ms of start-up)
    from rich.console import Console


# Options of the commands that read flows (generate, verify): declared once so that they
# read and behave the same everywhere. Use as ``inputs: FlowInputs`` etc.
FlowInputs = Annotated[List[str], typer.Argument(
    metavar="INPUT...",
    help="Flow inputs: files or directories (Hubble JSON, flowpol flow logs, conntrack, "
         "pcap; .gz ok).")]
SnapshotFiles = Annotated[List[str], typer.Option(
    "--snapshot", "-s", metavar="CLUSTER",
    help="kubectl get ... -A -o json|yaml output; repeatable, or a directory.")]
InputFormat = Annotated[Optional[str], typer.Option(
    "--format", metavar="FORMAT",
    help="Read every input as this format (hubble, flowlog, conntrack, pcap) instead of "
         "detecting it.")]
IncludeDropped = Annotated[bool, typer.Option(
    "--include-dropped", help="Count DROPPED flows as needed traffic.")]
Strict = Annotated[bool, typer.Option(
    "--strict", help="Stop at the first bad line or unreadable input and write nothing "
                     "(without it: skipped, counted, the output written from every valid "
                     "record, then exit 2).")]
Jobs = Annotated[Optional[int], typer.Option(
    "--jobs", "-j", min=1, metavar="N",
    help="Read the inputs in N worker processes (default: the CPUs this process may use, "
         "a container's CPU limit included). The output is the same for every N.")]
DumpTime = Annotated[Optional[str], typer.Option(
    "--time", metavar="TIME", help="Time of time-less inputs (conntrack -L dumps), RFC 3339; "
                   "default: the file's modification time.")]


ApiServerCidrs = Annotated[List[str], typer.Option(
    "--apiserver-cidr", metavar="CIDR",
    help="Where the API server's calls to webhooks and aggregated APIs come from, instead of "
         "the default/kubernetes EndpointSlice's addresses (managed control planes: the "
         "provider's range); repeatable.")]


def say(lines: Iterable[str], err: bool = False) -> None:
    """Print ``lines`` for a person, each on one line whatever it holds: the one way the
    commands print what can carry names from an input (file, pod, namespace names,
    excerpts of bad lines). Control, separator and bidi characters are escaped as in the
    error line (``one_line``), so such a name can neither add a line (a fake
    ``warning:``) nor drive the terminal (ESC)."""
    from generator.output.plaintext import one_line

    for line in lines:
        typer.echo(one_line(line), err=err)


def apiserver_cidrs(values: List[str]) -> tuple[str, ...]:
    """The networks of ``--apiserver-cidr``, canonical (an address is its /32 or /128)."""
    import ipaddress

    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_network(v.strip(), strict=False)))
        except ValueError:
            raise UsageError(f"--apiserver-cidr {v!r} is not an address or CIDR "
                             "(e.g. 172.16.0.0/28)") from None
    return tuple(dict.fromkeys(out))


def read_options(include_dropped: bool, dump_time: str | None, watcher=None):
    """The ReadOptions of the shared flow-reading options; ``watcher``: the progress
    display of ``reading_progress``, if any."""
    from recorder.sources import ReadOptions

    # listed_batches: a `conntrack -L` dump's lines as rows (recorder.listed), which the
    # aggregator takes without a record per line, as `flowpol import` does.
    return ReadOptions(include_dropped=include_dropped,
                       dump_time=parse_time_option(dump_time, "--time"), watcher=watcher,
                       listed_batches=True)


def jobs(value: int | None) -> int:
    """The worker processes of ``--jobs``: as given, else the CPUs this process may use
    (its affinity and its cgroup's CPU quota: ``generator.cpus``)."""
    from generator.cpus import available_cpus

    return value if value is not None else available_cpus()


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def stderr_surely_no_terminal() -> bool:
    """True when ``stderr_console().is_terminal`` is False, told without importing rich:
    stderr is no tty and no variable rich reads makes it one anyway (rich/console.py,
    ``Console.is_terminal``: FORCE_COLOR, TTY_COMPATIBLE). False: ask the console.
    Benchmarks, pipes and CI (no progress display) then pay no start-up for rich."""
    if "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ:
        return False
    isatty = getattr(sys.stderr, "isatty", None)  # stderr None: rich writes nowhere
    try:
        return isatty is None or not isatty()
    except ValueError:  # closed: rich answers False too
        return True


@contextlib.contextmanager
def reading_progress(inputs: List[str]) -> Iterator[object | None]:
    """Bytes read of the inputs, live on a terminal (stderr); None when it is piped."""
    if stderr_surely_no_terminal():
        from generator.cli.progress import OpenInputs

        yield OpenInputs()
        return
    from generator.cli.progress import input_progress

    with input_progress(stderr_console(), list(inputs)) as watcher:
        yield watcher


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


# Minimum evidence (`flowpol diff`, `flowpol migrate`): declared once, parsed by
# ``thresholds``.
MinObservation = Annotated[str, typer.Option(
    "--min-observation", metavar="DURATION",
    help="Act only on what a recording of at least this long shows (e.g. 7d, 12h, 30m).")]
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


# Where files go, in every command that writes them: --out PATH. -o/--output is an
# output format where a command has formats (kubectl's convention); the commands that
# used -o/--output for a path keep it for one release (FlowpolCommand.with_aliases).
OLD_OUT_SPELLINGS = {"-o": "--out", "--output": "--out"}

# The kubeconfig options, described the same way in every command that talks to a
# cluster; commands that do only with --cluster say so in front.
KUBECONFIG_HELP = "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)."
CONTEXT_HELP = "kubeconfig context to use (default: the current context)."
Kubeconfig = Annotated[Optional[str], typer.Option("--kubeconfig", metavar="FILE",
                                                   help=KUBECONFIG_HELP)]
KubeContext = Annotated[Optional[str], typer.Option("--context", metavar="NAME",
                                                    help=CONTEXT_HELP)]
ClusterKubeconfig = Annotated[Optional[str], typer.Option(
    "--kubeconfig", metavar="FILE", help="With --cluster: " + KUBECONFIG_HELP)]
ClusterContext = Annotated[Optional[str], typer.Option(
    "--context", metavar="NAME", help="With --cluster: " + CONTEXT_HELP)]
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
