"""Which parts of a policy set the observed traffic used (`flowpol verify --unused`).

An *entry* is one (policy, direction, rule, peer element, port entry) combination: what
one ``from``/``to`` element allows on one ``ports`` entry. A rule without ``from``/``to``
has one peer "any peer", a rule without ``ports`` one port "every port", so every rule
has at least one entry. An entry is used when an observed connection matches it on its
side (source egress, destination ingress) - also when the other side denies that
connection: the traffic needs the rule, and the denial is reported with the denied
connections. What is left unused is what the policies allow beyond the traffic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from generator.resolve.edges import WORKLOAD, Connection, Peer
from generator.resolve.identity import pod_view
from generator.inventory.index import InventoryIndex
from generator.inventory.model import Inventory, LabelSelector
from generator.verify import cilium_text
from generator.verify.cilium import CiliumJudge, SubjectView
from generator.verify.cilium_policy import CiliumPolicy
from generator.verify.cohorts import known_cohorts
from generator.verify.evaluator import NAMESPACE_NAME_LABEL, Evaluator
from generator.verify.policy import EGRESS, INGRESS, NetworkPolicy, PolicyPeer, PolicyPort
from generator.verify.selectors import describe, matches

ANY_PEER = "any peer (every pod and address)"


@dataclass(frozen=True, slots=True)
class EntryUse:
    policy: str  # "ns/name"
    direction: str  # "ingress" or "egress"
    rule: int  # index in spec.ingress / spec.egress
    peer: int | None  # index in from/to; None: the rule has none (any peer)
    port: int | None  # index in ports; None: the rule has none (every port)
    peer_text: str
    port_text: str
    connections: int  # observed connections that matched (sum of counts)
    last_seen: int | None

    @property
    def used(self) -> bool:
        return self.connections > 0


@dataclass(frozen=True, slots=True)
class RuleUse:
    policy: str
    direction: str
    rule: int
    selects: str  # the pods the policy applies to, readable
    peers: tuple[str, ...]
    ports: tuple[str, ...]
    entries: tuple[EntryUse, ...]
    note: str | None = None  # why no connection can ever match it, when that is known

    @property
    def connections(self) -> int:
        return sum(e.connections for e in self.entries)

    @property
    def used(self) -> bool:
        return any(e.used for e in self.entries)

    @property
    def ref(self) -> str:
        return f"{self.policy} {self.direction}[{self.rule}]"

    @property
    def allows(self) -> str:
        towards = "from" if self.direction == "ingress" else "to"
        return (f"{self.direction} of {self.selects} {towards} {' or '.join(self.peers)} "
                f"on {', '.join(self.ports)}")


@dataclass(frozen=True, slots=True)
class UsageResult:
    rules: tuple[RuleUse, ...]  # every rule of every policy, in the order given
    # used rules that admit more than went through them (``broader_than_use``)
    broader: tuple["BroaderRule", ...] = ()

    @property
    def unused_rules(self) -> tuple[RuleUse, ...]:
        return tuple(r for r in self.rules if not r.used)

    @property
    def unused_entries(self) -> tuple[EntryUse, ...]:
        """Unused peer/port combinations of rules that are otherwise used."""
        return tuple(e for r in self.rules if r.used for e in r.entries if not e.used)


def rule_usage(connections: Iterable[Connection], policies: Iterable[NetworkPolicy],
               evaluator: Evaluator, inventory: Inventory | None = None,
               cilium: Iterable[CiliumPolicy] = ()) -> UsageResult:
    """Count, per entry, the observed connections it allows on its side.

    ``evaluator`` must have been built for ``policies`` (and ``cilium``: a
    ``CombinedEvaluator``). ``inventory``: when given, rules of policies that select no
    pod in it say so in their ``note``.
    """
    counts: dict[tuple, int] = defaultdict(int)
    last: dict[tuple, int] = {}
    found = known_cohorts(connections, evaluator)
    if found is not None:
        # `flowpol verify` checked the same connections first: their cohorts are known,
        # and a cohort's connections match the same entries
        for co in found.cohorts:
            c = co.first
            for entry in evaluator.matched_entries(co.src, co.dst, c.protocol, c.port):
                counts[entry] += co.count
                if last.get(entry, -1) < co.last_seen:
                    last[entry] = co.last_seen
    else:
        # (making cohorts for this alone costs about what it saves)
        named = getattr(evaluator, "named_destination", None)  # toFQDNs judge names
        for c in connections:
            src = c.src_pod if c.src_pod is not None else c.src_ip
            dst = c.dst_pod if c.dst_pod is not None else \
                (c.dst_ip if named is None else named(c))
            for entry in evaluator.matched_entries(src, dst, c.protocol, c.port):
                counts[entry] += c.count
                if last.get(entry, -1) < c.last_seen:
                    last[entry] = c.last_seen
    label_sets = _label_sets(inventory) if inventory is not None else None
    rules: list[RuleUse] = []
    for policy in policies:
        selects_none = label_sets is not None and not any(
            matches(policy.pod_selector, dict(labels)) for labels in label_sets.get(policy.namespace, ()))
        selects = describe_peer(PolicyPeer(pod_selector=policy.pod_selector), policy.namespace)
        for direction, kind, rule_list in (("ingress", INGRESS, policy.ingress),
                                           ("egress", EGRESS, policy.egress)):
            note = None
            if kind not in policy.policy_types:
                note = (f"has no effect: spec.policyTypes does not list {kind}, so the API "
                        f"server ignores spec.{direction}")
            elif selects_none:
                note = "the policy selects no pod in the snapshot"
            for i, rule in enumerate(rule_list):
                peer_items: list[tuple[int | None, str]] = (
                    [(j, describe_peer(p, policy.namespace)) for j, p in enumerate(rule.peers)]
                    or [(None, ANY_PEER)])
                port_items: list[tuple[int | None, str]] = (
                    [(j, describe_port(p)) for j, p in enumerate(rule.ports)] or [(None, "every port")])
                entries = []
                for peer_index, peer_text in peer_items:
                    for port_index, port_text in port_items:
                        key = (policy.id, direction, i, peer_index, port_index)
                        entries.append(EntryUse(policy.id, direction, i, peer_index, port_index,
                                                peer_text, port_text, counts.get(key, 0),
                                                last.get(key)))
                rules.append(RuleUse(policy.id, direction, i, selects,
                                     tuple(t for _, t in peer_items), tuple(t for _, t in port_items),
                                     tuple(entries), note))
    rules += _cilium_rules(tuple(cilium), counts, last, inventory)
    return UsageResult(tuple(rules))


def _cilium_rules(policies: tuple[CiliumPolicy, ...], counts: dict, last: dict,
                  inventory: Inventory | None) -> list[RuleUse]:
    selected: set[str] | None = None
    if inventory is not None and policies:
        judge = CiliumJudge(policies)
        ns_labels = {ns.name: dict(ns.labels) for ns in inventory.namespaces}
        selected = {p.id for pod in inventory.pods if not pod.host_network
                    for p in judge.policies_selecting(SubjectView(
                        pod.namespace, dict(pod.labels), ns_labels.get(pod.namespace, {}), pod.node))}
    out: list[RuleUse] = []
    for policy in policies:
        selects = cilium_text.selects(policy)
        for direction, rule_list in (("ingress", policy.ingress), ("egress", policy.egress)):
            for i, rule in enumerate(rule_list):
                peer_items, port_items = cilium_text.rule_items(policy, rule)
                note = None
                if selected is not None and policy.id not in selected:
                    note = "the policy selects no pod in the snapshot"
                if rule.not_judged and not peer_items:
                    note = "matches nothing here: " + "; ".join(rule.not_judged)
                elif not peer_items:
                    continue  # an explicitly empty peer list: the rule admits nothing
                entries = tuple(
                    EntryUse(policy.id, direction, i, a, b, peer_text, port_text,
                             counts.get((policy.id, direction, i, a, b), 0),
                             last.get((policy.id, direction, i, a, b)))
                    for a, peer_text in peer_items for b, port_text in port_items)
                out.append(RuleUse(policy.id, direction, i, selects,
                                   tuple(t for _, t in peer_items) or ("nothing",),
                                   tuple(t for _, t in port_items), entries, note))
    return out


def _label_sets(inventory: Inventory) -> dict[str, set]:
    out: dict[str, set] = defaultdict(set)
    for pod in inventory.pods:
        if not pod.host_network:
            out[pod.namespace].add(pod.labels)
    return out


# ---------------------------------------------------------------- readable text


def _namespaces_text(selector: LabelSelector | None, policy_namespace: str) -> str:
    if selector is None:
        return f"namespace {policy_namespace}"
    if selector.is_empty():
        return "every namespace"
    if not selector.match_expressions and len(selector.match_labels) == 1 \
            and selector.match_labels[0][0] == NAMESPACE_NAME_LABEL:
        return f"namespace {selector.match_labels[0][1]}"
    return f"namespaces {describe(selector)}"


def describe_peer(peer: PolicyPeer, policy_namespace: str) -> str:
    """One from/to element, e.g. ``pods app=web in namespace shop``, ``ipBlock 10.0.0.0/8``."""
    if peer.ip_block is not None:
        return f"ipBlock {peer.ip_block.describe()}"
    where = _namespaces_text(peer.namespace_selector, policy_namespace)
    if peer.pod_selector is None or peer.pod_selector.is_empty():
        return f"every pod in {where}"
    return f"pods {describe(peer.pod_selector)} in {where}"


def describe_port(port: PolicyPort) -> str:
    """One ports entry: ``TCP/8080``, ``TCP/8000-8099``, ``TCP/http (named port)``,
    ``every UDP port``."""
    if port.port is None:
        return f"every {port.protocol} port"
    if isinstance(port.port, str):
        return f"{port.protocol}/{port.port} (named port)"
    if port.end_port is not None and port.end_port != port.port:
        return f"{port.protocol}/{port.port}-{port.end_port}"
    return f"{port.protocol}/{port.port}"


# ---------------------------------------------------------------- broader than its use

# Ports per protocol a rule admits when it names none: 1..65535 (Kubernetes'
# NetworkPolicyPort.port and endPort are 1-65535).
ALL_PORTS = 65535


@dataclass(frozen=True, slots=True)
class PeerBreadth:
    """What one from/to element (None: the rule has none) admits beyond the peers
    observed through it. ``beyond``: pods (of workloads not observed) or addresses it
    admits that no observed connection came from or went to; ``broad`` also holds for
    empty selectors, which admit every future pod of the namespaces too."""

    broad: bool
    beyond: int
    text: str  # e.g. "every pod in every namespace: 7 pods of 5 workloads beyond the observed"


@dataclass(frozen=True, slots=True)
class PortBreadth:
    broad: bool
    beyond: int  # ports admitted beyond the observed ones (per protocol given)
    text: str


def _selector_empty(selector: LabelSelector | None) -> bool:
    return selector is None or selector.is_empty()


def peer_breadth(policy: NetworkPolicy, direction: str, rule: int, peer: int | None,
                 observed_workloads: frozenset, observed_ips: frozenset[str],
                 evaluator: Evaluator, pods: tuple, pod_workloads: tuple) -> PeerBreadth:
    """How much wider one peer element is than its observed use. ``pods``: every
    non-hostNetwork pod of the snapshot (PodViews; pass the same tuple each time, the
    evaluator remembers answers per tuple), ``pod_workloads`` their workloads' keys;
    ``observed_workloads``: keys of the workloads seen through it; ``observed_ips``:
    the distinct peers seen through it (addresses, or a workload's name when an ipBlock
    admitted its pods), for an ipBlock's count."""
    rules = policy.ingress if direction == "ingress" else policy.egress
    element = None if peer is None else rules[rule].peers[peer]
    text = ANY_PEER if element is None else describe_peer(element, policy.namespace)
    if element is not None and element.ip_block is not None:
        block = element.ip_block
        net = block.network
        size = net.num_addresses if net is not None else 0
        for e in block.except_networks:
            size -= e.num_addresses
        beyond = max(size - len(observed_ips), 0)
        broad = beyond > 0 or bool(block.excepts)
        return PeerBreadth(broad, beyond, f"{text}: {beyond:,} address(es) beyond the "
                           f"{len(observed_ips)} observed peer(s)" if broad else text)
    admitted = evaluator.admitting(policy.id, direction, rule, peer, pods)
    extra = [pod_workloads[i] for i in admitted if pod_workloads[i] not in observed_workloads]
    empty = element is None or _selector_empty(element.pod_selector) or (
        element.namespace_selector is not None and element.namespace_selector.is_empty())
    if element is None:
        # any address as well as any pod
        return PeerBreadth(True, len(extra), f"{text}: {len(extra)} pod(s) of "
                           f"{len(set(extra))} workload(s) and every address beyond the observed")
    broad = empty or bool(extra)
    if not broad:
        return PeerBreadth(False, 0, text)
    if not extra:
        return PeerBreadth(True, 0, f"{text} (only observed pods now, but every pod added "
                           "later too)")
    return PeerBreadth(True, len(extra), f"{text}: {len(extra)} pod(s) of {len(set(extra))} "
                       "workload(s) beyond the observed" + (
                           " (and every pod added later)" if empty else ""))


def port_breadth(port: PolicyPort | None, observed: frozenset[tuple[str, int | None]]
                 ) -> PortBreadth:
    """How much wider one ports entry (None: the rule has none) is than the observed
    (protocol, port) pairs through it. A single or named port is exact: a named port is
    one port per destination pod."""
    if port is None:
        beyond = 3 * ALL_PORTS - len(observed)  # TCP, UDP and SCTP
        return PortBreadth(True, beyond, f"every port of every protocol: {beyond:,} port(s) "
                           "beyond the observed")
    text = describe_port(port)
    if port.port is None:
        beyond = ALL_PORTS - len(observed)
    elif isinstance(port.port, int) and port.end_port is not None and port.end_port != port.port:
        beyond = port.end_port - port.port + 1 - len(observed)
    else:
        return PortBreadth(False, 0, text)
    return PortBreadth(True, beyond, f"{text}: {beyond:,} port(s) beyond the observed")



# What went through one entry: (other end, protocol, port) -> [connections, last seen].
Seen = dict[tuple[Peer, str, int | None], list[int]]


def observed_through(connections: Iterable[Connection], evaluator: Evaluator
                     ) -> dict[tuple, Seen]:
    """Per rule entry (policy, direction, rule, peer, port), the observed other ends and
    ports that matched it on its side."""
    out: dict[tuple, Seen] = defaultdict(dict)
    for c in connections:
        src = c.src_pod if c.src_pod is not None else c.src_ip
        dst = c.dst_pod if c.dst_pod is not None else c.dst_ip
        for entry in evaluator.matched_entries(src, dst, c.protocol, c.port):
            other = c.src if entry[1] == "ingress" else c.dst
            seen = out[entry]
            hit = seen.get((other, c.protocol, c.port))
            if hit is None:
                seen[(other, c.protocol, c.port)] = [c.count, c.last_seen]
            else:
                hit[0] += c.count
                hit[1] = max(hit[1], c.last_seen)
    return out


def _workload_key(peer: Peer) -> tuple:
    return (peer.namespace, peer.workload_kind, peer.workload_name)


@dataclass(frozen=True, slots=True)
class BroaderRule:
    """A used rule broader than its use: per used peer element and ports entry that
    admits more than went through it, how much more."""

    policy: str
    direction: str
    rule: int
    peers: tuple[tuple[int | None, PeerBreadth], ...]  # the broad ones only
    ports: tuple[tuple[int | None, PortBreadth], ...]
    connections: int

    @property
    def ref(self) -> str:
        return f"{self.policy} {self.direction}[{self.rule}]"

    @property
    def text(self) -> str:
        word = "from" if self.direction == "ingress" else "to"
        return "; ".join([f"{word} {b.text}" for _, b in self.peers]
                         + [b.text for _, b in self.ports])


class BreadthJudge:
    """How much wider each used peer and port of a rule is than its observed use (the
    measure of ``verify --unused`` and of ``diff``'s narrowing)."""

    def __init__(self, index: InventoryIndex, evaluator: Evaluator,
                 connections: Iterable[Connection]):
        self.evaluator = evaluator
        self.seen = observed_through(connections, evaluator)
        pods = [p for p in index.inventory.pods if not p.host_network]
        self.pods = tuple(pod_view(p) for p in pods)
        self.pod_workloads = tuple(
            (w.namespace, w.kind, w.name) for w in (index.workload_of(p) for p in pods))

    def rule(self, policy: NetworkPolicy, direction: str, rule: int,
             entries: Iterable[tuple[int | None, int | None]]
             ) -> tuple[dict[int | None, PeerBreadth], dict[int | None, PortBreadth],
                        dict[tuple, Seen]]:
        """Per used peer and port index of the rule its breadth; and what went through
        each entry."""
        seen = {(j, k): self.seen.get((policy.id, direction, rule, j, k), {}) for j, k in entries}
        rules = policy.ingress if direction == "ingress" else policy.egress
        peers: dict[int | None, PeerBreadth] = {}
        ports: dict[int | None, PortBreadth] = {}
        for j in {j for j, _ in seen}:
            others = [o for (jj, _), s in seen.items() if jj == j for o, _, _ in s]
            peers[j] = peer_breadth(
                policy, direction, rule, j,
                frozenset(_workload_key(o) for o in others if o.kind == WORKLOAD),
                # what went through it, counted once each: addresses, and workloads
                # (pods an ipBlock admitted by their addresses)
                frozenset(o.ip if o.kind != WORKLOAD else o.display() for o in others),
                self.evaluator, self.pods, self.pod_workloads)
        for k in {k for _, k in seen}:
            observed = frozenset((proto, port) for (_, kk), s in seen.items() if kk == k
                                 for _, proto, port in s)
            ports[k] = port_breadth(None if k is None else rules[rule].ports[k], observed)
        return peers, ports, seen


def broader_than_use(usage: UsageResult, policies: Iterable[NetworkPolicy],
                     connections: Iterable[Connection], index: InventoryIndex
                     ) -> tuple[BroaderRule, ...]:
    """The used NetworkPolicy rules of ``usage`` that admit more peers or ports than
    the connections that used them (Cilium rules are not measured)."""
    policies = tuple(policies)
    by_id = {p.id: p for p in policies}
    judge = BreadthJudge(index, Evaluator.from_inventory(policies, index.inventory),
                         connections)
    out = []
    for r in usage.rules:
        policy = by_id.get(r.policy)
        if policy is None or not r.used or r.note:
            continue
        peers, ports, _ = judge.rule(policy, r.direction, r.rule,
                                     [(e.peer, e.port) for e in r.entries if e.used])
        broad_peers = tuple((j, b) for j, b in sorted(peers.items(), key=_index) if b.broad)
        broad_ports = tuple((k, b) for k, b in sorted(ports.items(), key=_index) if b.broad)
        if broad_peers or broad_ports:
            out.append(BroaderRule(r.policy, r.direction, r.rule, broad_peers, broad_ports,
                                   r.connections))
    return tuple(out)


def _index(item: tuple) -> int:
    return -1 if item[0] is None else item[0]
