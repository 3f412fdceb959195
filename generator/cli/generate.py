"""`flowpol generate`: observed flows + cluster snapshot -> NetworkPolicy YAML."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from generator.cli.common import (
    DumpTime, FlowInputs, IncludeDropped, InputFormat, Jobs, SnapshotFiles, Strict, jobs,
    progress_reporter, read_options, stderr_console,
)
from recorder.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)


def generate(
    inputs: FlowInputs,
    snapshot: SnapshotFiles,
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the policies."),
    fmt: InputFormat = None,
    include_dropped: IncludeDropped = False,
    strict: Strict = False,
    no_default_deny: bool = typer.Option(False, "--no-default-deny",
                                         help="Do not write per-namespace default-deny."),
    cidr_prefix: int = typer.Option(32, "--cidr-prefix", min=0, max=32,
                                    help="Aggregate external IPv4 peers to this prefix."),
    cidr_prefix_v6: int = typer.Option(128, "--cidr-prefix-v6", min=0, max=128,
                                       help="Aggregate external IPv6 peers to this prefix."),
    namespace: List[str] = typer.Option([], "--namespace", "-n",
                                        help="Only these namespaces (repeatable)."),
    exclude_namespace: List[str] = typer.Option([], "--exclude-namespace",
                                                help="Leave these namespaces out."),
    dump_time: DumpTime = None,
    no_verify: bool = typer.Option(False, "--no-verify",
                                   help="Skip checking the policies against the traffic."),
    workers: Jobs = None,
) -> None:
    """Write least-privilege NetworkPolicies for the traffic in INPUT."""
    from generator.generate import GenerateRequest, run_generate
    from generator.pipeline import raise_for_bad_input
    from generator.synthesize.synthesis import SynthesisOptions

    overlap = set(namespace) & set(exclude_namespace)
    if overlap:
        raise UsageError(f"namespace(s) both included and excluded: {', '.join(sorted(overlap))}")
    console = stderr_console()
    request = GenerateRequest(
        inputs=list(inputs), snapshot=list(snapshot), out_dir=out, fmt=fmt, strict=strict,
        read_options=read_options(include_dropped, dump_time),
        synthesis=SynthesisOptions(default_deny=not no_default_deny,
                                   cidr_prefix_v4=cidr_prefix, cidr_prefix_v6=cidr_prefix_v6,
                                   namespaces=tuple(namespace),
                                   exclude_namespaces=tuple(exclude_namespace)),
        verify=not no_verify,
        jobs=jobs(workers),
    )
    with progress_reporter(console, "reading flows") as progress:
        result = run_generate(request, progress)
    for line in result.summary:
        typer.echo(line)
    if result.denied_lines:
        typer.echo("observed connections the generated policies would DENY:", err=True)
        for line in result.denied_lines:
            typer.echo(f"  {line}", err=True)
    # bad input (exit 2) wins over findings (exit 1); both are printed
    raise_for_bad_input(result.read, result.unreadable, f"the policies and reports in {out}")
    if result.denied_lines:
        raise typer.Exit(1)
