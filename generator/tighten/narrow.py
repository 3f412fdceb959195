"""Narrowing a used rule to its use: a peer element or ports entry that admits more than
the connections that went through it is replaced by exactly what was observed.

- a peer (an empty or broad namespaceSelector/podSelector, an ipBlock wider than the
  observed addresses, a rule without ``from``/``to``, an allow-all rule ``{}``) becomes
  the observed peers as ``generate`` writes them: a workload by its podSelector
  (``synthesize``'s choice, with the namespace's name label when it lives elsewhere), an
  address as a /32 (/128), the DNS resolver pods instead of their whole namespace;
- a ports entry (none: every port; a protocol alone; a range) becomes the observed
  ports; a single or named port stays as written;
- the pairs are grouped like ``generate`` groups them: one rule per set of ports, so a
  peer gets only the ports it used (DNS over UDP keeps its TCP twin: resolvers retry
  over TCP when an answer is truncated).

Every element written is a subset of the one it replaces: an address that matched an
ipBlock is inside it; a workload's podSelector is ANDed with the original podSelector;
a port that matched a range or protocol is inside it. So the rules that replace a rule
admit nothing it did not (the tests prove it with the evaluator over all pairs and
ports).
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from dataclasses import dataclass

from generator.inventory.index import InventoryIndex
from generator.inventory.refs import WorkloadRef
from generator.resolve.edges import APISERVER, WORKLOAD, Connection, Peer
from generator.resolve.identity import pod_view
from generator.review.evidence import when
from generator.synthesize import model as m
from generator.synthesize.render.kubernetes import peer_element
from generator.verify.evaluator import Evaluator
from generator.verify.policy import NetworkPolicy, PolicyPort
from generator.verify.usage import BreadthJudge

PEERS_KEY = {"ingress": "from", "egress": "to"}
TWIN = {"UDP": "TCP", "TCP": "UDP"}


@dataclass(frozen=True, slots=True)
class Narrowing:
    """One used rule cut to its use: ``before`` as written, ``after`` the rules that
    replace it (in its place). ``removes`` says per broad item what it admitted and what
    it becomes; ``evidence`` the connections it rests on. ``problem``: why it is not
    narrowed though it is broad (then ``after`` is empty)."""

    policy: str
    direction: str
    rule: int
    before: dict
    after: tuple[dict, ...]
    removes: tuple[str, ...]
    evidence: str
    problem: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.direction}[{self.rule}]"

    @property
    def summary(self) -> str:
        return "; ".join(self.removes)


def _admits(port: PolicyPort, protocol: str, number: int) -> bool:
    if port.protocol != protocol:
        return False
    if port.port is None:
        return True
    if isinstance(port.port, int):
        return port.port <= number <= (port.end_port or port.port)
    return False


def _host_cidr(ip: str) -> str:
    return str(ipaddress.ip_network(ip))


def _first_address(cidr: str) -> str:
    """An address standing for a range (as generator.verify.declared judges it)."""
    net = ipaddress.ip_network(cidr, strict=False)
    return str(net.network_address if net.num_addresses <= 2 else net.network_address + 1)


def _within(cidr: str, original: dict | None) -> bool:
    """Whether a whole range is inside the peer element it would replace."""
    if original is None:
        return True  # a rule without from: every address
    block = original.get("ipBlock")
    if not isinstance(block, dict) or block.get("except"):
        return False
    try:
        return ipaddress.ip_network(cidr, strict=False).subnet_of(
            ipaddress.ip_network(block.get("cidr"), strict=False))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _merge_selector(narrow: dict, original: dict | None) -> dict:
    """``narrow`` ANDed with the original podSelector: never more than either."""
    if not original:
        return narrow
    out = dict(narrow)
    labels = dict(original.get("matchLabels") or {})
    labels.update(narrow.get("matchLabels") or {})
    if labels:
        out["matchLabels"] = labels
    expressions = list(narrow.get("matchExpressions") or [])
    expressions += [e for e in original.get("matchExpressions") or [] if e not in expressions]
    if expressions:
        out["matchExpressions"] = expressions
    return out


def _dumps(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True)


class Narrower:
    """Narrowing for every rule of one existing set against the observed connections
    (the window's: the same connections that count as use)."""

    def __init__(self, index: InventoryIndex, evaluator: Evaluator,
                 connections: list[Connection]):
        self.index = index
        self.judge = BreadthJudge(index, evaluator, connections)
        dns = index.dns_resolvers()
        self.dns_workloads = {(w.namespace, w.kind, w.name) for w in dns.workloads}
        self.dns_ips = set(dns.node_local_ips)
        self.dns_ports = {("UDP", p) for p in dns.udp_ports or (53,)} | \
            {("TCP", p) for p in dns.tcp_ports or (53,)}
        self.declared: dict[tuple, set[str]] = defaultdict(set)  # entry -> calls
        self._declared_calls(evaluator)

    def _declared_calls(self, evaluator: Evaluator) -> None:
        """The calls the cluster declares the API server makes (webhooks, aggregated
        APIs, conversion webhooks) count as use of the ingress entries that admit them,
        observed or not: narrowing keeps them (generator.verify.declared judges the same
        calls from the same sources)."""
        calls = self.index.declared_calls()
        if not calls.checked:
            return
        sources = [(ip, src) for src in self.index.apiserver().sources
                   for ip in (src.addresses or (_first_address(src.cidr),))]
        for target in calls.targets:
            for pod in self.index.pods_of(target.workload):
                if pod.host_network or not pod.ips or pod.phase in ("Succeeded", "Failed"):
                    continue
                view = pod_view(pod)
                for ip, _ in sources:
                    for entry in evaluator.matched_entries(ip, view, target.protocol,
                                                           target.port):
                        if entry[1] != "ingress":
                            continue
                        peer = Peer(APISERVER, ip=ip)
                        self.judge.seen[entry].setdefault((peer, target.protocol, target.port),
                                                          [0, 0])
                        self.declared[entry].add(target.call.display())

    # ------------------------------------------------------------ narrow

    def narrow(self, policy: NetworkPolicy, direction: str, rule: int, raw_rule: dict,
               used: set[tuple[int | None, int | None]]) -> Narrowing | None:
        """The rule cut to its observed use; None when every used peer and port is
        already exact (removing unused items and splitting is ``propose``'s)."""
        entries = sorted(used, key=lambda e: (-1 if e[0] is None else e[0],
                                               -1 if e[1] is None else e[1]))
        peers, ports, seen = self.judge.rule(policy, direction, rule, entries)
        if not any(b.broad for b in peers.values()) and not any(b.broad for b in ports.values()):
            return None
        key = PEERS_KEY[direction]
        parsed_rule = (policy.ingress if direction == "ingress" else policy.egress)[rule]
        raw_peers = raw_rule.get(key) or []
        raw_ports = raw_rule.get("ports") or []
        pairs: dict[str, dict[str, dict]] = defaultdict(dict)  # peer json -> port json -> port
        elements: dict[str, dict] = {}
        after_peers: dict[int | None, set[str]] = defaultdict(set)
        after_ports: dict[int | None, set[str]] = defaultdict(set)
        connections, last = 0, 0
        removes: list[str] = []
        for (j, k), s in seen.items():
            for (other, proto, number), (count, last_seen) in sorted(
                    s.items(), key=lambda x: (x[0][0].display(), x[0][1], x[0][2] or 0)):
                connections += count
                last = max(last, last_seen)
                if peers[j].broad:
                    el, problem = self._element(other, policy.namespace,
                                                None if j is None else raw_peers[j])
                    if el is None:
                        return Narrowing(policy.id, direction, rule, raw_rule, (), (),
                                         "", problem)
                    after_peers[j].add(other.display())
                else:
                    el = raw_peers[j]  # type: ignore[index]
                if ports[k].broad:
                    if number is None:
                        return Narrowing(policy.id, direction, rule, raw_rule, (), (), "",
                                         f"a {proto} connection without a port used it")
                    items = [{"protocol": proto, "port": number}]
                    after_ports[k].add(f"{proto}/{number}")
                else:
                    items = [raw_ports[k]]  # type: ignore[index]
                twin = TWIN.get(proto)
                if number is not None and twin and self._is_dns(other, proto, number) \
                        and (twin, number) in self.dns_ports:
                    more = self._twin(parsed_rule, raw_ports, ports, twin, number)
                    items += more
                    if ports[k].broad and more:
                        after_ports[k].add(f"{twin}/{number}")
                pk = _dumps(el)
                elements[pk] = el
                for item in items:
                    pairs[pk][_dumps(item)] = item
        for j, b in sorted(peers.items(), key=lambda x: -1 if x[0] is None else x[0]):
            if b.broad:
                removes.append(f"{key} {b.text} → "
                               + (", ".join(sorted(after_peers[j])) + " only"
                                  if after_peers[j] else "nothing"))
        for k, b in sorted(ports.items(), key=lambda x: -1 if x[0] is None else x[0]):
            if b.broad:
                removes.append(f"{b.text} → {', '.join(sorted(after_ports[k])) or 'nothing'}")
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for pk in sorted(pairs):
            groups[tuple(sorted(pairs[pk]))].append(pk)
        after = []
        for port_keys, peer_keys in sorted(groups.items(), key=lambda g: g[1][0]):
            ports_of = pairs[peer_keys[0]]
            after.append({key: [elements[pk] for pk in peer_keys],
                          "ports": sorted((ports_of[x] for x in port_keys),
                                          key=lambda p: (str(p.get("protocol", "TCP")),
                                                         str(p.get("port"))))})
        evidence = (f"{connections:,} connection(s) in the window, last seen {when(last)}"
                    if connections else "no connection in the window")
        declared = sorted({call for j, k in seen for call in
                           self.declared.get((policy.id, direction, rule, j, k), ())})
        if declared:
            evidence += "; kept for the API server's declared calls: " + ", ".join(declared)
        return Narrowing(policy.id, direction, rule, raw_rule, tuple(after), tuple(removes),
                         evidence)

    @staticmethod
    def _twin(parsed_rule, raw_ports: list, ports: dict, twin: str, number: int) -> list[dict]:
        """The ports entry that lets DNS retry over the other protocol, when the rule
        admitted it: as written when it is exact, else the port alone."""
        if not parsed_rule.ports:
            return [{"protocol": twin, "port": number}]
        for k2, p in enumerate(parsed_rule.ports):
            if _admits(p, twin, number):
                exact = k2 in ports and not ports[k2].broad or k2 not in ports and (
                    isinstance(p.port, int) and p.end_port in (None, p.port))
                return [raw_ports[k2] if exact else {"protocol": twin, "port": number}]
        return []

    def _is_dns(self, other: Peer, proto: str, number: int) -> bool:
        if (proto, number) not in self.dns_ports:
            return False
        if other.kind == WORKLOAD:
            return (other.namespace, other.workload_kind, other.workload_name) in self.dns_workloads
        return other.ip in self.dns_ips

    def _element(self, other: Peer, policy_ns: str, original: dict | None
                 ) -> tuple[dict | None, str | None]:
        if other.kind == WORKLOAD:
            ref = WorkloadRef(other.namespace or "", other.workload_kind or "",
                              other.workload_name or "")
            # the selector generate writes for the workload (synthesis asks the same)
            choice = self.index.selector_for(ref)
            if choice.is_empty():
                return None, f"no label selects {other.display()}'s pods alone"
            sel = m.PodSelector(tuple(choice.match_labels), tuple(choice.match_expressions))
            el = peer_element(m.PolicyPeer(m.WORKLOAD, namespace=other.namespace, workload=ref,
                                           selector=sel), policy_ns)
            el["podSelector"] = _merge_selector(el["podSelector"],
                                                (original or {}).get("podSelector"))
            return el, None
        if not other.ip:
            return None, f"{other.display()} has no address"
        source = self.index.apiserver().source_of(other.ip) if other.kind == APISERVER else None
        if source is not None and _within(source.cidr, original):
            # a --apiserver-cidr range: the API server may call from any address in it
            return {"ipBlock": {"cidr": source.cidr}}, None
        return {"ipBlock": {"cidr": _host_cidr(other.ip)}}, None
