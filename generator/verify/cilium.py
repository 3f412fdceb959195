"""CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy verdicts at L3/L4 for one side
of a connection (see ``generator.verify.combined`` for how they join the other kinds).

Semantics, from Cilium's documentation ("Policy Enforcement Modes", "Layer 3 Policies",
"Deny Policies") and its rule parser (pkg/policy: RulesToPolicyEntries):
- A policy selects a pod when its ``endpointSelector`` matches the pod's identity
  labels; a CiliumNetworkPolicy only pods of its own namespace. A pod's identity
  carries its labels, ``io.kubernetes.pod.namespace`` and its namespace's labels as
  ``io.cilium.k8s.namespace.labels.<key>``.
- Default deny per direction: on when a selecting policy's ``enableDefaultDeny`` says so
  or, unset, when it has rules (allow or deny) for that direction.
- An allow rule admits a peer when one of its L3 selectors matches (no L3 field at all:
  every peer; an explicitly empty list: none) and one of its ports does (no
  ``toPorts``: every port). Deny rules match the same way and win over any allow.
- ``fromEndpoints``/``toEndpoints`` select pods only; in a CiliumNetworkPolicy a
  selector that does not name ``io.kubernetes.pod.namespace`` means the policy's own
  namespace (Cilium docs, Kubernetes "Namespaces").
- Entities: ``host`` is the subject pod's own node (and hostNetwork pods on it),
  ``remote-node`` any other node, ``kube-apiserver`` the API server's addresses,
  ``cluster`` all of these and every pod, ``world`` everything else, ``all`` everything.
- CIDR rules and ``toFQDNs`` match ``world`` only: "CIDR-based selectors do not match
  in-cluster entities (pods or nodes)" unless ``policy-cidr-match-mode: nodes``, which
  this evaluator does not model. ``toFQDNs`` matches the names bound to the address at
  the connection's time (``generator.verify.names``); ``matchPattern`` as Cilium's agent
  compiles it (``generator.verify.names.pattern_matches``): ``*`` never crosses a dot, a
  leading ``**.`` is one or more labels, stars alone match every name.
- Ports: ``protocol`` ANY (or none) is TCP, UDP and SCTP; port 0 or none is every port;
  ``endPort`` a range; a port name resolves on the destination pod. A connection without
  a port (ICMP) matches only rules without ports.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from generator.verify.cilium_policy import (
    CCNP, NS_KEY, CiliumPeer, CiliumPolicy, CiliumPort, CiliumRule,
)
from generator.verify.evaluator import RuleRef
from generator.verify.names import pattern_matches
from generator.verify.selectors import matches

NS_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."
POD = "pod"
NODE = "node"
ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class SubjectView:
    """The pod a side is judged at."""

    namespace: str
    labels: dict
    ns_labels: dict
    node: str | None

    def identity(self) -> dict:
        return identity_labels(self.namespace, self.labels, self.ns_labels)


def identity_labels(namespace: str, labels: dict, ns_labels: dict) -> dict:
    out = dict(labels)
    out[NS_KEY] = namespace
    for k, v in ns_labels.items():
        out[NS_LABELS_PREFIX + k] = v
    out.setdefault(NS_LABELS_PREFIX + "kubernetes.io/metadata.name", namespace)
    return out


@dataclass(frozen=True, slots=True)
class PeerView:
    """The other end as Cilium classifies it relative to the subject pod."""

    kind: str  # POD, NODE or ADDRESS
    entities: frozenset[str]
    namespace: str | None = None
    labels: dict = field(default_factory=dict)
    identity: dict = field(default_factory=dict)
    ip: str | None = None
    names: frozenset[str] = frozenset()

    @property
    def world(self) -> bool:
        return "world" in self.entities

    @property
    def ip_obj(self):
        return ipaddress.ip_address(self.ip) if self.ip else None

    @staticmethod
    def pod(namespace: str, labels: dict, ns_labels: dict, ip: str | None) -> "PeerView":
        return PeerView(POD, frozenset({"cluster", "all"}), namespace, labels,
                        identity_labels(namespace, labels, ns_labels), ip)

    @staticmethod
    def address(ip: str | None, node: str | None, subject_node: str | None, apiserver: bool,
                names: frozenset[str], is_node: bool = False) -> "PeerView":
        entities = {"all"}
        if node is not None or is_node:
            entities |= {"cluster", "host" if node is not None and node == subject_node
                         else "remote-node"}
        if apiserver:
            entities |= {"cluster", "kube-apiserver"}
        if "cluster" not in entities:
            entities |= {"world", "world-ipv6" if ip and ":" in ip else "world-ipv4"}
        return PeerView(NODE if (node is not None or is_node) else ADDRESS,
                        frozenset(entities), ip=ip, names=names)


@dataclass(frozen=True, slots=True)
class CiliumSide:
    isolated: bool = False
    selecting: tuple[str, ...] = ()
    allowed_by: tuple[RuleRef, ...] = ()
    denied_by: tuple[RuleRef, ...] = ()


class CiliumJudge:
    def __init__(self, policies: tuple[CiliumPolicy, ...]):
        self.policies = policies

    def policies_selecting(self, subject: SubjectView) -> list[CiliumPolicy]:
        return self._selecting(subject)

    def _selecting(self, subject: SubjectView) -> list[CiliumPolicy]:
        identity = subject.identity()
        out = []
        for p in self.policies:
            if p.endpoint_selector is None:
                continue  # a host policy
            if p.kind != CCNP and p.namespace != subject.namespace:
                continue
            if matches(p.endpoint_selector, identity):
                out.append(p)
        return out

    def selecting(self, subject: SubjectView, direction: str) -> tuple[str, ...]:
        return tuple(p.id for p in self._selecting(subject)
                     if (p.default_deny_ingress if direction == "ingress" else p.default_deny_egress))

    def side(self, direction: str, subject: SubjectView, peer: PeerView, protocol: str,
             port: int | None, named_ports: dict) -> CiliumSide:
        ingress = direction == "ingress"
        policies = self._selecting(subject)
        if not policies:
            return CiliumSide()
        isolated = tuple(p.id for p in policies
                         if (p.default_deny_ingress if ingress else p.default_deny_egress))
        allowed: list[RuleRef] = []
        denied: list[RuleRef] = []
        for p in policies:
            allow_rules = p.ingress if ingress else p.egress
            deny_rules = p.ingress_deny if ingress else p.egress_deny
            for i, r in enumerate(allow_rules):
                if self._matches(r, p, peer, protocol, port, named_ports, egress=not ingress):
                    allowed.append((p.id, i))
            for i, r in enumerate(deny_rules):
                if self._matches(r, p, peer, protocol, port, named_ports, egress=not ingress):
                    denied.append((p.id, f"{direction}Deny[{i}]"))
        return CiliumSide(bool(isolated), isolated, tuple(allowed), tuple(denied))

    def _matches(self, r: CiliumRule, p: CiliumPolicy, peer: PeerView, protocol: str,
                 port: int | None, named_ports: dict, egress: bool) -> bool:
        return _ports_match(r, protocol, port, named_ports) and (
            r.peers is None or any(_peer_matches(x, p, peer) for x in r.peers))

    def matched_entries(self, direction: str, subject: SubjectView, peer: PeerView,
                        protocol: str, port: int | None, named_ports: dict
                        ) -> list[tuple[str, str, int, int | None, int | None]]:
        """(policy, direction, rule, peer index, port index) of every allow rule of the
        policies selecting ``subject`` that admits this traffic, and which of its L3
        alternatives and ports do (None: the rule has none, so every peer or port); the
        same rules ``side`` lists in ``allowed_by``. Deny rules are not entries."""
        out: list[tuple[str, str, int, int | None, int | None]] = []
        for p in self._selecting(subject):
            for i, r in enumerate(p.ingress if direction == "ingress" else p.egress):
                peers: list = [None] if r.peers is None else [
                    j for j, x in enumerate(r.peers) if _peer_matches(x, p, peer)]
                if not peers:
                    continue
                ports: list = [None] if r.ports is None else [
                    j for j, cp in enumerate(r.ports)
                    if _port_matches(cp, protocol, port, named_ports)]
                out.extend((p.id, direction, i, a, b) for a in peers for b in ports)
        return out


def _peer_matches(x: CiliumPeer, p: CiliumPolicy, peer: PeerView) -> bool:
    if x.entity is not None:
        return x.entity in peer.entities
    if x.selector is not None:
        if peer.kind != POD:
            return False
        if not x.namespaced and peer.namespace != p.namespace:
            return False  # a CNP's selector without a namespace: the policy's own
        return matches(x.selector, peer.identity)
    if x.block is not None:
        return peer.world and peer.ip is not None and x.block.contains(peer.ip_obj)
    if not peer.world:
        return False
    if x.fqdn_name is not None:
        return x.fqdn_name in peer.names
    if x.fqdn_pattern is not None:
        return any(pattern_matches(x.fqdn_pattern, n) for n in peer.names)
    return False


_ANY = ("TCP", "UDP", "SCTP")


def _ports_match(r: CiliumRule, protocol: str, port: int | None, named_ports: dict) -> bool:
    return r.ports is None or any(_port_matches(cp, protocol, port, named_ports) for cp in r.ports)


def _port_matches(cp: CiliumPort, protocol: str, port: int | None, named_ports: dict) -> bool:
    if cp.protocol != "ANY" and cp.protocol != protocol:
        return False
    if cp.protocol == "ANY" and protocol not in _ANY:
        return False
    if cp.port is None:
        return True
    if port is None:
        return False
    if isinstance(cp.port, str):  # a port name resolves on the destination pod
        return named_ports.get((cp.port, protocol)) == port
    return cp.port <= port <= (cp.end_port or cp.port)
