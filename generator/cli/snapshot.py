"""`flowpol snapshot`: read the cluster inventory into one kubectl-style List file."""

from __future__ import annotations

import typer

from generator.cli.command import FlowpolCommand
from generator.cli.common import OLD_OUT_SPELLINGS, KubeContext, Kubeconfig, say


def register(app: typer.Typer) -> None:
    app.command("snapshot", cls=FlowpolCommand.with_aliases(OLD_OUT_SPELLINGS))(snapshot)


def snapshot(
    out: str = typer.Option(..., "--out", metavar="CLUSTER",
                            help="Where to write the snapshot (JSON; .gz compresses; - for "
                                 "stdout)."),
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    page_size: int = typer.Option(500, "--page-size", min=1, metavar="N",
                                  help="Objects per LIST request."),
) -> None:
    """Read pods, services, endpointslices, namespaces, nodes, controllers,
    networkpolicies and what the API server calls (webhook configurations, apiservices,
    customresourcedefinitions without their schemas) from a live cluster, as
    `kubectl get ... -A -o json` prints them."""
    from generator.inventory.live import read_cluster, write_snapshot

    from generator.output.files import note_written

    result = read_cluster(kubeconfig=kubeconfig, context=context, page_size=page_size)
    write_snapshot(result.document, out)
    if out != "-":
        note_written(out)
    counts = ", ".join(f"{n} {kind}" for kind, n in result.counts.items() if n)
    say([f"flowpol snapshot: {sum(result.counts.values())} objects from context "
         f"{result.context} ({counts}) in {result.requests} requests -> {out}"]
        + [f"flowpol snapshot: warning: {w}" for w in result.warnings], err=True)
