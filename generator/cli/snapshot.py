"""`flowpol snapshot`: read the cluster inventory into one kubectl-style List file."""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("snapshot")(snapshot)


def snapshot(
    output: str = typer.Option(..., "--output", "-o", metavar="CLUSTER",
                               help="Where to write the snapshot (JSON; .gz compresses; "
                                    "- for stdout)."),
    context: Optional[str] = typer.Option(None, "--context",
                                          help="kubeconfig context (default: current)."),
    kubeconfig: Optional[str] = typer.Option(None, "--kubeconfig",
                                             help="kubeconfig file (default: $KUBECONFIG "
                                                  "or ~/.kube/config)."),
    page_size: int = typer.Option(500, "--page-size", min=1,
                                  help="Objects per LIST request."),
) -> None:
    """Read pods, services, endpointslices, namespaces, nodes, controllers,
    networkpolicies and what the API server calls (webhook configurations, apiservices,
    customresourcedefinitions without their schemas) from a live cluster, as
    `kubectl get ... -A -o json` prints them."""
    from generator.inventory.live import read_cluster, write_snapshot

    result = read_cluster(kubeconfig=kubeconfig, context=context, page_size=page_size)
    write_snapshot(result.document, output)
    counts = ", ".join(f"{n} {kind}" for kind, n in result.counts.items() if n)
    typer.echo(f"flowpol snapshot: {sum(result.counts.values())} objects from context "
               f"{result.context} ({counts}) in {result.requests} requests -> {output}",
               err=True)
    for w in result.warnings:
        typer.echo(f"flowpol snapshot: warning: {w}", err=True)
