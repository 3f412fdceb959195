"""`flowpol record` (the recorder agent) and `flowpol collect` (pull what it recorded)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional

import typer

from generator.cli.command import FlowpolCommand
from generator.cli.common import (
    OLD_OUT_SPELLINGS, KubeContext, Kubeconfig, parse_duration, parse_time_option, say,
)
from recorder.agent.collect_token import DEFAULT_SERVICE_ACCOUNT
from recorder.agent.readers import DEFAULT_READERS
from recorder.errors import FlowpolError, UsageError


def register(app: typer.Typer) -> None:
    aliased = FlowpolCommand.with_aliases(OLD_OUT_SPELLINGS)
    app.command("record", cls=aliased)(record)
    app.command("collect", cls=aliased)(collect)


def _log(message: str) -> None:
    say([message], err=True)  # the recorder's log lines name pods, interfaces and files


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
    http_listen: Optional[str] = typer.Option(
        None, "--http-listen", envvar="FLOWPOL_HTTP_LISTEN", metavar="ADDR:PORT",
        show_default=False,
        help="Serve GET /segments (closed segments, read-only), /metrics (Prometheus) and "
             "/healthz here; ':PORT' is every address, an empty value serves nothing. "
             "[default: :9401]"),
    segment_readers: str = typer.Option(
        DEFAULT_READERS, "--segment-readers",
        envvar="FLOWPOL_SEGMENT_READERS", metavar="NS/NAME,...",
        help="ServiceAccounts whose tokens (audience flowpol-recorder, in the "
             "X-Flowpol-Token header, checked with a TokenReview through the Kubernetes "
             "API) may read /segments; nobody else can."),
) -> None:
    """Record who talks to whom on this node, in windows, without losing data."""
    from recorder.agent.readers import parse_readers
    from recorder.agent.run import RecordConfig, describe, ensure_root_capabilities, run_record
    from recorder.agent.serve import DEFAULT_LISTEN, parse_listen

    # An empty FLOWPOL_HTTP_LISTEN disables the server; click reads an empty variable
    # as unset, so it is looked up here.
    listen = http_listen if http_listen is not None else os.environ.get(
        "FLOWPOL_HTTP_LISTEN", DEFAULT_LISTEN)
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
        segments_max_bytes=segments_max_bytes, http_listen=parse_listen(listen),
        segment_readers=parse_readers(segment_readers))
    result = run_record(cfg, _log)
    for line in describe(result):
        _log(line)
    if result.stopped_by == "source-failed":
        raise FlowpolError("recording stopped because a source failed (see above); what "
                           "was recorded until then has been written")


def collect(
    out: str = typer.Option(
        ..., "--out", metavar="DIR",
        help="The directory for the segments (OUT/<node>/<pod>/<segment>); with --logs, "
             "the merged flow log (.gz = gzip, - = stdout)."),
    namespace: str = typer.Option("flowpol-system", "--namespace", "-n",
                                  help="Namespace of the recorder DaemonSet."),
    selector: str = typer.Option("app.kubernetes.io/name=flowpol-recorder", "--selector",
                                 help="Label selector of the recorder pods."),
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    direct: bool = typer.Option(
        False, "--direct",
        help="Fetch from the recorder pods' addresses instead of through the API server's "
             "pod proxy (from inside the cluster)."),
    port: int = typer.Option(9401, "--port", metavar="PORT",
                             help="The recorders' --http-listen port."),
    since: Optional[str] = typer.Option(
        None, "--since", metavar="TIME|DURATION",
        help="Only what was recorded (with --logs: logged) since then: an RFC 3339 time or a "
             "duration back from now (e.g. 24h)."),
    logs: bool = typer.Option(
        False, "--logs",
        help="Fallback: read the recorder pods' container logs (the windows they printed "
             "to stdout) into one flow log instead of fetching segments. The kubelet "
             "rotates logs, so a long recording loses its start this way."),
    strict: bool = typer.Option(
        False, "--strict",
        help="With --logs: stop at the first bad line of a recorder log and write nothing "
             "(without it: skipped, counted and listed, exit 0: a crash can cut a pod's last "
             "line and a pod log cannot be fixed)."),
    token_file: Optional[str] = typer.Option(
        None, "--token-file", envvar="FLOWPOL_TOKEN_FILE", metavar="FILE",
        help="Show the recorders this token (a ServiceAccount token for audience "
             "flowpol-recorder, e.g. a projected one), read again when the file changes. "
             "Default: request one for --service-account."),
    service_account: str = typer.Option(
        DEFAULT_SERVICE_ACCOUNT, "--service-account", metavar="NS/NAME",
        help="The segment reader to request a token for (TokenRequest: you need create on "
             "serviceaccounts/token for it). Your own credentials are never shown to the "
             "recorders."),
) -> None:
    """Pull what every recorder pod recorded: its closed segments (resumable, checksummed)
    through the Kubernetes API server's pod proxy, or --direct."""
    import time

    since_ns = None
    if since is not None:
        if since[:1].isdigit() and "-" not in since:
            since_ns = time.time_ns() - parse_duration(since, "--since")
        else:
            since_ns = parse_time_option(since, "--since")
    if logs:
        if direct:
            raise UsageError("--direct fetches segments; --logs reads container logs "
                             "through the API server: choose one")
        _collect_logs(out, since_ns, namespace, selector, kubeconfig, context, strict)
        return
    if strict:
        raise UsageError("--strict applies to --logs (segments are checked by their sha256)")
    from recorder.agent.pull import pull_segments

    with _progress("collect") as progress:
        result = pull_segments(out, namespace, selector, kubeconfig, context, direct=direct,
                               port=port, since=since_ns, progress=progress,
                               token_file=token_file, service_account=service_account)
    say([f"collected {len(result.fetched)} new segment(s), {result.fetched_bytes} "
         f"byte(s), from {len(result.pods)} recorder pod(s) into {out}; "
         f"{result.present} already there"
         + (f", {result.older} older than --since" if since_ns is not None else "")])
    say([f"warning: {w}" for w in result.warnings]
        + [f"warning: {g}: deleted on the node (--segments-max-bytes) between the list and "
           "the fetch; collect more often" for g in result.gone], err=True)
    if result.errors:
        say([f"  {e}" for e in result.errors], err=True)
        raise FlowpolError(f"{len(result.errors)} problem(s) while collecting (listed above); "
                           "what could be fetched is in place and verified; run collect "
                           "again to fetch the rest")


@contextmanager
def _progress(label: str) -> Iterator[Callable[[str], None]]:
    """A callback showing each fetched segment on a terminal; silent when piped."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from generator.cli.common import stderr_console

    console = stderr_console()
    if not console.is_terminal:
        yield lambda _msg: None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                  console=console, transient=True) as bar:
        task = bar.add_task(f"{label}: listing", total=None)
        done = [0]

        def update(name: str) -> None:
            done[0] += 1
            bar.update(task, description=f"{label}: {done[0]} segment(s), last {name}")

        yield update


def _collect_logs(output: str, since_ns: int | None, namespace: str, selector: str,
                  kubeconfig: str | None, context: str | None, strict: bool) -> None:
    from recorder.agent.collect import collect as run_collect
    from recorder.flowlog import write_flow_log
    from recorder.schema import FlowLogHeader, FlowRecord

    result = run_collect(namespace, selector, since_ns, kubeconfig, context, strict)
    n = write_flow_log(result.records, output, FlowLogHeader(created_by="flowpol collect"))
    flows = sum(1 for r in result.records if isinstance(r, FlowRecord))
    r = result.report
    say([f"collected {n} record(s) ({flows} flow, {n - flows} IP) from "
         f"{len(result.pods)} recorder pod(s) into {output}; "
         f"{r.total_skipped} line(s) skipped, "
         f"{r.ignored.get('agent-message', 0)} agent message(s) ignored"])
    say([f"  skipped {ex}" for ex in r.examples[:5]]
        + [f"recorder {w}" for w in result.agent_warnings]
        + [f"warning: {w}" for w in result.warnings], err=True)
