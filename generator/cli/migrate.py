"""`flowpol migrate`: a staged plan per namespace from open to default-deny.

Exit 0 when every namespace in scope is ready for default-deny, 1 when the plan holds
something back (a workload without enough evidence, a namespace not ready), 2 on bad
input.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from generator.cli.command import FlowpolCommand
from generator.cli.common import (
    OLD_OUT_SPELLINGS, ApiServerCidrs, Dialect, DumpTime, FlowInputs, FqdnPatterns,
    IncludeDropped, InputFormat, MinFlows, MinObservation, SnapshotFiles, Strict,
    apiserver_cidrs, dialect_option, fqdn_patterns_option, read_options, reading_progress, say,
    thresholds,
)
from generator.output.outdir import check_out_dir
from recorder.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("migrate", cls=FlowpolCommand.with_aliases(OLD_OUT_SPELLINGS))(migrate)


def migrate(
    inputs: FlowInputs,
    snapshot: SnapshotFiles,
    out: Path = typer.Option(..., "--out", metavar="DIR",
                             help="Directory for the plan and the manifests of each step."),
    min_observation: MinObservation = "7d",
    min_flows: MinFlows = 1,
    namespace: List[str] = typer.Option([], "--namespace", "-n", metavar="NAMESPACE",
                                        help="Only these namespaces (repeatable)."),
    exclude_namespace: List[str] = typer.Option([], "--exclude-namespace", metavar="NAMESPACE",
                                                help="Leave these namespaces out (repeatable)."),
    fmt: InputFormat = None,
    include_dropped: IncludeDropped = False,
    strict: Strict = False,
    dump_time: DumpTime = None,
    apiserver_cidr: ApiServerCidrs = [],
    dialect: Dialect = "kubernetes",
    fqdn_pattern: FqdnPatterns = [],
) -> None:
    """Plan the move to default-deny from the traffic in INPUT: allow policies for the
    workloads ready now, what to watch, then default-deny per namespace, with rollbacks."""
    from generator.migrate.plan import MigrateRequest, run_migrate, summary_lines
    from generator.pipeline import raise_for_bad_input

    overlap = set(namespace) & set(exclude_namespace)
    if overlap:
        raise UsageError(f"namespace(s) both included and excluded: {', '.join(sorted(overlap))}")
    dialect = dialect_option(dialect)
    patterns = fqdn_patterns_option(fqdn_pattern, dialect)
    needs = thresholds(min_observation, min_flows)
    cidrs = apiserver_cidrs(apiserver_cidr)
    check_out_dir(out, "migrate")  # before any input is read: not after all the work
    with reading_progress(inputs) as watcher:
        plan, _, observed = run_migrate(MigrateRequest(
            inputs=list(inputs), snapshot=list(snapshot), out_dir=out, fmt=fmt, strict=strict,
            read_options=read_options(include_dropped, dump_time, watcher), thresholds=needs,
            apiserver_cidrs=cidrs, namespaces=tuple(namespace),
            exclude_namespaces=tuple(exclude_namespace), dialect=dialect,
            fqdn_patterns=patterns))
    say(summary_lines(plan, out))
    raise_for_bad_input(observed.read, observed.unreadable, f"the plan and manifests in {out}")
    if plan.exit_code:
        raise typer.Exit(plan.exit_code)
