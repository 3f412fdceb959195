"""`flowpol generate`: observed flows + cluster snapshot -> NetworkPolicy YAML."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from generator.cli.command import FlowpolCommand
from generator.cli.common import (
    OLD_OUT_SPELLINGS, ApiServerCidrs, Dialect, DumpTime, FlowInputs, FqdnPatterns,
    IncludeDropped, InputFormat, Jobs, SnapshotFiles, Strict, apiserver_cidrs, dialect_option,
    fqdn_patterns_option, jobs, read_options, reading_progress, say,
)
from generator.output.outdir import check_out_dir
from recorder.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("generate", cls=FlowpolCommand.with_aliases(OLD_OUT_SPELLINGS))(generate)


def generate(
    inputs: FlowInputs,
    snapshot: SnapshotFiles,
    out: Path = typer.Option(..., "--out", metavar="DIR",
                             help="Directory for the policies and the reports."),
    fmt: InputFormat = None,
    include_dropped: IncludeDropped = False,
    strict: Strict = False,
    no_default_deny: bool = typer.Option(False, "--no-default-deny",
                                         help="Do not write per-namespace default-deny."),
    cidr_prefix: int = typer.Option(32, "--cidr-prefix", min=0, max=32, metavar="N",
                                    help="Aggregate external IPv4 peers to this prefix."),
    cidr_prefix_v6: int = typer.Option(128, "--cidr-prefix-v6", min=0, max=128, metavar="N",
                                       help="Aggregate external IPv6 peers to this prefix."),
    namespace: List[str] = typer.Option([], "--namespace", "-n", metavar="NAMESPACE",
                                        help="Only these namespaces (repeatable)."),
    exclude_namespace: List[str] = typer.Option([], "--exclude-namespace", metavar="NAMESPACE",
                                                help="Leave these namespaces out (repeatable)."),
    dump_time: DumpTime = None,
    no_verify: bool = typer.Option(False, "--no-verify",
                                   help="Skip checking the policies against the traffic."),
    dialect: Dialect = "kubernetes",
    cilium_cluster_wide: bool = typer.Option(
        False, "--cilium-cluster-wide",
        help="With --dialect cilium: the default-deny and DNS baseline as one "
             "CiliumClusterwideNetworkPolicy."),
    isolate_idle: bool = typer.Option(
        False, "--isolate-idle",
        help="Let default-deny isolate workloads with no observed traffic too (by default "
             "each is held out by a policy of its own and listed in the report)."),
    apiserver_cidr: ApiServerCidrs = [],
    fqdn_pattern: FqdnPatterns = [],
    workers: Jobs = None,
) -> None:
    """Write least-privilege NetworkPolicies for the traffic in INPUT."""
    from generator.generate import GenerateRequest, run_generate
    from generator.pipeline import raise_for_bad_input
    from generator.synthesize.render import RenderOptions
    from generator.synthesize.synthesis import SynthesisOptions

    overlap = set(namespace) & set(exclude_namespace)
    if overlap:
        raise UsageError(f"namespace(s) both included and excluded: {', '.join(sorted(overlap))}")
    dialect = dialect_option(dialect)
    if cilium_cluster_wide and dialect != "cilium":
        raise UsageError("--cilium-cluster-wide needs --dialect cilium")
    patterns = fqdn_patterns_option(fqdn_pattern, dialect)
    synthesis = SynthesisOptions(default_deny=not no_default_deny, cidr_prefix_v4=cidr_prefix,
                                 cidr_prefix_v6=cidr_prefix_v6, namespaces=tuple(namespace),
                                 exclude_namespaces=tuple(exclude_namespace), dialect=dialect,
                                 render=RenderOptions(cilium_cluster_wide=cilium_cluster_wide,
                                                      fqdn_patterns=patterns),
                                 isolate_idle=isolate_idle)
    cidrs = apiserver_cidrs(apiserver_cidr)
    check_out_dir(out, "generate")  # before any input is read: not after all the work
    with reading_progress(inputs) as watcher:
        result = run_generate(GenerateRequest(
            inputs=list(inputs), snapshot=list(snapshot), out_dir=out, fmt=fmt, strict=strict,
            read_options=read_options(include_dropped, dump_time, watcher),
            apiserver_cidrs=cidrs, synthesis=synthesis, verify=not no_verify,
            jobs=jobs(workers)))
    say(result.summary)
    if result.denied_lines:
        say(["observed connections the generated policies would DENY:"]
            + [f"  {line}" for line in result.denied_lines], err=True)
    if result.effective_denied_lines:
        say(["observed connections the cluster's existing policies would still DENY "
             "after apply:"] + [f"  {line}" for line in result.effective_denied_lines],
            err=True)
    # bad input (exit 2) wins over findings (exit 1); both are printed
    raise_for_bad_input(result.read, result.unreadable, f"the policies and reports in {out}")
    if result.denied_lines or result.effective_denied_lines:
        raise typer.Exit(1)
