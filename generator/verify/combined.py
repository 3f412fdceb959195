"""One verdict from every kind of policy a cluster may hold: NetworkPolicies,
CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies, ClusterNetworkPolicies.

``CombinedEvaluator`` answers as ``generator.verify.evaluator.Evaluator`` does (the same
``check``, ``endpoint_key``, ``matched_entries``, ``selecting``) and uses it for the
NetworkPolicies, whose verdicts do not change. Per side (source egress, destination
ingress), in the order the network-policy-api defines the tiers:

1. Admin-tier ClusterNetworkPolicies, by priority (lower first), rules in order: the
   first rule that matches decides - Accept allows, Deny denies, Pass goes on to 2.
2. NetworkPolicies and Cilium policies together, as Cilium enforces them: the pod is
   isolated for a direction when a NetworkPolicy isolates it or a Cilium policy with
   default deny for that direction selects it; allowed when any of their allow rules
   admits the traffic, unless a Cilium deny rule matches ("Deny policies take precedence
   over allow policies, regardless of whether they are a Cilium Network Policy, a
   Clusterwide Cilium Network Policy or even a Kubernetes Network Policy", Cilium docs,
   "Deny Policies").
3. Where 2 does not isolate the pod: Baseline-tier ClusterNetworkPolicies, first match
   decides (Accept or Deny); no match allows.
The own-node and self exemptions of the NetworkPolicy evaluator apply last (Cilium
allows its host to reach local endpoints by default: ``allow-localhost``).

Cilium's view of a peer (``generator.verify.cilium``): pods by their identity labels;
nodes and hostNetwork pods as ``host`` (the pod's own node) or ``remote-node``; the API
server's addresses (the snapshot's ``default/kubernetes`` EndpointSlice, plus any given)
as ``kube-apiserver``; everything else as ``world``, the only identity CIDR rules and
``toFQDNs`` (by the names bound to the address at the connection's time) ever match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from generator.inventory.model import Inventory
from generator.resolve.edges import Connection, PodView
from generator.verify.cilium import POD, CiliumJudge, PeerView, SubjectView
from generator.verify.cilium_policy import CiliumPolicy
from generator.verify.clusternetworkpolicy import (
    ACCEPT, ADMIN, DENY, PASS, ClusterNetworkPolicy, CnpRule,
)
from generator.verify.evaluator import (
    Endpoint, EndpointKey, Evaluator, RuleRef, SideVerdict, Verdict, _address,
)
from generator.verify.names import NameBindings, NamedAddress
from generator.verify.policy import NetworkPolicy
from generator.verify.selectors import matches


def apiserver_addresses(inventory: Inventory) -> frozenset[str]:
    """The API server's addresses: the endpoints of the ``default/kubernetes`` Service."""
    return frozenset(a for s in inventory.endpoint_slices
                     if s.namespace == "default" and s.service == "kubernetes"
                     for e in s.endpoints for a in e.addresses)


@dataclass(frozen=True, slots=True)
class _Tiered:
    """One ClusterNetworkPolicy side's answer: the rule that decided, and how."""

    action: str
    ref: RuleRef


class CombinedEvaluator:
    def __init__(self, policies: Iterable[NetworkPolicy], cilium: Iterable[CiliumPolicy] = (),
                 cluster: Iterable[ClusterNetworkPolicy] = (),
                 namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
                 node_addresses: Mapping[str, Iterable[str]] | None = None,
                 apiserver_ips: Iterable[str] = (), bindings: NameBindings | None = None):
        self.np = Evaluator(policies, namespace_labels, node_addresses)
        self.policies = self.np.policies
        self.cilium = tuple(cilium)
        self.cluster = tuple(sorted(cluster, key=lambda p: (p.priority, p.name)))
        self.bindings = bindings or NameBindings()
        self._named: dict[tuple[str, frozenset[str]], NamedAddress] = {}
        self._ns_labels = {k: dict(v) for k, v in (namespace_labels or {}).items()}
        self._node_of_ip = {_address(a)[0]: n for n, addrs in (node_addresses or {}).items()
                            for a in addrs}
        self._apiserver = frozenset(_address(a)[0] for a in apiserver_ips)
        self.judge = CiliumJudge(self.cilium)
        self._keys: dict[int, tuple[Endpoint, EndpointKey]] = {}
        self._key_ids: dict[tuple, int] = {}
        self._cache: dict[tuple, Verdict] = {}
        self._entries: dict[tuple, tuple] = {}  # matched_entries of the Cilium policies

    @classmethod
    def from_inventory(cls, policies, cilium, cluster, inventory: Inventory,
                       bindings: NameBindings | None = None,
                       apiserver_ips: Iterable[str] = ()) -> "CombinedEvaluator":
        return cls(policies, cilium, cluster,
                   {ns.name: dict(ns.labels) for ns in inventory.namespaces},
                   {node.name: node.addresses for node in inventory.nodes},
                   apiserver_addresses(inventory) | frozenset(apiserver_ips), bindings)

    # ------------------------------------------------------------ the Evaluator API

    @property
    def cached_verdicts(self) -> int:
        return len(self._cache)

    def named_destination(self, c: Connection) -> Endpoint:
        """The destination of ``c`` with the DNS names bound to it then (toFQDNs)."""
        if c.dst_pod is not None:
            return c.dst_pod
        if c.names:
            # Resolution attributed the names the address stood for at the time, for this
            # client (generator.resolve.names): the same names the renderer wrote.
            key = (c.dst_ip, frozenset(c.names))
            hit = self._named.get(key)
            if hit is None:
                hit = self._named[key] = NamedAddress(c.dst_ip, key[1])
            return hit
        if not self.bindings:
            return c.dst_ip
        client = f"{c.src_pod.namespace}/{c.src_pod.name}" if c.src_pod is not None else None
        return self.bindings.endpoint(c.dst_ip, c.first_seen, client)

    def endpoint_key(self, endpoint: Endpoint) -> EndpointKey:
        hit = self._keys.get(id(endpoint))
        if hit is not None and hit[0] is endpoint:
            return hit[1]
        base = self.np.endpoint_key(endpoint)
        extra = self._extra(endpoint)
        peer = self._key_ids.setdefault((base.peer, extra), len(self._key_ids))
        key = EndpointKey(peer, base.ports, base.source_tag, base.destination_tags)
        self._keys[id(endpoint)] = (endpoint, key)
        return key

    def _extra(self, endpoint: Endpoint) -> tuple:
        """What Cilium and ClusterNetworkPolicies read beyond what the NetworkPolicy
        evaluator's key holds: the node, the API server, the names, the address."""
        if isinstance(endpoint, str):
            ip = _address(endpoint)[0]
            return (ip, self._node_of_ip.get(ip), ip in self._apiserver,
                    getattr(endpoint, "names", frozenset()))
        return (endpoint.node, endpoint.host_network, endpoint.ip if endpoint.host_network else None)

    def matched_entries(self, src: Endpoint, dst: Endpoint, protocol: str, port: int | None):
        """The NetworkPolicy evaluator's entries, then the Cilium policies' (allow rules
        matching on the source's egress and the destination's ingress side; see
        ``CiliumJudge.matched_entries``). ClusterNetworkPolicy rules are not entries."""
        entries = self.np.matched_entries(src, dst, protocol, port)
        if not self.cilium:
            return entries
        protocol = protocol.upper()
        sk, dk = self.endpoint_key(src), self.endpoint_key(dst)
        key = (sk.peer, dk.peer, dk.ports, protocol, port)
        found = self._entries.get(key)
        if found is None:
            named = {(n, p.upper()): num for n, p, num in dst.named_ports} \
                if isinstance(dst, PodView) and not dst.host_network else {}
            out: list = []
            for direction, at, other in (("egress", src, dst), ("ingress", dst, src)):
                if isinstance(at, PodView) and not at.host_network:
                    out += self.judge.matched_entries(direction, self._subject(at),
                                                      self._peer(other, at.node), protocol,
                                                      port, named)
            found = self._entries[key] = tuple(out)
        return entries + found

    def selecting(self, pod: PodView) -> tuple[tuple[str, ...], tuple[str, ...]]:
        ingress, egress = self.np.selecting(pod)
        if pod.host_network:
            return ingress, egress
        subject = self._subject(pod)
        return (ingress + self.judge.selecting(subject, "ingress"),
                egress + self.judge.selecting(subject, "egress"))

    def check(self, src: Endpoint, dst: Endpoint, protocol: str, port: int | None) -> Verdict:
        base = self.np.check(src, dst, protocol, port)
        sk, dk = self.endpoint_key(src), self.endpoint_key(dst)
        key = (sk.peer, dk.peer, dk.ports, base.protocol, port, sk.source_tag in dk.destination_tags)
        found = self._cache.get(key)
        if found is None:
            egress = self._side("egress", src, dst, base.egress, base.protocol, port, dst)
            ingress = self._side("ingress", dst, src, base.ingress, base.protocol, port, dst)
            found = self._cache[key] = Verdict(egress.allowed and ingress.allowed, egress,
                                               ingress, base.protocol, port)
        return found

    # ------------------------------------------------------------ evaluation

    def _subject(self, pod: PodView) -> SubjectView:
        return SubjectView(pod.namespace, dict(pod.labels),
                           self._ns_labels.get(pod.namespace, {}), pod.node)

    def _peer(self, end: Endpoint, subject_node: str | None) -> PeerView:
        if isinstance(end, str):
            ip = _address(end)[0]
            node = self._node_of_ip.get(ip)
            return PeerView.address(ip, node, subject_node, ip in self._apiserver,
                                    getattr(end, "names", frozenset()))
        if end.host_network:
            ip = _address(end.ip)[0] if end.ip else None
            node = end.node or (self._node_of_ip.get(ip) if ip else None)
            return PeerView.address(ip, node, subject_node, ip in self._apiserver, frozenset(),
                                    is_node=True)
        return PeerView.pod(end.namespace, dict(end.labels), self._ns_labels.get(end.namespace, {}),
                            end.ip)

    def _side(self, direction: str, at: Endpoint, other: Endpoint, np_side: SideVerdict,
              protocol: str, port: int | None, dst: Endpoint) -> SideVerdict:
        exemption = np_side.exemption
        if not isinstance(at, PodView) or at.host_network:
            return np_side  # not a pod: no policy of any kind applies to it
        # a port name resolves on the destination pod, in both directions
        named = {(n, p.upper()): num for n, p, num in dst.named_ports} \
            if isinstance(dst, PodView) and not dst.host_network else {}
        subject = self._subject(at)
        peer = self._peer(other, at.node)
        admin = self._tier(ADMIN, direction, at, other, peer, protocol, port, named)
        if admin is not None and admin.action != PASS:
            return self._decided(admin, exemption, np_side.endpoint)
        cil = self.judge.side(direction, subject, peer, protocol, port, named)
        isolated = np_side.isolated or cil.isolated
        side = SideVerdict(isolated, np_side.selecting + cil.selecting,
                           np_side.allowed_by + cil.allowed_by, exemption, np_side.endpoint,
                           cil.denied_by)
        if isolated or cil.denied_by:
            return side
        base = self._tier("Baseline", direction, at, other, peer, protocol, port, named)
        if base is not None:
            return self._decided(base, exemption, np_side.endpoint)
        return side

    @staticmethod
    def _decided(t: _Tiered, exemption: str | None, endpoint: str) -> SideVerdict:
        if t.action == ACCEPT:
            return SideVerdict(False, (), (), exemption, endpoint, (), (t.ref,))
        return SideVerdict(True, (t.ref[0],), (), exemption, endpoint, (t.ref,))

    def _tier(self, tier: str, direction: str, at: PodView, other: Endpoint, peer: PeerView,
              protocol: str, port: int | None, named: dict) -> _Tiered | None:
        for p in self.cluster:
            if p.tier != tier or not self._subject_matches(p, at):
                continue
            rules = p.ingress if direction == "ingress" else p.egress
            for i, r in enumerate(rules):
                if self._cnp_rule_matches(r, other, peer, protocol, port, named):
                    return _Tiered(r.action, (p.id, f"{direction}[{i}] ({r.name}): {r.action}"))
        return None

    def _ns_view(self, namespace: str) -> dict[str, str]:
        labels = dict(self._ns_labels.get(namespace, {}))
        labels.setdefault("kubernetes.io/metadata.name", namespace)
        return labels

    def _subject_matches(self, p: ClusterNetworkPolicy, pod: PodView) -> bool:
        return matches(p.subject_namespaces, self._ns_view(pod.namespace)) and (
            p.subject_pods is None or matches(p.subject_pods, dict(pod.labels)))

    def _cnp_rule_matches(self, r: CnpRule, other: Endpoint, peer: PeerView, protocol: str,
                          port: int | None, named: dict) -> bool:
        if r.ports is not None:
            ok = False
            for pp in r.ports:
                if pp.name is not None:
                    ok = port is not None and named.get((pp.name, protocol)) == port
                elif pp.protocol == protocol:
                    ok = pp.low is None or (port is not None and pp.low <= port <= pp.high)  # type: ignore[operator]
                if ok:
                    break
            if not ok:
                return False
        for pe in r.peers:
            if pe.unjudged:
                # fail closed, as the API says of peers an implementation cannot read:
                # an Accept matches nothing, a Deny or Pass everything
                if r.action in (DENY, PASS):
                    return True
                continue
            if pe.networks:
                if peer.ip is not None and any(b.contains(peer.ip_obj) for b in pe.networks):
                    return True
            elif pe.domain_names:
                if peer.names & set(pe.domain_names):
                    return True
            elif peer.kind == POD:
                ns_labels = self._ns_view(peer.namespace)  # type: ignore[arg-type]
                if pe.namespaces is not None and matches(pe.namespaces, ns_labels):
                    return True
                if pe.pods is not None and matches(pe.pods[0], ns_labels) \
                        and matches(pe.pods[1], peer.labels):
                    return True
        return False


def make_evaluator(policies: Iterable[NetworkPolicy], inventory: Inventory,
                   cilium: Iterable[CiliumPolicy] = (),
                   cluster: Iterable[ClusterNetworkPolicy] = (),
                   bindings: NameBindings | None = None) -> Evaluator | CombinedEvaluator:
    """The NetworkPolicy evaluator when only NetworkPolicies are given (its verdicts
    and speed as they are), else the combined one."""
    cilium, cluster = tuple(cilium), tuple(cluster)
    if not cilium and not cluster:
        return Evaluator.from_inventory(policies, inventory)
    return CombinedEvaluator.from_inventory(policies, cilium, cluster, inventory, bindings)

