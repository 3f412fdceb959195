"""Renderers: the policy model in the dialect a cluster enforces.

One module per dialect, registered in ``DIALECTS``; each turns a ``PolicyModel`` into
documents (``PolicyDoc``) whose manifests may carry evidence comments for the YAML
emitter (``generator.output.yamlout.Commented``). A dialect adds a renderer here and an
evaluator adapter in ``generator.verify``; synthesis is not copied per dialect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from generator.inventory.refs import WorkloadRef
from generator.synthesize.model import PolicyModel


@dataclass(frozen=True, slots=True)
class PolicyDoc:
    namespace: str  # "" for a cluster-scoped object (CCNP, ClusterNetworkPolicy)
    name: str
    manifest: dict  # may contain Commented list items (yamlout)
    workload: tuple[str, str] | None  # (kind, name) for workload policies


@dataclass(frozen=True, slots=True)
class Rendered:
    policies: tuple[PolicyDoc, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """What a renderer may take besides the model.

    ``cilium_cluster_wide``: the cilium dialect writes the default-deny and DNS baseline
    as one CiliumClusterwideNetworkPolicy instead of two policies per namespace.
    ``cilium_evidence``: why the cluster's CNI is believed to be Cilium (the kubernetes
    dialect warns about rules Cilium will not match); empty when nothing says so.
    ``workload_nodes``: the nodes each workload's pods run on (from the snapshot), so a
    node peer can be told apart as the pod's own node (Cilium's ``host``) or another
    (``remote-node``); filled by ``synthesize``.
    ``fqdn_patterns``: the cilium dialect writes a learned DNS name that one of these
    admits (Cilium's matchPattern rules, ``generator.verify.names.pattern_matches``; the
    first that does) as that ``matchPattern``, every other name as ``matchName``.
    """

    cilium_cluster_wide: bool = False
    fqdn_patterns: tuple[str, ...] = ()
    cilium_evidence: tuple[str, ...] = ()
    workload_nodes: Mapping[WorkloadRef, frozenset[str]] = field(default_factory=dict)


Renderer = Callable[[PolicyModel, RenderOptions], Rendered]


def _kubernetes(model: PolicyModel, options: RenderOptions) -> Rendered:
    from generator.synthesize.render import kubernetes

    return kubernetes.render(model, options)


def _cilium(model: PolicyModel, options: RenderOptions) -> Rendered:
    from generator.synthesize.render import cilium

    return cilium.render(model, options)


def _cluster_network_policy(model: PolicyModel, options: RenderOptions) -> Rendered:
    from generator.synthesize.render import clusternetworkpolicy

    return clusternetworkpolicy.render(model, options)


DIALECTS: dict[str, Renderer] = {
    "kubernetes": _kubernetes,
    "cilium": _cilium,
    "cluster-network-policy": _cluster_network_policy,
}


def render_policies(model: PolicyModel, dialect: str = "kubernetes",
                    options: RenderOptions = RenderOptions()) -> Rendered:
    try:
        renderer = DIALECTS[dialect]
    except KeyError:
        raise ValueError(f"unknown dialect {dialect!r}") from None
    return renderer(model, options)
