"""The generated policies together with the cluster's existing ones: what is in force
after apply.

NetworkPolicies are additive: applying flowpol's policies deletes nothing, and what an
existing policy allows stays allowed (one with the name of a generated policy, flowpol's
own from an earlier run, is replaced by it instead). ``check_union`` reads the snapshot's
NetworkPolicies (``parse_each``: one that does not parse is reported, not fatal), lists
those that select pods in scope, replays the observed traffic against generated +
existing (the effective set), and finds what the existing ones let through beyond the
generated rules: per existing rule entry (peer element, port entry) and workload it
applies to, the concrete peers it admits that flowpol's rules do not.

"Beyond" is decided by the evaluator on representative endpoints, not by comparing
selectors: each in-scope workload an existing policy selects (one pod per distinct
label set and named ports), against candidate peers - one pod per workload of the
snapshot, every node address, the API server's addresses, the observed outside
addresses, an address inside each ipBlock of the existing policies and one outside
address nobody names (198.51.100.1, a documentation range) - on the ports the existing
rule names (a named port resolved on the destination pod; a rule for every port: the
destination's container ports and 65535, which nothing listens on here). A probe is
beyond when an existing entry matches it on its side and the generated policies alone
deny that side. Candidates stand for what they represent, so the listing is of
examples: peers of the same kind behave the same.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from generator.inventory.index import InventoryIndex
from generator.inventory.model import Pod
from generator.resolve.edges import Connection, PodView
from generator.resolve.identity import pod_view
from generator.verify.check import CheckResult, check_policies, verification_dict
from generator.verify.combined import CombinedEvaluator, make_evaluator
from generator.verify.evaluator import Evaluator
from generator.verify.policy import EGRESS, INGRESS, NetworkPolicy, PolicyPort, parse_each
from generator.verify.policyset import PolicyKinds
from generator.verify.selectors import matches
from generator.verify.usage import ANY_PEER, describe_peer, describe_port

OUTSIDE_PROBE = "198.51.100.1"  # RFC 5737 TEST-NET-2: stands for "any other address"
UNUSED_PORT = 65535
MAX_REACHES = 12  # concrete peers listed per entry and workload; the count says the rest
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, slots=True)
class ExistingInScope:
    policy: str  # "ns/name"
    policy_types: tuple[str, ...]
    selects: tuple[str, ...]  # in-scope workloads whose pods it selects
    replaced: bool = False  # a generated NetworkPolicy has its name: apply replaces it


@dataclass(frozen=True, slots=True)
class ExtraReach:
    """What one existing rule entry lets through, for one workload it applies to, that
    the generated policies do not."""

    policy: str  # "ns/name"
    rule: str  # "ingress[0]"
    peer: str  # the entry's from/to element, described
    port: str  # the entry's ports element, described
    workload: str  # the workload the policy selects
    reaches: tuple[str, ...]  # e.g. "shop/Deployment/reports on TCP/8080"
    more: int = 0  # further peers not listed

    @property
    def direction(self) -> str:
        return self.rule.split("[", 1)[0]

    def line(self) -> str:
        towards = "from" if self.direction == "ingress" else "to"
        listed = "; ".join(self.reaches) + (f"; and {self.more} more" if self.more else "")
        return (f"{self.policy} {self.rule} ({towards} {self.peer}, {self.port}) lets "
                f"{self.workload} {'be reached by' if self.direction == 'ingress' else 'reach'} "
                f"{listed}")


@dataclass(frozen=True, slots=True)
class UnionCheck:
    existing: tuple[ExistingInScope, ...]
    unreadable: tuple[str, ...]  # existing policies that could not be read, and why
    effective: CheckResult | None  # observed traffic against generated + existing; None: none exist
    extra: tuple[ExtraReach, ...]
    total_existing: int = 0  # every readable existing policy of the snapshot

    @property
    def denied(self) -> int:
        return self.effective.denied if self.effective is not None else 0


@dataclass(frozen=True, slots=True)
class _Rep:
    """A representative endpoint: a pod (PodView, with its container ports) or an
    address; ``text`` is how the listing names what it stands for."""

    end: PodView | str
    text: str
    pod: Pod | None = None


def _pod_reps(index: InventoryIndex, namespaces: set[str] | None = None) -> dict[str, list[_Rep]]:
    """Workload display -> one representative pod per distinct label set and named ports;
    for a workload without a running pod (scaled to zero, a CronJob between runs), a pod
    as its controller would make it (its template's labels)."""
    out: dict[str, list[_Rep]] = {}
    for ref in index.workloads():
        if namespaces is not None and ref.namespace not in namespaces:
            continue
        pods = index.pods_of(ref)
        if pods and all(p.host_network for p in pods):
            continue
        seen: set[tuple] = set()
        for pod in pods:
            if pod.host_network or not pod.ips or pod.phase in ("Succeeded", "Failed"):
                continue
            view = pod_view(pod)
            key = (view.labels, view.named_ports, frozenset(pod.ports))
            if key not in seen:
                seen.add(key)
                out.setdefault(ref.display(), []).append(_Rep(view, ref.display(), pod))
        labels = index.template_labels(ref)
        if not seen and labels:
            out[ref.display()] = [_Rep(PodView(ref.namespace, f"(a pod of {ref.display()})",
                                               labels), ref.display())]
    return out


def _inside(cidr: str, excepts: tuple[str, ...]) -> str | None:
    """An address of ``cidr`` that none of ``excepts`` holds."""
    net = ipaddress.ip_network(cidr)
    holes = [ipaddress.ip_network(e) for e in excepts]
    first = net.network_address if net.num_addresses <= 2 else net.network_address + 1
    for i in range(64):
        if i >= net.num_addresses:
            break
        addr = first + i
        if addr in net and not any(addr in h for h in holes):
            return str(addr)
    return None


def _address_reps(index: InventoryIndex, existing: Iterable[NetworkPolicy],
                  external: Iterable[str]) -> list[_Rep]:
    found: dict[str, str] = {}
    for node in index.inventory.nodes:
        for ip in node.addresses:
            found.setdefault(ip, f"node {node.name} ({ip})")
    for source in index.apiserver().sources:
        ip = source.addresses[0] if source.addresses else _inside(source.cidr, ())
        if ip:
            found.setdefault(ip, source.display())
    for ip in external:
        found.setdefault(ip, f"external {ip}")
    for policy in existing:
        for rule in policy.ingress + policy.egress:
            for peer in rule.peers:
                if peer.ip_block is not None:
                    ip = _inside(peer.ip_block.cidr, peer.ip_block.excepts)
                    if ip:
                        found.setdefault(ip, f"addresses in {peer.ip_block.describe()} ({ip})")
    found.setdefault(OUTSIDE_PROBE, f"any other address ({OUTSIDE_PROBE})")
    return [_Rep(ip, text) for ip, text in found.items()]


def _listening(rep: _Rep, protocol: str) -> list[int]:
    return sorted({p.port for p in rep.pod.ports if p.protocol == protocol}) if rep.pod else []


def _entry_probes(entry: PolicyPort | None, dst: _Rep) -> list[tuple[str, int]]:
    """(protocol, port) probes of one ports entry (None: a rule without ports, every
    port of every protocol) towards ``dst``."""
    probes: set[tuple[str, int]] = set()
    for e in ((entry,) if entry is not None else tuple(PolicyPort(p) for p in PROTOCOLS)):
        proto = e.protocol
        if e.port is None:
            probes.update((proto, p) for p in _listening(dst, proto))
            probes.add((proto, UNUSED_PORT))
        elif isinstance(e.port, str):
            if isinstance(dst.end, PodView):  # a named port resolves on the destination pod
                number = next((n for name, pr, n in dst.end.named_ports
                               if name == e.port and pr == proto), None)
                if number is not None:
                    probes.add((proto, number))
        else:
            probes.add((proto, e.port))
            if e.end_port is not None:
                probes.add((proto, e.end_port))
                probes.update((proto, p) for p in _listening(dst, proto)
                              if e.port <= p <= e.end_port)
    return sorted(probes)


def _ports_text(ports: set[tuple[str, int]]) -> str:
    """``TCP/9090`` ..., and the unused probe port as "any other TCP port"."""
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    named = [f"{proto}/{port}" for proto, port in sorted(ports, key=lambda x: (order[x[0]], x[1]))
             if port != UNUSED_PORT]
    other = [proto for proto in PROTOCOLS if (proto, UNUSED_PORT) in ports]
    if other:
        named.append(f"any other {'/'.join(other)} port" if named else
                     f"any {'/'.join(other)} port")
    return ", ".join(named)


def check_union(connections: Iterable[Connection], generated: PolicyKinds,
                generated_evaluator: Evaluator | CombinedEvaluator, index: InventoryIndex,
                scope: Iterable[str], external: Iterable[str] = (),
                generated_check: CheckResult | None = None) -> UnionCheck:
    """``generated``: the policies written, of any dialect; ``generated_evaluator``: built
    for them and ``generated_check``: their verification (shared with it)."""
    existing, errors = parse_each(index.inventory.network_policies, "the snapshot")
    unreadable = tuple(f"{e}; it is not part of this check" for e in errors)
    if not existing:
        return UnionCheck((), unreadable, None, ())
    # `kubectl apply` of a generated policy replaces an existing one of the same name
    # (flowpol's own from an earlier run): the rest stays in force beside them
    replaced = {p.id for p in generated.network}
    kept = tuple(p for p in existing if p.id not in replaced)
    scope = set(scope)
    connections = tuple(connections)
    network = generated.network + kept
    if not kept and generated_check is not None:
        effective = generated_check  # every existing one is replaced: nothing is added
    else:
        effective = check_policies(
            connections, network + generated.cilium + generated.cluster,  # type: ignore[arg-type]
            index, make_evaluator(network, index.inventory,  # type: ignore[arg-type]
                                  generated.cilium, generated.cluster))
    own = _pod_reps(index, scope)
    in_scope: list[ExistingInScope] = []
    selected: list[tuple[NetworkPolicy, list[_Rep]]] = []
    for policy in existing:
        if policy.namespace not in scope:
            continue
        reps = [r for reps in own.values() for r in reps
                if isinstance(r.end, PodView) and r.end.namespace == policy.namespace
                and matches(policy.pod_selector, dict(r.end.labels))]
        if reps:
            in_scope.append(ExistingInScope(policy.id, policy.policy_types,
                                            tuple(sorted({r.text for r in reps})),
                                            policy.id in replaced))
            if policy.id not in replaced:
                selected.append((policy, reps))
    if not selected:
        return UnionCheck(tuple(in_scope), unreadable, effective, (), len(existing))
    existing_evaluator = Evaluator.from_inventory(kept, index.inventory)
    candidates = [r for reps in _pod_reps(index).values() for r in reps]
    candidates += _address_reps(index, kept, external)
    ends = tuple(c.end for c in candidates)
    # Per rule entry: the candidates its peer element admits (once), then per workload
    # the policy selects, each admitted candidate on the entry's ports, where the
    # generated policies alone deny that side.
    found: dict[tuple, dict[str, set[tuple[str, int]]]] = {}
    for policy, reps in selected:
        for direction, kind in (("ingress", INGRESS), ("egress", EGRESS)):
            if kind not in policy.policy_types:
                continue
            for i, rule in enumerate(policy.ingress if direction == "ingress" else policy.egress):
                for j in (range(len(rule.peers)) if rule.peers else (None,)):
                    admitted = [candidates[n] for n in existing_evaluator.admitting(
                        policy.id, direction, i, j, ends)]
                    entries = list(enumerate(rule.ports)) if rule.ports else [(None, None)]
                    for rep in reps:
                        for other in admitted:
                            src, dst = (other, rep) if direction == "ingress" else (rep, other)
                            for k, entry in entries:
                                for proto, port in _entry_probes(entry, dst):
                                    v = generated_evaluator.check(src.end, dst.end, proto, port)
                                    if (v.ingress if direction == "ingress" else v.egress).allowed:
                                        continue
                                    found.setdefault(((policy.id, direction, i, j, k), rep.text),
                                                     {}).setdefault(other.text, set()).add(
                                                         (proto, port))
    extra = []
    by_id = {p.id: p for p in existing}
    for ((pid, direction, rule_index, peer_index, port_index), workload), reaches in \
            sorted(found.items(), key=lambda kv: (kv[0][0][0], kv[0][0][1], kv[0][0][2],
                                                   kv[0][0][3] or -1, kv[0][0][4] or -1,
                                                   kv[0][1])):
        policy = by_id[pid]
        rule = (policy.ingress if direction == "ingress" else policy.egress)[rule_index]
        peer = ANY_PEER if peer_index is None else describe_peer(rule.peers[peer_index],
                                                                 policy.namespace)
        port = "every port" if port_index is None else describe_port(rule.ports[port_index])
        listed = [f"{peer_text} on {_ports_text(ports)}"
                  for peer_text, ports in sorted(reaches.items())]
        extra.append(ExtraReach(pid, f"{direction}[{rule_index}]", peer, port, workload,
                                tuple(listed[:MAX_REACHES]), max(0, len(listed) - MAX_REACHES)))
    return UnionCheck(tuple(in_scope), unreadable, effective, tuple(extra), len(existing))


def union_dict(u: UnionCheck) -> dict:
    return {
        "note": ("NetworkPolicies are additive: flowpol deletes and rewrites none of the "
                 "existing ones, and what they allow stays allowed after apply; "
                 "`flowpol diff --cluster` proposes how to tighten them"),
        "existing_policies": u.total_existing,
        "selecting_pods_in_scope": [{"policy": e.policy, "policy_types": list(e.policy_types),
                                     "selects": list(e.selects), "replaced": e.replaced}
                                    for e in u.existing],
        "unreadable": list(u.unreadable),
        # counted as the generated set's verification is (report.json "verification")
        "effective": None if u.effective is None else verification_dict(u.effective),
        "beyond_generated": [{"policy": x.policy, "rule": x.rule, "peer": x.peer,
                              "port": x.port, "workload": x.workload,
                              "reaches": list(x.reaches), "more": x.more} for x in u.extra],
    }
