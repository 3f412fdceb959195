"""Isolation where it is missing: a workload whose observed traffic flows through a side
no policy isolates (its pods' egress, or ingress) gets a new policy for that side,
from the evidence, with DNS, as ``generate`` writes it (``synthesize``).

Only in namespaces the existing set has policies in (the authors manage those), only for
a side with observed traffic in the window, only when none of the workload's pods is
isolated for that side already (a new policy would add to what isolates those) and its
podSelector selects no other workload's pod. The new policy must allow every observed
connection through that side (checked with the evaluator, with the existing set); when
it would not (a peer no label singles out), it is not proposed. The same evidence rules
as for removal apply: without enough, it is listed and not added.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from generator.inventory.index import InventoryIndex
from generator.output.yamlout import Commented, strip_comments
from generator.resolve.edges import WORKLOAD, Connection, Peer
from generator.resolve.identity import aggregate_edges, pod_view
from generator.review.evidence import is_dns_traffic, workload_ref
from generator.synthesize.render.kubernetes import MANAGED_BY
from generator.synthesize.synthesis import SynthesisOptions, synthesize
from generator.verify.evaluator import Evaluator
from generator.verify.policy import API_VERSION, EGRESS, INGRESS, NetworkPolicy, parse_policy
from generator.verify.selectors import matches, parse_label_selector

KIND = {"ingress": INGRESS, "egress": EGRESS}
NOT_ISOLATED_NOTE = "added by flowpol diff: {workload} was not isolated for {direction}"


@dataclass(frozen=True, slots=True)
class Isolation:
    """One workload's side that no policy isolated though traffic went through it."""

    workload: str  # ns/Kind/name
    namespace: str
    direction: str
    connections: int  # observed through that side in the window
    peers: tuple[str, ...]  # the observed peers, readable
    policy: dict | None  # the proposed policy (rules may be Commented); None: none written
    problem: str | None  # why it is not added (not enough evidence, or it cannot be)

    @property
    def name(self) -> str | None:
        return None if self.policy is None else self.policy["metadata"]["name"]

    @property
    def applied(self) -> bool:
        return self.policy is not None and self.problem is None


def _open_sides(connections: list[Connection], evaluator: Evaluator, scope: set[str]
                ) -> dict[tuple[Peer, str], list[Connection]]:
    out: dict[tuple[Peer, str], list[Connection]] = defaultdict(list)
    cache: dict = {}
    for c in connections:
        for direction, peer, pod in (("egress", c.src, c.src_pod), ("ingress", c.dst, c.dst_pod)):
            if peer.kind != WORKLOAD or peer.namespace not in scope or pod is None \
                    or pod.host_network:
                continue
            sel = cache.get(pod)
            if sel is None:
                sel = cache[pod] = evaluator.selecting(pod)
            if not sel[0 if direction == "ingress" else 1]:
                out[(peer, direction)].append(c)
    return out


class _Isolator:
    def __init__(self, index: InventoryIndex, evaluator: Evaluator,
                 existing: tuple[NetworkPolicy, ...], taken: set[str]):
        self.index = index
        self.evaluator = evaluator
        self.existing = existing
        self.taken = taken

    def side(self, w: Peer, direction: str, conns: list[Connection],
             evidence_problem) -> Isolation:
        ref = workload_ref(w)
        count = sum(c.count for c in conns)
        others = [c.dst if direction == "egress" else c.src for c in conns]
        peers = tuple(sorted({p.display() if p.kind == WORKLOAD else (p.ip or p.display())
                              for p in others}))

        def result(policy: dict | None, problem: str | None) -> Isolation:
            return Isolation(w.display(), w.namespace or "", direction, count, peers, policy,
                             problem)

        idx = 0 if direction == "ingress" else 1
        isolated = [p.name for p in self.index.pods_of(ref) if not p.host_network
                    and self.evaluator.selecting(pod_view(p))[idx]]
        if isolated:
            return result(None, f"some of its pods are isolated for {KIND[direction]} already "
                                f"({', '.join(sorted(isolated)[:3])}); add rules by hand")
        edges = aggregate_edges(conns)
        # default_deny=True: DNS comes as the namespace's allow-DNS rule, taken into the
        # workload's own policy below; declared=False: only what was observed.
        synth = synthesize(edges, self.index, SynthesisOptions(
            default_deny=True, namespaces=(w.namespace or "",), declared=False))
        doc = next((d for d in synth.policies
                    if d.workload == (w.workload_kind, w.workload_name)
                    and d.namespace == w.namespace), None)
        if doc is None:
            return result(None, "no label selects its pods alone")
        rules = list(doc.manifest["spec"].get(direction) or [])
        if direction == "egress" and any(is_dns_traffic(e, self.index) for e in edges):
            rules = [r for d in synth.policies if d.workload is None and d.namespace == w.namespace
                     for r in d.manifest["spec"].get("egress") or []] + rules
        selector = doc.manifest["spec"]["podSelector"]
        parsed_sel = parse_label_selector(selector, "spec.podSelector")
        also = sorted(f"{p.namespace}/{p.name}" for p in self.index.inventory.pods
                      if p.namespace == w.namespace and not p.host_network
                      and matches(parsed_sel, dict(p.labels))
                      and self.index.workload_of(p) != ref)
        if also:
            return result(None, f"its podSelector would also select {', '.join(also[:3])}")
        policy = self._policy(w, direction, selector, rules, doc.name)
        denied = self._denied(policy, conns)
        if denied:
            return result(None, f"the rules generate writes would deny {denied} of its observed "
                                "connection(s) (" + ("; ".join(sorted({why for _, why in
                                                                       synth.skipped_edges}))
                                                     or "a peer no rule admits") + ")")
        return result(policy, evidence_problem(count))

    def _policy(self, w: Peer, direction: str, selector: dict, rules: list, base: str) -> dict:
        name, n = base, 1
        while f"{w.namespace}/{name}" in self.taken:
            n += 1
            name = f"{base}-{direction}" if n == 2 else f"{base}-{direction}-{n}"
        self.taken.add(f"{w.namespace}/{name}")
        note = NOT_ISOLATED_NOTE.format(workload=w.display(), direction=direction)
        marked = [Commented(r.value, (note,) + r.comments) if isinstance(r, Commented)
                  else Commented(r, (note,)) for r in rules]
        return {"apiVersion": API_VERSION, "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": w.namespace, "labels": dict(MANAGED_BY),
                             "annotations": {
                                 "flowpol.dev/workload": f"{w.workload_kind}/{w.workload_name}",
                                 "flowpol.dev/purpose": (
                                     f"{note}: its observed {direction} traffic is allowed, "
                                     "nothing else")}},
                "spec": {"podSelector": selector, "policyTypes": [KIND[direction]],
                         direction: marked}}

    def _denied(self, policy: dict, conns: list[Connection]) -> int:
        new = parse_policy(strip_comments(policy), "proposed")
        ev = Evaluator.from_inventory(self.existing + (new,), self.index.inventory)
        denied = 0
        for c in conns:
            src = c.src_pod if c.src_pod is not None else c.src_ip
            dst = c.dst_pod if c.dst_pod is not None else c.dst_ip
            if not ev.check(src, dst, c.protocol, c.port).allowed:
                denied += c.count
        return denied


def missing_isolation(existing: tuple[NetworkPolicy, ...], index: InventoryIndex,
                      evaluator: Evaluator, connections: list[Connection], taken: set[str],
                      evidence_problem) -> tuple[Isolation, ...]:
    """Every open side with observed traffic in the namespaces ``existing`` covers.
    ``taken``: policy ids in use (new names are added to it); ``evidence_problem``:
    connection count -> why that is not enough evidence, or None."""
    scope = {p.namespace for p in existing}
    isolator = _Isolator(index, evaluator, existing, taken)
    sides = _open_sides(connections, evaluator, scope)
    return tuple(isolator.side(w, direction, sides[(w, direction)], evidence_problem)
                 for w, direction in sorted(sides, key=lambda k: (k[0].display(), k[1])))
