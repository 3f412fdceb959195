"""`flowpol verify`: would these policies allow every observed connection, and every call
the cluster declares the API server makes (webhooks, aggregated APIs, conversion webhooks)?

Exit 0 when all of it is allowed, 1 when something would be denied, 2 on bad
input (raised as recorder.errors exceptions; main maps them).
"""

from __future__ import annotations

import json
from typing import List

import typer

from generator.cli.common import (
    ApiServerCidrs, ClusterContext, ClusterKubeconfig, DumpTime, FlowInputs, IncludeDropped,
    InputFormat, SnapshotFiles, Strict, apiserver_cidrs, read_options, reading_progress, say,
)
from recorder.errors import UsageError

OUTPUT_FORMATS = ("text", "json")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(
    inputs: FlowInputs,
    snapshot: SnapshotFiles,
    policies: List[str] = typer.Option(
        [], "--policies", "-p", metavar="PATH",
        help="NetworkPolicy YAML/JSON: a file or a directory (walked); repeatable."),
    cluster: bool = typer.Option(
        False, "--cluster", help="Verify the live cluster's NetworkPolicies instead of files."),
    context: ClusterContext = None,
    kubeconfig: ClusterKubeconfig = None,
    fmt: InputFormat = None,
    include_dropped: IncludeDropped = False,
    strict: Strict = False,
    dump_time: DumpTime = None,
    output: str = typer.Option("text", "--output", "-o", metavar="text|json",
                               help="text: summary and denied list; json: everything, for "
                                    "machines."),
    unused: bool = typer.Option(
        False, "--unused",
        help="List the rules and peer/port combinations no observed connection used, and "
             "the used rules that admit more than their use."),
    show_allowed: bool = typer.Option(
        False, "--show-allowed",
        help="text: also list the allowed connections and the rules allowing them."),
    apiserver_cidr: ApiServerCidrs = [],
    no_declared: bool = typer.Option(
        False, "--no-declared",
        help="Do not judge the calls the snapshot declares the API server makes (admission "
             "webhooks, aggregated APIs, CRD conversion webhooks), which verify checks "
             "whether or not the recording shows them."),
) -> None:
    """Replay the traffic in INPUT against NetworkPolicies: allowed, or denied and why."""
    from generator.pipeline import raise_for_bad_input
    from generator.verify.render import text_lines, verify_dict
    from generator.verify.run import (
        VerifyRequest, policies_from_cluster, policies_from_files, run_verify,
    )

    if output not in OUTPUT_FORMATS:
        raise UsageError(f"--output {output!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    if cluster == bool(policies):
        raise UsageError("give the policies to verify: --policies PATH (repeatable) or "
                         "--cluster, not both")
    if not cluster and (context or kubeconfig):
        raise UsageError("--context and --kubeconfig only apply with --cluster")
    cidrs = apiserver_cidrs(apiserver_cidr)
    read_options(include_dropped, dump_time)  # a bad --time fails before the policies load
    # Policies first: a broken policy file fails before a long read of the flows.
    policy_set = (policies_from_cluster(kubeconfig, context) if cluster
                  else policies_from_files(list(policies), strict))
    with reading_progress(inputs) as watcher:
        result = run_verify(VerifyRequest(
            inputs=list(inputs), snapshot=list(snapshot), fmt=fmt, strict=strict,
            read_options=read_options(include_dropped, dump_time, watcher), unused=unused,
            apiserver_cidrs=cidrs, declared=not no_declared),
            policy_set)
    if output == "json":
        typer.echo(json.dumps(verify_dict(result), indent=2, sort_keys=True))
    else:
        say(text_lines(result, show_allowed))
    raise_for_bad_input(result.observed.read, result.observed.unreadable,
                        "the verification on stdout")
    if result.exit_code:
        raise typer.Exit(result.exit_code)
