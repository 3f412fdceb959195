"""`flowpol record` (the recorder agent) and `flowpol collect` (pull what it recorded)."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from generator.cli.command import FlowpolCommand
from generator.cli.common import (
    OLD_OUT_SPELLINGS, KubeContext, Kubeconfig, parse_duration, parse_time_option,
)
from recorder.errors import FlowpolError, UsageError


def register(app: typer.Typer) -> None:
    aliased = FlowpolCommand.with_aliases(OLD_OUT_SPELLINGS)
    app.command("record", cls=aliased)(record)
    app.command("collect", cls=aliased)(collect)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def record(
    source: List[str] = typer.Option(..., "--source", "-s",
                                     help="capture and/or conntrack (repeatable)."),
    interface: List[str] = typer.Option(
        [], "--interface", "-i",
        help="Capture on these interfaces (repeatable), or 'any'. Default: the pod "
             "interfaces (veth*, cali*, lxc*, ...), rediscovered as pods come and go."),
    duration: Optional[str] = typer.Option(None, "--duration", metavar="DURATION",
                                           help="Stop after this long (e.g. 60s, 2h)."),
    window: str = typer.Option("60s", "--window", metavar="DURATION",
                                help="Aggregation window."),
    max_keys: int = typer.Option(100_000, "--max-keys", metavar="N",
                                 help="Distinct connection keys held per run of windows; "
                                      "more are counted as overflow and reported."),
    output: Optional[str] = typer.Option(None, "--out", metavar="FLOWLOG",
                                         help="Write one flow log at the end."),
    segments: Optional[str] = typer.Option(None, "--segments", metavar="DIR",
                                           help="Directory for rotating flow-log segments."),
    stdout: bool = typer.Option(False, "--stdout",
                                help="Also print closed windows as flow-log lines."),
    node: Optional[str] = typer.Option(
        None, "--node", envvar="NODE_NAME",
        help="Watch this node's pods through the Kubernetes API for the IP timeline "
             "(default: $NODE_NAME; without it, no pod watch)."),
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    heartbeat: Optional[str] = typer.Option(None, "--heartbeat", metavar="FILE",
                                            help="File touched every second (liveness)."),
    segments_max_bytes: int = typer.Option(1 << 30, "--segments-max-bytes", metavar="BYTES",
                                           help="Delete the oldest segments beyond this."),
) -> None:
    """Record who talks to whom on this node, in windows, without losing data."""
    from recorder.agent.run import RecordConfig, describe, ensure_root_capabilities, run_record

    if output is not None and os.path.isdir(output):
        raise UsageError(f"--out {output}: is a directory; use --segments for a directory")
    sources = tuple(source)
    ensure_root_capabilities(sources)
    cfg = RecordConfig(
        sources=sources, interfaces=tuple(interface), window_ns=parse_duration(window, "--window"),
        max_keys=max_keys,
        duration_ns=parse_duration(duration, "--duration") if duration else None,
        output=output, segments=segments, stdout=stdout, node=node or None,
        kubeconfig=kubeconfig, context=context, heartbeat=heartbeat,
        segments_max_bytes=segments_max_bytes)
    result = run_record(cfg, _log)
    for line in describe(result):
        _log(line)
    if result.stopped_by == "source-failed":
        raise FlowpolError("recording stopped because a source failed (see above); what "
                           "was recorded until then has been written")


def collect(
    output: str = typer.Option(..., "--out", metavar="FLOWLOG",
                               help="The merged flow log (.gz = gzip, - = stdout)."),
    since: Optional[str] = typer.Option(
        None, "--since", metavar="TIME|DURATION", help="Only what was logged since then: an RFC 3339 time or a "
                              "duration back from now (e.g. 24h)."),
    namespace: str = typer.Option("flowpol-system", "--namespace", "-n",
                                  help="Namespace of the recorder DaemonSet."),
    selector: str = typer.Option("app.kubernetes.io/name=flowpol-recorder", "--selector",
                                 help="Label selector of the recorder pods."),
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    strict: bool = typer.Option(
        False, "--strict",
        help="Stop at the first bad line of a recorder log and write nothing (without it: "
             "skipped, counted and listed, exit 0: a crash can cut a pod's last line and a "
             "pod log cannot be fixed)."),
) -> None:
    """Pull every recorder pod's flows through the Kubernetes API into one flow log."""
    import time

    from recorder.agent.collect import collect as run_collect
    from recorder.flowlog import write_flow_log
    from recorder.schema import FlowLogHeader, FlowRecord

    since_ns = None
    if since is not None:
        if since[:1].isdigit() and "-" not in since:
            since_ns = time.time_ns() - parse_duration(since, "--since")
        else:
            since_ns = parse_time_option(since, "--since")
    result = run_collect(namespace, selector, since_ns, kubeconfig, context, strict)
    n = write_flow_log(result.records, output, FlowLogHeader(created_by="flowpol collect"))
    flows = sum(1 for r in result.records if isinstance(r, FlowRecord))
    r = result.report
    typer.echo(f"collected {n} record(s) ({flows} flow, {n - flows} IP) from "
               f"{len(result.pods)} recorder pod(s) into {output}; "
               f"{r.total_skipped} line(s) skipped, "
               f"{r.ignored.get('agent-message', 0)} agent message(s) ignored")
    for ex in r.examples[:5]:
        typer.echo(f"  skipped {ex}", err=True)
    for w in result.agent_warnings:
        typer.echo(f"recorder {w}", err=True)
    for w in result.warnings:
        typer.echo(f"warning: {w}", err=True)
