"""`flowpol diff`: existing NetworkPolicies against observed traffic, and a tightened set.

Exit 0 when the existing set is exactly what the traffic needs, 1 when something needs
review (observed connections it denies, or proposed changes), 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from generator.cli.command import FlowpolCommand
from generator.cli.common import (
    OLD_OUT_SPELLINGS, ApiServerCidrs, ClusterContext, ClusterKubeconfig, DumpTime, FlowInputs,
    IncludeDropped, InputFormat, MinFlows, MinObservation, SnapshotFiles, Strict,
    apiserver_cidrs, parse_duration, read_options, reading_progress, say, thresholds,
)
from generator.output.outdir import check_out_dir
from recorder.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("diff", cls=FlowpolCommand.with_aliases(OLD_OUT_SPELLINGS))(diff)


def diff(
    inputs: FlowInputs,
    snapshot: SnapshotFiles,
    out: Path = typer.Option(..., "--out", metavar="DIR",
                             help="Directory for the proposed set, the diff and the report."),
    existing: List[str] = typer.Option(
        [], "--existing", "-p", metavar="PATH",
        help="The existing NetworkPolicy YAML/JSON: a file or a directory; repeatable."),
    cluster: bool = typer.Option(
        False, "--cluster", help="Use the live cluster's NetworkPolicies as the existing set."),
    context: ClusterContext = None,
    kubeconfig: ClusterKubeconfig = None,
    min_observation: MinObservation = "7d",
    min_flows: MinFlows = 1,
    window: Optional[str] = typer.Option(
        None, "--window", metavar="DURATION",
        help="Count as use only connections in the last DURATION of the recording; older "
             "ones still give 'last seen' (default: the whole recording)."),
    fmt: InputFormat = None,
    include_dropped: IncludeDropped = False,
    strict: Strict = False,
    dump_time: DumpTime = None,
    apiserver_cidr: ApiServerCidrs = [],
) -> None:
    """Compare existing policies with the traffic in INPUT: what they deny, what went
    unused, and a tightened set as YAML, a change list and a unified diff."""
    from generator.pipeline import raise_for_bad_input
    from generator.tighten.existing import existing_from_cluster, existing_from_files
    from generator.tighten.run import DiffRequest, run_diff, summary_lines

    if cluster == bool(existing):
        raise UsageError("give the existing policies: --existing PATH (repeatable) or --cluster, "
                         "not both")
    if not cluster and (context or kubeconfig):
        raise UsageError("--context and --kubeconfig only apply with --cluster")
    needs = thresholds(min_observation, min_flows)
    window_ns = parse_duration(window, "--window") if window else None
    cidrs = apiserver_cidrs(apiserver_cidr)
    check_out_dir(out, "diff")  # before any input is read: not after all the work
    # Policies first: a broken policy file fails before a long read of the flows.
    policy_set = (existing_from_cluster(kubeconfig, context) if cluster
                  else existing_from_files(list(existing), strict))
    with reading_progress(inputs) as watcher:
        result = run_diff(DiffRequest(
            inputs=list(inputs), snapshot=list(snapshot), out_dir=out, fmt=fmt, strict=strict,
            read_options=read_options(include_dropped, dump_time, watcher), thresholds=needs,
            apiserver_cidrs=cidrs, window_ns=window_ns), policy_set)
    say(summary_lines(result))
    raise_for_bad_input(result.observed.read, result.observed.unreadable,
                        f"the proposal and reports in {out}")
    if result.exit_code:
        raise typer.Exit(result.exit_code)
