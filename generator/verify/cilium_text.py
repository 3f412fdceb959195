"""Cilium rules as a reviewer reads them: the pods a policy selects, and each L3
alternative and port of a rule, indexed as ``CiliumJudge.matched_entries`` indexes them
(`flowpol verify --unused` and report.md share these)."""

from __future__ import annotations

from generator.inventory.model import LabelSelector
from generator.verify.cilium_policy import CCNP, NS_KEY, CiliumPeer, CiliumPolicy, CiliumPort, CiliumRule
from generator.verify.selectors import describe

ANY_PEER = "any peer (no L3 selector)"
EVERY_PORT = "every port"


def _endpoints(sel: LabelSelector, namespace: str | None) -> str:
    """``sel`` without its namespace label, and where: the label's value, else
    ``namespace`` (a CNP's own), else every namespace (a CCNP)."""
    ns_values = [v for k, v in sel.match_labels if k == NS_KEY]
    rest = LabelSelector(tuple((k, v) for k, v in sel.match_labels if k != NS_KEY),
                         tuple(e for e in sel.match_expressions if e[0] != NS_KEY))
    ns_exprs = [e for e in sel.match_expressions if e[0] == NS_KEY]
    if ns_values:
        where = f"in namespace {ns_values[0]}"
    elif ns_exprs:
        where = f"in namespaces {describe(LabelSelector((), tuple(ns_exprs)))}"
    elif namespace is not None:
        where = f"in namespace {namespace}"
    else:
        where = "in every namespace"
    pods = "every endpoint" if rest.is_empty() else f"endpoints {describe(rest)}"
    return f"{pods} {where}"


def selects(policy: CiliumPolicy) -> str:
    if policy.endpoint_selector is None:
        return "nodes (a host policy)"
    return _endpoints(policy.endpoint_selector, policy.namespace if policy.kind != CCNP else None)


def peer_text(peer: CiliumPeer, policy: CiliumPolicy) -> str:
    if peer.entity is not None:
        return f"entity {peer.entity}"
    if peer.selector is not None:
        own = None if peer.namespaced else policy.namespace
        return _endpoints(peer.selector, own)
    if peer.block is not None:
        return f"CIDR {peer.block.describe()}"
    if peer.fqdn_name is not None:
        return f"DNS name {peer.fqdn_name}"
    return f"DNS pattern {peer.fqdn_pattern}"


def port_text(port: CiliumPort) -> str:
    protocol = "TCP, UDP or SCTP" if port.protocol == "ANY" else port.protocol
    if port.port is None:
        return f"every {protocol} port"
    if isinstance(port.port, str):
        return f"{protocol}/{port.port} (named port)"
    if port.end_port is not None:
        return f"{protocol}/{port.port}-{port.end_port}"
    return f"{protocol}/{port.port}"


def rule_items(policy: CiliumPolicy, rule: CiliumRule
               ) -> tuple[list[tuple[int | None, str]], list[tuple[int | None, str]]]:
    """(peer index, text) and (port index, text) of a rule; no peer at all when its L3
    list is explicitly empty (the rule admits nothing)."""
    peers: list[tuple[int | None, str]] = [(None, ANY_PEER)] if rule.peers is None else [
        (j, peer_text(x, policy)) for j, x in enumerate(rule.peers)]
    ports: list[tuple[int | None, str]] = [(None, EVERY_PORT)] if rule.ports is None else [
        (j, port_text(p)) for j, p in enumerate(rule.ports)]
    return peers, ports
