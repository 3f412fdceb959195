"""Would these NetworkPolicies allow this connection? networking.k8s.io/v1 semantics.

``Evaluator.check(src, dst, protocol, port)`` answers for one connection *initiation*
(the first packet; replies of an allowed connection are always allowed, so they are not
evaluated). Each side is a ``PodView`` or an IP address string (node, external, or an
unresolved address).

Semantics (Kubernetes documentation and API types; where CNIs differ we say which
common behaviour we implement):
- A pod is isolated for a direction when a policy of its own namespace selects it and
  lists the direction in its (explicit or defaulted) policyTypes. An isolated side allows
  the union of all rules of those policies for that direction; a connection needs egress
  allowed at the source and ingress allowed at the destination.
- Peers: ``podSelector`` alone = pods of the policy's namespace; ``namespaceSelector``
  alone = every pod of the matching namespaces; both in one peer = AND; peers of a list =
  OR; an absent or empty ``from``/``to`` = every source/destination, addresses included.
  A namespace always carries ``kubernetes.io/metadata.name: <name>`` (the API server
  sets it since 1.21), whether or not the given namespace labels list it.
- ``ipBlock`` (``except`` carved out; IPv4 and IPv6) matches addresses, and we follow the
  common CNI behaviour (Calico, Cilium, kube-router) of matching a pod peer by its pod IP
  too. The API documentation says ipBlock is meant for cluster-external addresses and
  that pod IPs may be rewritten; some CNIs never match pod IPs with ipBlock.
- Ports: protocol defaults to TCP; an entry without ``port`` is every port of its
  protocol; ``endPort`` makes a range; no ``ports`` is every port of every protocol.
  A named port is resolved on the DESTINATION pod (for ingress the selected pod, for
  egress the peer), by name and protocol; it never matches an address (node, external,
  hostNetwork pod). A connection without a port (ICMP) only matches rules without ports.
- hostNetwork pods are not selected by any podSelector and are not isolated; their
  traffic is that of their node's address, matched (if at all) by ipBlock.
- Traffic from the destination pod's own node (kubelet probes, hostNetwork pods on that
  node) is always allowed in (documented: "the only allowed connections into the pod
  are those from the pod's node and those allowed by the ingress list"). Traffic from
  other nodes is matched only by ipBlock. Egress from a pod to its node is NOT exempt.
- A pod cannot block connections to itself (documented), so src == dst is allowed.

Speed: policies are indexed by namespace; the selecting policies are computed once per
(namespace, label set); verdicts are cached per (source, destination) *identity* - label
set, namespace, named ports and which ipBlocks hold the address - not per pod, so
replicas and repeated connections cost a dictionary lookup. ``endpoint_key`` hands that
identity out, so that callers with many connections group them first and ask once per
group (``generator.verify.cohorts``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Union

from generator.resolve.edges import Labels, PodView
from generator.inventory.model import Inventory, LabelSelector
from generator.verify.policy import IPBlock, NetworkPolicy, PolicyRule
from generator.verify.selectors import matches
from recorder.errors import InputError

Endpoint = Union[PodView, str]
RuleRef = tuple[str, int]  # (policy id "ns/name", index in spec.ingress or spec.egress)
# (policy id, "ingress" or "egress", rule index, peer index, port index); a peer or port
# index is None when the rule has no from/to (every peer) or no ports (every port).
RuleEntry = tuple[str, str, int, int | None, int | None]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# Endpoint kinds as the evaluator sees them.
POD = "pod"
HOST_NETWORK = "host-network pod"
ADDRESS = "address"

# Exemptions: sides allowed whatever the policies say.
OWN_NODE = "own-node"
SELF = "self"
_EXEMPTION_TEXT = {
    OWN_NODE: "from the pod's own node, which a pod cannot block (kubelet probes)",
    SELF: "to the pod itself, which a pod cannot block",
}


@dataclass(frozen=True, slots=True)
class SideVerdict:
    """One direction at one end: source egress or destination ingress."""

    isolated: bool
    selecting: tuple[str, ...] = ()  # policies selecting the pod for this direction
    allowed_by: tuple[RuleRef, ...] = ()  # every rule of those that allows it
    exemption: str | None = None  # OWN_NODE or SELF: allowed regardless
    endpoint: str = POD  # POD, HOST_NETWORK or ADDRESS (never isolated)
    # Other dialects (generator.verify.combined): deny rules that match (Cilium's
    # ingressDeny/egressDeny, a ClusterNetworkPolicy Deny), and the ClusterNetworkPolicy
    # Accept that decided before any NetworkPolicy was asked.
    denied_by: tuple[RuleRef, ...] = ()
    accepted_by: tuple[RuleRef, ...] = ()

    @property
    def allowed(self) -> bool:
        if self.exemption is not None:
            return True
        if self.denied_by:
            return False
        return not self.isolated or bool(self.allowed_by) or bool(self.accepted_by)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    egress: SideVerdict  # at the source
    ingress: SideVerdict  # at the destination
    protocol: str
    port: int | None

    @property
    def denied_by(self) -> str | None:
        """"source egress", "destination ingress", both joined by "and", or None."""
        sides = [
            name for name, side in (("source egress", self.egress), ("destination ingress", self.ingress))
            if not side.allowed
        ]
        return " and ".join(sides) or None

    @property
    def reason(self) -> str:
        """Which side decides, and which policies select the pods, in one line."""
        what = self.protocol + (f"/{self.port}" if self.port is not None else "")
        sides = (
            ("source egress", _side_text("egress", "to the destination", self.egress, what), self.egress),
            ("destination ingress", _side_text("ingress", "from the source", self.ingress, what), self.ingress),
        )
        if self.allowed:
            return "allowed: " + "; ".join(f"{name}: {text}" for name, text, _ in sides)
        denied = [(name, text) for name, text, side in sides if not side.allowed]
        if len(denied) == 1:
            return f"denied by {denied[0][0]}: {denied[0][1]}"
        return f"denied by {self.denied_by}: " + "; ".join(f"{name}: {text}" for name, text in denied)


def _side_text(direction: str, towards: str, side: SideVerdict, what: str) -> str:
    if side.endpoint != POD:
        return f"not subject to NetworkPolicy ({side.endpoint})"
    if side.exemption is not None:
        return f"always allowed, {_EXEMPTION_TEXT[side.exemption]}"
    if side.denied_by:
        return "denied by " + ", ".join(f"{pid} {rule_text(direction, i)}"
                                        for pid, i in side.denied_by)
    if side.accepted_by:
        return "accepted by " + ", ".join(f"{pid} {rule_text(direction, i)}"
                                          for pid, i in side.accepted_by)
    if not side.isolated:
        return f"not isolated (no policy selects the pod for {direction})"
    selected = f"isolated by {', '.join(side.selecting)}"
    if side.allowed_by:
        return f"{selected}; allowed by " + ", ".join(f"{pid} {rule_text(direction, i)}"
                                                      for pid, i in side.allowed_by)
    return f"{selected}; no {direction} rule of these allows {what} {towards}"


def rule_text(direction: str, index: int | str) -> str:
    """``ingress[0]``; a rule index given as text (another dialect's rule, e.g.
    ``ingressDeny[1]``) is its own name."""
    return index if isinstance(index, str) else f"{direction}[{index}]"


# ------------------------------------------------------------------ internals


@dataclass(frozen=True, slots=True)
class _Peer:
    """A compiled policy peer: an ipBlock (by index) or selectors bound to a namespace."""

    block: int | None
    pod_selector: LabelSelector | None
    namespace_selector: LabelSelector | None
    policy_namespace: str


@dataclass(frozen=True, slots=True)
class _Port:
    protocol: str
    low: int | None  # None with name None: every port
    high: int | None
    name: str | None


@dataclass(frozen=True, slots=True)
class _Rule:
    index: int
    peers: tuple[_Peer, ...] | None  # None: every peer
    ports: tuple[_Port, ...] | None  # None: every port and protocol


@dataclass(frozen=True, slots=True)
class _Policy:
    id: str
    ingress: tuple[_Rule, ...] | None  # None: policy does not apply for ingress
    egress: tuple[_Rule, ...] | None


@dataclass(frozen=True, slots=True)
class EndpointKey:
    """All that ``check`` and ``matched_entries`` read of an endpoint, as small numbers.

    Two connections get the same verdict and the same entries when their sources have
    equal ``peer``, their destinations equal ``peer`` and ``ports``, protocol and port
    are the same, and ``exempt`` gives the same answer for both. Callers with many
    connections between few kinds of endpoints group by these and ask once per group.
    """

    peer: int  # namespace, label set, kind, the ipBlocks holding the address
    ports: int  # named ports (as a destination)
    source_tag: int  # as a source: 0, or matched against the destination's tags
    destination_tags: tuple[int | None, int | None]  # as a destination: (pod, own node)


def exempt(src: EndpointKey, dst: EndpointKey) -> bool:
    """Whether a connection between these ends is exempt from the policies of one side:
    a pod to itself, or the destination pod's own node to it (see ``check``)."""
    return src.source_tag in dst.destination_tags


class _End:
    """What evaluation needs of one endpoint; ``peer_key`` is all peer matching reads.

    ``node``: for a pod, the node it runs on; for an address or a hostNetwork pod, the
    node that address belongs to (None when unknown).
    """

    __slots__ = ("kind", "namespace", "labels", "ns_labels", "named_ports", "blocks", "node", "pod_key",
                 "peer_key", "ports_key", "peer_id", "ports_id", "key")

    def __init__(self, kind: str, namespace: str | None, labels: dict[str, str] | None,
                 ns_labels: dict[str, str] | None, named_ports: dict[tuple[str, str], int],
                 blocks: frozenset[int], node: str | None, pod_key: tuple[str, str] | None,
                 labels_key: Labels | None, ports_key: tuple) -> None:
        self.kind = kind
        self.namespace = namespace
        self.labels = labels
        self.ns_labels = ns_labels
        self.named_ports = named_ports
        self.blocks = blocks
        self.node = node
        self.pod_key = pod_key
        self.peer_key = (kind, namespace, labels_key, blocks)
        self.ports_key = ports_key
        # peer_key and ports_key numbered by the Evaluator (equal keys, equal numbers)
        self.peer_id = -1
        self.ports_id = -1
        self.key: EndpointKey | None = None  # built by Evaluator.endpoint_key when asked


_NOT_ISOLATED = SideVerdict(isolated=False)

# One side's verdict (before exemptions) and the rules that allow it there, in the
# order of its allowed_by: what matched_entries takes apart into entries.
_Found = tuple[SideVerdict, tuple[tuple[_Policy, _Rule], ...]]
_NOT_ISOLATED_FOUND: _Found = (_NOT_ISOLATED, ())


class Evaluator:
    """Answers ``check`` for many connections against one set of policies.

    ``namespace_labels``: labels per namespace (tuples of pairs or mappings);
    ``node_addresses``: node name -> its IPs, so that node traffic is recognised (the
    own-node exemption) when a side is given as an address.
    """

    def __init__(
        self,
        policies: Iterable[NetworkPolicy],
        namespace_labels: Mapping[str, Labels | Mapping[str, str]] | None = None,
        node_addresses: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.policies: tuple[NetworkPolicy, ...] = tuple(policies)
        self._ns_labels_raw = dict(namespace_labels or {})
        self._node_of_ip: dict[str, str] = {}
        for node, addresses in (node_addresses or {}).items():
            for a in addresses:
                self._node_of_ip[_canonical_ip(a)] = node
        self._blocks: list[IPBlock] = []
        block_index: dict[IPBlock, int] = {}
        self._by_namespace: dict[str, list[tuple[LabelSelector, _Policy]]] = {}
        self._entries: dict[tuple, tuple[RuleEntry, ...]] = {}
        self._compiled: dict[str, _Policy] = {}
        self._ends_of: dict[int, tuple[tuple[Endpoint, ...], list[_End]]] = {}
        self._admitting: dict[tuple, tuple[int, ...]] = {}
        for p in self.policies:
            compiled = _Policy(
                p.id,
                self._compile_rules(p.ingress, p.namespace, block_index) if p.affects_ingress else None,
                self._compile_rules(p.egress, p.namespace, block_index) if p.affects_egress else None,
            )
            self._by_namespace.setdefault(p.namespace, []).append((p.pod_selector, compiled))
            self._compiled[p.id] = compiled
        # Every address is tested against every ipBlock; comparing integers gives the
        # answer of IPBlock.contains at a fraction of the cost of ipaddress's ``in``.
        # Per IP version: (block index, first, last, excepts of that version).
        self._block_ranges: dict[int, list[tuple[int, int, int, tuple[_IntRange, ...]]]] = {}
        for i, (net, excepts) in enumerate(_int_ranges(b) for b in self._blocks):
            if net is not None:
                self._block_ranges.setdefault(net[0], []).append(
                    (i, net[1], net[2], tuple(e for e in excepts if e[0] == net[0])))
        self._ns_labels: dict[str, dict[str, str]] = {}
        self._selection: dict[tuple[str, Labels], tuple[tuple[_Policy, ...], tuple[_Policy, ...]]] = {}
        self._pod_ends: dict[PodView, _End] = {}
        self._ip_ends: dict[str, _End] = {}
        self._ip_blocks: dict[str, frozenset[int]] = {}
        # keyed by id() of a tuple of selecting policies: _selection holds each for good,
        # and hashing the policies themselves would walk all their rules
        self._egress_cache: dict[tuple, _Found] = {}
        self._ingress_cache: dict[tuple, _Found] = {}
        self._cache: dict[tuple, Verdict] = {}
        # Hashing a PodView (a dataclass) or an identity key (nested tuples of labels)
        # walks every label on each call, while callers ask about the same few objects
        # again and again (one per pod, for tens of thousands of connections). So
        # endpoints are looked up by identity first (each held beside its _End, so its
        # id stays unique), and each distinct peer_key / ports_key gets a small number
        # that the verdict caches are keyed by.
        self._ends_by_id: dict[int, tuple[Endpoint, _End]] = {}
        self._peer_ids: dict[tuple, int] = {}
        self._ports_ids: dict[tuple, int] = {}
        # pod keys (tuples) and node names (strings), numbered from 1 for EndpointKey
        self._exemption_tags: dict[tuple[str, str] | str, int] = {}

    @classmethod
    def from_inventory(cls, policies: Iterable[NetworkPolicy], inventory: Inventory) -> "Evaluator":
        """Namespace labels and node addresses taken from a cluster snapshot."""
        return cls(
            policies,
            {ns.name: ns.labels for ns in inventory.namespaces},
            {node.name: node.addresses for node in inventory.nodes},
        )

    def _compile_rules(self, rules: tuple[PolicyRule, ...], namespace: str,
                       block_index: dict[IPBlock, int]) -> tuple[_Rule, ...]:
        out = []
        for i, rule in enumerate(rules):
            peers = []
            for peer in rule.peers:
                if peer.ip_block is not None:
                    idx = block_index.get(peer.ip_block)
                    if idx is None:
                        idx = block_index[peer.ip_block] = len(self._blocks)
                        self._blocks.append(peer.ip_block)
                    peers.append(_Peer(idx, None, None, namespace))
                else:
                    peers.append(_Peer(None, peer.pod_selector, peer.namespace_selector, namespace))
            ports = []
            for port in rule.ports:
                if port.port is None:
                    ports.append(_Port(port.protocol, None, None, None))
                elif isinstance(port.port, str):
                    ports.append(_Port(port.protocol, None, None, port.port))
                else:
                    ports.append(_Port(port.protocol, port.port, port.end_port or port.port, None))
            out.append(_Rule(i, tuple(peers) or None, tuple(ports) or None))
        return tuple(out)

    # ------------------------------------------------------------ public API

    def check(self, src: Endpoint, dst: Endpoint, protocol: str, port: int | None) -> Verdict:
        """The verdict for a connection initiated by ``src`` towards ``dst``."""
        s = self._end(src)
        d = self._end(dst)
        if protocol not in _PROTOCOL_NAMES:
            protocol = protocol.upper()
        own_node = d.kind == POD and s.kind != POD and s.node is not None and s.node == d.node
        itself = s.kind == POD and s.pod_key == d.pod_key
        key = (s.peer_id, d.peer_id, d.ports_id, protocol, port, own_node, itself)
        verdict = self._cache.get(key)
        if verdict is None:
            verdict = self._cache[key] = self._evaluate(s, d, protocol, port, own_node, itself)
        return verdict

    def endpoint_key(self, endpoint: Endpoint) -> EndpointKey:
        """The numbers ``check`` and ``matched_entries`` depend on (see EndpointKey)."""
        end = self._end(endpoint)
        key = end.key
        if key is None:
            tags = self._exemption_tags
            pod = node = None
            if end.pod_key is not None:
                pod = tags.setdefault(end.pod_key, len(tags) + 1)
            if end.node is not None:
                node = tags.setdefault(end.node, len(tags) + 1)
            # mirrors ``check``: ``itself`` compares a source pod's pod_key with the
            # destination's (whatever its kind); ``own_node`` a non-pod source's node
            # with a destination pod's node. Pod keys and node names never collide.
            if end.kind == POD:
                key = EndpointKey(end.peer_id, end.ports_id, pod or 0, (pod, node))
            else:
                key = EndpointKey(end.peer_id, end.ports_id, node or 0, (pod, None))
            end.key = key
        return key

    @property
    def cached_verdicts(self) -> int:
        """How many distinct (source, destination, protocol, port) identities were evaluated."""
        return len(self._cache)

    def selecting(self, pod: PodView) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Ids of the policies isolating ``pod`` for (ingress, egress)."""
        if pod.host_network:
            return (), ()
        ingress, egress = self._select(pod.namespace, pod.labels)
        return tuple(p.id for p in ingress), tuple(p.id for p in egress)

    def matched_entries(self, src: Endpoint, dst: Endpoint, protocol: str,
                        port: int | None) -> tuple[RuleEntry, ...]:
        """Every (policy, direction, rule, peer element, port entry) that matches this
        connection on its side: source egress and destination ingress rules, whether or
        not the other side allows it. A rule appears here exactly when ``check`` lists it
        in that side's ``allowed_by``; this says which of its peers and ports did it.
        Cached per identity, like ``check``."""
        s = self._end(src)
        d = self._end(dst)
        if protocol not in _PROTOCOL_NAMES:
            protocol = protocol.upper()
        key = (s.peer_id, d.peer_id, d.ports_id, protocol, port)
        found = self._entries.get(key)
        if found is None:
            out: list[RuleEntry] = []
            # the rules check found allowing each side are the ones with a matching peer
            # and a matching port: only their elements are looked at
            for direction, peer, (_, rules) in (("egress", d, self._egress(s, d, protocol, port)),
                                                ("ingress", s, self._ingress(s, d, protocol, port))):
                for policy, rule in rules:
                    peers: tuple | list = (None,) if rule.peers is None else [
                        i for i, p in enumerate(rule.peers) if _peers_match((p,), peer)]
                    ports: tuple | list = (None,) if rule.ports is None else [
                        i for i, p in enumerate(rule.ports) if _ports_match((p,), d, protocol, port)]
                    out.extend((policy.id, direction, rule.index, a, b) for a in peers for b in ports)
            found = self._entries[key] = tuple(out)
        return found

    def admitting(self, policy_id: str, direction: str, rule: int, peer: int | None,
                  endpoints: tuple[Endpoint, ...]) -> tuple[int, ...]:
        """Indices of the ``endpoints`` that the ``peer``-th from/to element of a rule
        (None: the rule has none, so every peer) admits, whatever the ports: the peer
        half of a rule entry (``matched_entries`` answers both halves for one
        connection). Empty for a direction the policy does not affect. Remembered per
        element for the same ``endpoints`` tuple: policies repeat their peers."""
        compiled = self._compiled[policy_id]
        rules = compiled.ingress if direction == "ingress" else compiled.egress
        if rules is None:
            return ()
        peers = rules[rule].peers
        if peers is None:
            return tuple(range(len(endpoints)))
        elements = (peers[peer],) if peer is not None else peers
        hit = self._ends_of.get(id(endpoints))
        if hit is None or hit[0] is not endpoints:
            hit = self._ends_of[id(endpoints)] = (endpoints, [self._end(e) for e in endpoints])
        key = (elements, id(endpoints))
        found = self._admitting.get(key)
        if found is None:
            found = self._admitting[key] = tuple(
                i for i, end in enumerate(hit[1]) if _peers_match(elements, end))
        return found

    # ------------------------------------------------------------ evaluation

    def _evaluate(self, s: _End, d: _End, protocol: str, port: int | None, own_node: bool,
                  itself: bool) -> Verdict:
        egress = self._egress(s, d, protocol, port)[0]
        ingress = self._ingress(s, d, protocol, port)[0]
        if itself:
            egress = replace(egress, exemption=SELF)
            ingress = replace(ingress, exemption=SELF)
        elif own_node:
            ingress = replace(ingress, exemption=OWN_NODE)
        return Verdict(egress.allowed and ingress.allowed, egress, ingress, protocol, port)

    def _egress(self, s: _End, d: _End, protocol: str, port: int | None) -> _Found:
        if s.kind != POD:
            return SideVerdict(isolated=False, endpoint=s.kind), ()
        policies = self._select(s.namespace, s.peer_key[2])[1]  # type: ignore[arg-type]
        if not policies:
            return _NOT_ISOLATED_FOUND
        key = (id(policies), d.peer_id, d.ports_id, protocol, port)
        found = self._egress_cache.get(key)
        if found is None:
            found = self._egress_cache[key] = _side(policies, "egress", d, d, protocol, port)
        return found

    def _ingress(self, s: _End, d: _End, protocol: str, port: int | None) -> _Found:
        if d.kind != POD:
            return SideVerdict(isolated=False, endpoint=d.kind), ()
        policies = self._select(d.namespace, d.peer_key[2])[0]  # type: ignore[arg-type]
        if not policies:
            return _NOT_ISOLATED_FOUND
        key = (id(policies), s.peer_id, d.ports_id, protocol, port)
        found = self._ingress_cache.get(key)
        if found is None:
            found = self._ingress_cache[key] = _side(policies, "ingress", s, d, protocol, port)
        return found

    def _select(self, namespace: str, labels: Labels) -> tuple[tuple[_Policy, ...], tuple[_Policy, ...]]:
        key = (namespace, labels)
        found = self._selection.get(key)
        if found is None:
            label_map = dict(labels)
            chosen = [p for sel, p in self._by_namespace.get(namespace, ()) if matches(sel, label_map)]
            found = self._selection[key] = (
                tuple(p for p in chosen if p.ingress is not None),
                tuple(p for p in chosen if p.egress is not None),
            )
        return found

    # ------------------------------------------------------------ endpoints

    def _end(self, endpoint: Endpoint) -> _End:
        hit = self._ends_by_id.get(id(endpoint))
        if hit is not None and hit[0] is endpoint:
            return hit[1]
        end = self._end_by_value(endpoint)
        if end.peer_id < 0:  # new: number its keys
            end.peer_id = self._peer_ids.setdefault(end.peer_key, len(self._peer_ids))
            end.ports_id = self._ports_ids.setdefault(end.ports_key, len(self._ports_ids))
        self._ends_by_id[id(endpoint)] = (endpoint, end)
        return end

    def _end_by_value(self, endpoint: Endpoint) -> _End:
        if isinstance(endpoint, str):
            end = self._ip_ends.get(endpoint)
            if end is None:
                ip, version, n = _address(endpoint)
                end = self._ip_ends[endpoint] = _End(
                    ADDRESS, None, None, None, {}, self._blocks_of(ip, version, n), self._node_of_ip.get(ip),
                    None, None, ()
                )
            return end
        end = self._pod_ends.get(endpoint)
        if end is None:
            end = self._pod_ends[endpoint] = self._pod_end(endpoint)
        return end

    def _pod_end(self, pod: PodView) -> _End:
        ip = None
        blocks: frozenset[int] = frozenset()
        if pod.ip:
            ip, version, n = _address(pod.ip)
            blocks = self._blocks_of(ip, version, n)
        if pod.host_network:
            node = pod.node or (self._node_of_ip.get(ip) if ip else None)
            return _End(HOST_NETWORK, None, None, None, {}, blocks, node, (pod.namespace, pod.name), None, ())
        labels = tuple(sorted(pod.labels))
        named = {(name, proto.upper()): number for name, proto, number in pod.named_ports}
        return _End(
            POD,
            pod.namespace,
            dict(labels),
            self._namespace_labels(pod.namespace),
            named,
            blocks,
            pod.node,
            (pod.namespace, pod.name),
            labels,
            tuple(sorted(named.items())),
        )

    def _namespace_labels(self, namespace: str) -> dict[str, str]:
        found = self._ns_labels.get(namespace)
        if found is None:
            raw = self._ns_labels_raw.get(namespace) or ()
            found = dict(raw.items() if isinstance(raw, Mapping) else raw)
            found.setdefault(NAMESPACE_NAME_LABEL, namespace)
            self._ns_labels[namespace] = found
        return found

    def _blocks_of(self, ip: str, version: int, n: int) -> frozenset[int]:
        """``ip``: canonical text of the address (the cache key), ``n`` its value."""
        found = self._ip_blocks.get(ip)
        if found is None:
            found = self._ip_blocks[ip] = frozenset(
                i for i, first, last, excepts in self._block_ranges.get(version, ())
                if first <= n <= last and not (excepts and any(e[1] <= n <= e[2] for e in excepts)))
        return found


_PROTOCOL_NAMES = frozenset(("TCP", "UDP", "SCTP", "ICMP", "ICMPV6"))
_IntRange = tuple[int, int, int]  # (IP version, first address, last address)


def _int_range(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> _IntRange:
    return net.version, int(net.network_address), int(net.broadcast_address)


def _int_ranges(block: IPBlock) -> tuple[_IntRange | None, tuple[_IntRange, ...]]:
    """An ipBlock's network and its excepts as integer ranges (None: matches nothing)."""
    net = block.network
    return (_int_range(net) if net is not None else None,
            tuple(_int_range(e) for e in block.except_networks))


def _canonical_ip(text: str) -> str:
    return _address(text)[0]


def _address(text: str) -> tuple[str, int, int]:
    """(canonical text, IP version, the address as an integer)."""
    # Most addresses are canonical dotted quads, already what str() of the parsed
    # address gives: taken apart here at a fraction of ipaddress's cost. Anything else
    # (leading zeros, IPv6, not an address) is left to ipaddress to canonicalise or reject.
    parts = text.split(".")
    if len(parts) == 4:
        n = 0
        for part in parts:
            if not (part.isascii() and part.isdigit()) or len(part) > 3 \
                    or (len(part) > 1 and part[0] == "0"):
                break
            octet = int(part)
            if octet > 255:
                break
            n = n << 8 | octet
        else:
            return text, 4, n
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InputError(f"{text!r} is not an IP address; give a pod, or a node/external IPv4 or IPv6 address") from None
    return str(address), address.version, int(address)


def _side(policies: tuple[_Policy, ...], direction: str, peer: _End, dst: _End, protocol: str,
          port: int | None) -> _Found:
    matched: list[tuple[_Policy, _Rule]] = []
    for policy in policies:
        rules = policy.ingress if direction == "ingress" else policy.egress
        for rule in rules or ():
            if _peers_match(rule.peers, peer) and _ports_match(rule.ports, dst, protocol, port):
                matched.append((policy, rule))
    return (SideVerdict(True, tuple(p.id for p in policies),
                        tuple((policy.id, rule.index) for policy, rule in matched)),
            tuple(matched))


def _peers_match(peers: tuple[_Peer, ...] | None, end: _End) -> bool:
    if peers is None:
        return True
    for peer in peers:
        if peer.block is not None:
            if peer.block in end.blocks:
                return True
            continue
        if end.kind != POD:
            continue  # selectors never match nodes, externals or hostNetwork pods
        if peer.namespace_selector is None:
            if end.namespace != peer.policy_namespace:
                continue
        elif not matches(peer.namespace_selector, end.ns_labels):  # type: ignore[arg-type]
            continue
        if peer.pod_selector is None or matches(peer.pod_selector, end.labels):  # type: ignore[arg-type]
            return True
    return False


def _ports_match(ports: tuple[_Port, ...] | None, dst: _End, protocol: str, port: int | None) -> bool:
    if ports is None:
        return True
    for p in ports:
        if p.protocol != protocol:
            continue
        if port is None:
            if p.name is None and p.low is None:
                return True  # every port of the protocol, so also an unknown one
        elif p.name is not None:
            if dst.named_ports.get((p.name, protocol)) == port:
                return True
        elif p.low is None or p.low <= port <= p.high:  # type: ignore[operator]
            return True
    return False
