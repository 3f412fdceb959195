"""Existing policies against observed traffic: what they deny, what went unused, and a
tightened set.

(a) observed connections the existing set denies (``generator.verify.check``);
(b) rules, peer elements and port entries no observed connection used in the window,
    each with when it was last seen in the whole recording, if ever
    (``generator.verify.usage``);
(c) a proposal, per existing policy a list of edits:
    - an unused rule is removed; an unused peer element or port entry of a used rule
      is removed; when the used (peer, port) combinations of a rule are not a
      rectangle, the rule is split into one rule per group of peers using the same
      ports (each a subset of the original), in the original's place;
    - removal needs evidence: the window must cover --min-observation and the pods the
      policy selects must appear in at least --min-flows observed connections, else the
      items are kept and marked "not enough evidence";
    - rules that cannot take effect (their direction is not in an explicit
      policyTypes) are removed whatever the evidence: that changes nothing;
    - a policy is never deleted (that would un-isolate its pods), and when its last
      egress rule goes while policyTypes was defaulted, policyTypes is written out so
      Egress isolation stays;
    - a used rule that admits more than its use (broad selectors, wide ipBlocks, no
      from/to, no ports, ranges) is replaced in place by the observed peers and ports
      (``narrow``); the calls the cluster declares the API server makes count as use;
    - a workload side no policy isolates, with observed traffic, gets a policy for that
      side from the evidence (``isolate``);
    - observed connections the existing set denies get rules (exactly those workloads
      and ports, built by ``synthesize``), appended to the existing policy that selects
      exactly that workload, or in a new policy when none does - and only when the new
      policy isolates nothing that was not isolated already.
So the proposal allows no connection the existing set denies, except the observed ones
it had to add. Names, selectors, rule order and the authors' files are kept.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from generator.verify.check import CheckResult, check_policies
from generator.resolve.edges import WORKLOAD, Connection, Peer
from generator.inventory.index import InventoryIndex
from generator.pipeline import ObservedTraffic
from generator.resolve.identity import pod_view, aggregate_edges
from generator.review.evidence import (
    Span, Thresholds, duration_text, is_dns_traffic, recording_span, when, workload_ref,
)
from generator.synthesize.render.kubernetes import MANAGED_BY
from generator.synthesize.synthesis import SynthesisOptions, synthesize
from generator.tighten.existing import ExistingPolicy, ExistingSet
from generator.tighten.isolate import Isolation, missing_isolation
from generator.tighten.narrow import Narrower, Narrowing
from generator.tighten.yamledit import (
    APPEND, REMOVE, REMOVE_KEY, REPLACE, SET, Edit, apply_edits,
)
from generator.verify.evaluator import Evaluator
from generator.verify.policy import API_VERSION, EGRESS, INGRESS, NetworkPolicy, parse_policy
from generator.verify.selectors import matches, parse_label_selector
from generator.verify.usage import RuleUse, rule_usage
from generator.output.yamlout import Commented, strip_comments

# What happens to an unused item.
REMOVED = "remove"
NOT_ENOUGH_EVIDENCE = "not enough evidence"
NO_EFFECT = "no effect"
KEPT_DNS = "kept: DNS"
KEPT_DECLARED = "kept: declared"
DECLARED_USE = "the cluster declares that the API server calls it: "
DNS_TWIN = ("DNS over the other protocol is in use: resolvers answer over UDP and retry over TCP "
            "when the answer is too large, so both stay")

KIND = {"ingress": INGRESS, "egress": EGRESS}
PEERS_KEY = {"ingress": "from", "egress": "to"}
ADDED_NOTE = "added by flowpol diff: observed connection(s) the existing policies deny"


@dataclass(frozen=True, slots=True)
class Unused:
    """(b): an unused rule, peer element, port entry or (peer, port) combination."""

    policy: str
    direction: str
    rule: int
    scope: str  # "rule", "peer", "port" or "combination"
    peer: int | None
    port: int | None
    what: str
    last_seen: int | None  # in the whole recording; None: never
    status: str  # REMOVED, NOT_ENOUGH_EVIDENCE, NO_EFFECT
    reason: str

    @property
    def ref(self) -> str:
        r = f"{self.direction}[{self.rule}]"
        if self.peer is not None:
            r += f".{PEERS_KEY[self.direction]}[{self.peer}]"
        if self.port is not None:
            r += f".ports[{self.port}]"
        return r


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # remove-rule, remove-peer, remove-port, split-rule, add-rule, add-policy,
    # set-policy-types, remove-inert, keep
    ref: str
    what: str
    why: str


@dataclass(frozen=True, slots=True)
class Addition:
    """Rules for observed connections the existing set denies, at one workload's end."""

    workload: str  # ns/Kind/name
    direction: str
    connections: int
    rules: tuple[Commented, ...]
    host: str | None  # the policy they go into (existing or new); None: not added
    problem: str | None = None  # why they could not be added


@dataclass(frozen=True, slots=True)
class PolicyProposal:
    id: str
    file: str
    existing: ExistingPolicy | None  # None: a new policy
    proposed: dict  # the object after the edits (new rules wrapped in Commented)
    edits: tuple[Edit, ...]
    changes: tuple[Change, ...]
    evidence_connections: int
    evidence_problem: str | None  # why unused items are kept, when they are
    # used rules broader than their use: applied when the evidence suffices, else listed
    narrowings: tuple[Narrowing, ...] = ()

    @property
    def changed(self) -> bool:
        return self.existing is None or bool(self.edits)


@dataclass(frozen=True, slots=True)
class Proposal:
    policies: tuple[PolicyProposal, ...]
    unused: tuple[Unused, ...]
    denied: CheckResult  # the existing set against every observed connection
    additions: tuple[Addition, ...]
    span: Span | None
    window_start: int | None  # connections seen last before it do not count as use
    coverage: int  # ns of recording inside the window
    thresholds: Thresholds
    # open sides with observed traffic: a new policy each (applied), or listed
    isolations: tuple[Isolation, ...] = ()

    def parsed(self) -> tuple[NetworkPolicy, ...]:
        """The proposed policies, parsed (for verification)."""
        out = []
        for p in self.policies:
            obj = strip_comments(p.proposed)
            obj.setdefault("apiVersion", API_VERSION)  # items of a NetworkPolicyList
            obj.setdefault("kind", "NetworkPolicy")
            out.append(parse_policy(obj, p.file))
        return tuple(out)


# ---------------------------------------------------------------- evidence


def _policy_flows(connections: list[Connection], evaluator: Evaluator) -> dict[str, int]:
    """Observed connections per policy with a pod it selects at either end."""
    counts: dict[str, int] = defaultdict(int)
    cache: dict = {}
    for c in connections:
        ids: set[str] = set()
        for pod in (c.src_pod, c.dst_pod):
            if pod is None or pod.host_network:
                continue
            sel = cache.get(pod)
            if sel is None:
                sel = cache[pod] = evaluator.selecting(pod)
            ids.update(sel[0])
            ids.update(sel[1])
        for pid in ids:
            counts[pid] += c.count
    return counts


def _evidence_problem(coverage: int, flows: int, t: Thresholds, windowed: bool) -> str | None:
    problems = []
    if coverage < t.min_observation_ns:
        where = "the window covers" if windowed else "the recording covers"
        problems.append(f"{where} {duration_text(coverage)}, less than --min-observation "
                        f"{duration_text(t.min_observation_ns)}")
    if flows < t.min_flows:
        problems.append("no pod it selects was seen in any connection" if flows == 0 else
                        f"the pods it selects were seen in {flows} connection(s), fewer than "
                        f"--min-flows {t.min_flows}")
    return "; ".join(problems) or None


# ---------------------------------------------------------------- unused items


def _last(ever: dict[tuple, int], i: int, pairs) -> int | None:
    seen = [ever[(i, j, k)] for j, k in pairs if (i, j, k) in ever]
    return max(seen) if seen else None


def _seen_text(last: int | None) -> str:
    return f"last seen {when(last)}" if last is not None else "never seen in the recording"


def _split_rule(raw_rule: dict, direction: str, used: set[tuple[int, int]]) -> list[dict]:
    """One rule per group of peers that used the same ports: every combination a new
    rule allows was used, and each is a subset of the original."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for j in sorted({j for j, _ in used}):
        groups.setdefault(tuple(sorted(k for jj, k in used if jj == j)), []).append(j)
    key = PEERS_KEY[direction]
    out = []
    for ports, peers in groups.items():
        rule = {}
        for k, v in raw_rule.items():
            if k == key:
                rule[k] = [v[j] for j in peers]
            elif k == "ports":
                rule[k] = [v[p] for p in ports]
            else:
                rule[k] = v
        out.append(rule)
    return out


class _PolicyWork:
    """Edits and changes of one existing policy, built direction by direction."""

    def __init__(self, ep: ExistingPolicy, removable: bool, problem: str | None,
                 dns_ports: frozenset[tuple[str, int]] = frozenset(),
                 narrower: Narrower | None = None):
        self.ep = ep
        self.narrower = narrower
        self.narrowings: list[Narrowing] = []
        self.removable = removable
        self.problem = problem
        self.dns_ports = dns_ports
        self.edits: list[Edit] = []
        self.changes: list[Change] = []
        self.unused: list[Unused] = []

    def direction(self, direction: str, uses: list[RuleUse], ever: dict[tuple, int],
                  added: list[Commented]) -> None:
        p = self.ep.policy
        kind = KIND[direction]
        rules = p.ingress if direction == "ingress" else p.egress
        if not rules and not added:
            return
        if rules and kind not in p.policy_types:
            why = (f"spec.policyTypes does not list {kind}, so the API server ignores "
                   f"spec.{direction}")
            self.edits.append(Edit(REMOVE_KEY, ("spec", direction)))
            self.changes.append(Change("remove-inert", direction,
                                       f"{len(rules)} {direction} rule(s)", f"no effect: {why}"))
            for r in uses:
                self.unused.append(Unused(p.id, direction, r.rule, "rule", None, None, r.allows,
                                          _last(ever, r.rule, [(e.peer, e.port) for e in r.entries]),
                                          NO_EFFECT, why))
            return
        raw_rules = self.ep.raw["spec"].get(direction) or []
        removals: list[Edit] = []
        kept = len(added)
        twins = self._dns_twins(rules, uses)
        for r in uses:
            kept += self._rule(direction, r, raw_rules[r.rule], ever, removals,
                               {(j, k) for i, j, k in twins if i == r.rule})
        if self.removable and rules and kept == 0:
            # Every rule goes: drop the key, and keep Egress isolation if it was defaulted.
            removals = [Edit(REMOVE_KEY, ("spec", direction))]
            if direction == "egress" and not p.policy_types_explicit:
                removals.append(Edit(SET, ("spec", "policyTypes"), (list(p.policy_types),)))
                self.changes.append(Change(
                    "set-policy-types", "policyTypes", ", ".join(p.policy_types),
                    "policyTypes was defaulted from the egress rules; without them Egress would "
                    "drop out and open the pods' egress, so it is written out"))
        self.edits += removals
        if added:
            self.edits.append(Edit(APPEND, ("spec", direction), tuple(added)))

    def _dns_twins(self, rules, uses: list[RuleUse]) -> set[tuple]:
        """Unused DNS entries whose peer is used for DNS over the other protocol."""
        def dns(i: int, k: int | None) -> int | None:
            port = rules[i].ports[k] if k is not None else None
            if port is not None and isinstance(port.port, int) \
                    and (port.protocol, port.port) in self.dns_ports:
                return port.port
            return None

        used = {(e.peer_text, dns(r.rule, e.port)) for r in uses for e in r.entries if e.used}
        return {(r.rule, e.peer, e.port) for r in uses for e in r.entries
                if not e.used and dns(r.rule, e.port) is not None
                and (e.peer_text, dns(r.rule, e.port)) in used}

    def _rule(self, direction: str, r: RuleUse, raw_rule: dict, ever: dict[tuple, int],
              removals: list[Edit], twins: set[tuple]) -> int:
        """Edits for one rule; returns 1 when the rule stays (whole or in part)."""
        p, i = self.ep.policy, r.rule
        all_pairs = [(e.peer, e.port) for e in r.entries]
        used = {(e.peer, e.port) for e in r.entries if e.used}
        for j, k in sorted(twins, key=str):
            e = next(e for e in r.entries if (e.peer, e.port) == (j, k))
            alone = len(r.peers) == 1  # the port entry is the item, whatever the peer
            self.unused.append(Unused(p.id, direction, i, "port" if alone else "combination",
                                      None if alone else j, k,
                                      f"{e.peer_text} on {e.port_text}",
                                      ever.get((i, j, k)), KEPT_DNS, DNS_TWIN))
        used |= twins
        declared = self.narrower.declared if self.narrower is not None else {}
        for e in r.entries:
            calls = declared.get((p.id, direction, i, e.peer, e.port))
            if e.used or (e.peer, e.port) in twins or not calls:
                continue
            # never removed: a recording rarely shows the API server calling a webhook
            self.unused.append(Unused(p.id, direction, i, "combination", e.peer, e.port,
                                      f"{e.peer_text} on {e.port_text}",
                                      ever.get((i, e.peer, e.port)), KEPT_DECLARED,
                                      DECLARED_USE + ", ".join(sorted(calls))))
            used.add((e.peer, e.port))
        status = REMOVED if self.removable else NOT_ENOUGH_EVIDENCE
        ref = f"{direction}[{i}]"
        if not used:
            last = _last(ever, i, all_pairs)
            reason = f"unused in the window, {_seen_text(last)}"
            self.unused.append(Unused(p.id, direction, i, "rule", None, None, r.allows, last,
                                      status, reason if self.removable else self.problem or ""))
            if self.removable:
                removals.append(Edit(REMOVE, ("spec", direction, i)))
                self.changes.append(Change("remove-rule", ref, r.allows, reason))
                return 0
            self.changes.append(Change("keep", ref, r.allows,
                                       f"unused ({_seen_text(last)}) but {NOT_ENOUGH_EVIDENCE}: "
                                       f"{self.problem}"))
            return 1
        peers = sorted({j for j, _ in all_pairs}, key=lambda x: -1 if x is None else x)
        ports = sorted({k for _, k in all_pairs}, key=lambda x: -1 if x is None else x)
        kept_peers = {j for j, _ in used}
        kept_ports = {k for _, k in used}
        texts_peer = {j: r.peers[idx] for idx, j in enumerate(peers)}
        texts_port = {k: r.ports[idx] for idx, k in enumerate(ports)}
        key = PEERS_KEY[direction]
        for j in peers:
            if j in kept_peers:
                continue
            last = _last(ever, i, [(j, k) for k in ports])
            what = f"{key} {texts_peer[j]}"
            reason = f"unused in the window, {_seen_text(last)}"
            self.unused.append(Unused(p.id, direction, i, "peer", j, None, what, last, status,
                                      reason if self.removable else self.problem or ""))
            if self.removable:
                removals.append(Edit(REMOVE, ("spec", direction, i, key, j)))
                self.changes.append(Change("remove-peer", f"{ref}.{key}[{j}]", what, reason))
            else:
                self.changes.append(Change("keep", f"{ref}.{key}[{j}]", what,
                                           f"unused but {NOT_ENOUGH_EVIDENCE}: {self.problem}"))
        for k in ports:
            if k in kept_ports:
                continue
            last = _last(ever, i, [(j, k) for j in peers])
            what = f"port {texts_port[k]}"
            reason = f"unused in the window, {_seen_text(last)}"
            self.unused.append(Unused(p.id, direction, i, "port", None, k, what, last, status,
                                      reason if self.removable else self.problem or ""))
            if self.removable:
                removals.append(Edit(REMOVE, ("spec", direction, i, "ports", k)))
                self.changes.append(Change("remove-port", f"{ref}.ports[{k}]", what, reason))
            else:
                self.changes.append(Change("keep", f"{ref}.ports[{k}]", what,
                                           f"unused but {NOT_ENOUGH_EVIDENCE}: {self.problem}"))
        holes = [(j, k) for j in sorted(kept_peers, key=lambda x: -1 if x is None else x)
                 for k in sorted(kept_ports, key=lambda x: -1 if x is None else x)
                 if (j, k) not in used]
        for j, k in holes:
            last = ever.get((i, j, k))
            what = f"{key} {texts_peer[j]} on {texts_port[k]}"
            self.unused.append(Unused(p.id, direction, i, "combination", j, k, what, last, status,
                                      f"unused in the window, {_seen_text(last)}"
                                      if self.removable else self.problem or ""))
        if holes:
            if self.removable:
                parts = _split_rule(raw_rule, direction, used)  # type: ignore[arg-type]
                # The split replaces the whole rule; peer/port removals inside it are moot.
                removals[:] = [e for e in removals if e.path[:3] != ("spec", direction, i)]
                removals.append(Edit(REPLACE, ("spec", direction, i), tuple(parts)))
                self.changes.append(Change(
                    "split-rule", ref, r.allows,
                    f"{len(holes)} peer/port combination(s) unused ("
                    + "; ".join(f"{key} {texts_peer[j]} on {texts_port[k]}" for j, k in holes)
                    + f"): split into {len(parts)} rules allowing only the used combinations"))
            else:
                self.changes.append(Change(
                    "keep", ref, r.allows, f"{len(holes)} peer/port combination(s) unused but "
                    f"{NOT_ENOUGH_EVIDENCE}: {self.problem}"))
        if self.narrower is not None:
            self._narrow(direction, i, raw_rule, used, removals)
        return 1

    def _narrow(self, direction: str, i: int, raw_rule: dict, used: set,
                removals: list[Edit]) -> None:
        """A used rule broader than its use becomes the observed peers and ports; the
        replacement covers the removals and split above, which are dropped."""
        n = self.narrower.narrow(self.ep.policy, direction, i, raw_rule, used)  # type: ignore[union-attr]
        if n is None:
            return
        ref = f"{direction}[{i}]"
        if n.problem is not None:
            self.narrowings.append(n)
            self.changes.append(Change("keep", ref, "broader than its use",
                                       f"cannot narrow: {n.problem}"))
            return
        self.narrowings.append(n)
        if not self.removable:
            self.changes.append(Change(
                "keep", ref, n.summary,
                f"would narrow to {len(n.after)} rule(s) ({n.evidence}); "
                f"{NOT_ENOUGH_EVIDENCE}: {self.problem}"))
            return
        removals[:] = [e for e in removals if e.path[:3] != ("spec", direction, i)]
        self.changes[:] = [c for c in self.changes
                           if not (c.action == "split-rule" and c.ref == ref)]
        removals.append(Edit(REPLACE, ("spec", direction, i), n.after))
        self.changes.append(Change("narrow-rule", ref, n.summary,
                                   f"broader than its use: {n.evidence}"))


# ---------------------------------------------------------------- denied -> additions


def _selector_dict(choice) -> dict | None:
    """A SelectorChoice as a podSelector; None when it is empty (it would select every
    pod of the namespace)."""
    if choice.is_empty():
        return None
    sel: dict = {}
    if choice.match_labels:
        sel["matchLabels"] = dict(choice.match_labels)
    if choice.match_expressions:
        sel["matchExpressions"] = [{"key": k, "operator": op, **({"values": list(v)} if v else {})}
                                   for k, op, v in choice.match_expressions]
    return sel


def _marked(rule: object) -> Commented:
    if isinstance(rule, Commented):
        return Commented(rule.value, (ADDED_NOTE,) + rule.comments)
    return Commented(rule, (ADDED_NOTE,))


@dataclass
class _NewPolicy:
    namespace: str
    name: str
    selector: dict
    rules: dict  # direction -> list of rules
    workload: str


class _Additions:
    def __init__(self, existing: ExistingSet, index: InventoryIndex, evaluator: Evaluator):
        self.existing = existing
        self.index = index
        self.evaluator = evaluator
        self.by_host: dict[tuple[str, str], list[Commented]] = defaultdict(list)
        self.new: dict[tuple[str, str], _NewPolicy] = {}
        self.additions: list[Addition] = []
        self.names = {p.policy.id for p in existing.policies}

    def run(self, connections: tuple[Connection, ...]) -> None:
        denied: dict[str, list[Connection]] = {"ingress": [], "egress": []}
        for c in connections:
            src = c.src_pod if c.src_pod is not None else c.src_ip
            dst = c.dst_pod if c.dst_pod is not None else c.dst_ip
            v = self.evaluator.check(src, dst, c.protocol, c.port)
            if not v.egress.allowed:
                denied["egress"].append(c)
            if not v.ingress.allowed:
                denied["ingress"].append(c)
        for direction, conns in denied.items():
            if conns:
                self._direction(direction, conns)

    def _direction(self, direction: str, conns: list[Connection]) -> None:
        edges = aggregate_edges(conns)
        at = (lambda e: e.dst) if direction == "ingress" else (lambda e: e.src)
        targets = sorted({at(e) for e in edges if at(e).kind == WORKLOAD})
        # default_deny=True: DNS goes into one rule per namespace (flowpol-allow-dns),
        # everything else into the workload's own policy. declared=False: the rules added
        # are for the observed connections the existing set denies, nothing else.
        synth = synthesize(edges, self.index, SynthesisOptions(
            default_deny=True, namespaces=tuple(sorted({t.namespace for t in targets})),
            declared=False))
        docs = {(d.namespace, d.workload): d for d in synth.policies if d.workload}
        dns_rules = {d.namespace: d.manifest["spec"]["egress"] for d in synth.policies
                     if d.workload is None and d.manifest["spec"].get("egress")}
        seen_pods: dict[Peer, list] = defaultdict(list)
        for c in conns:
            end, pod = (c.dst, c.dst_pod) if direction == "ingress" else (c.src, c.src_pod)
            if pod is not None:
                seen_pods[end].append(pod)
        for t in targets:
            mine = [e for e in edges if at(e) == t]
            count = sum(e.count for e in mine)
            doc = docs.get((t.namespace, (t.workload_kind, t.workload_name)))
            rules = list(doc.manifest["spec"].get(direction, [])) if doc else []
            if direction == "egress" and any(is_dns_traffic(e, self.index) for e in mine):
                rules = list(dns_rules.get(t.namespace, [])) + rules
            selector = doc.manifest["spec"]["podSelector"] if doc else \
                _selector_dict(self.index.selector_for(workload_ref(t)))
            if not rules or selector is None:
                reasons = sorted({why for label, why in synth.skipped_edges
                                  if t.display() in label})
                self.additions.append(Addition(
                    t.display(), direction, count, (), None,
                    "no rule could be written: " + ("; ".join(reasons) or
                                                    "no label selects this workload's pods alone")))
                continue
            rules = [_marked(r) for r in rules]
            name = doc.name if doc else f"flowpol-{t.workload_name}"
            host, problem = self._host(t, direction, selector, seen_pods[t], name)
            self.additions.append(Addition(t.display(), direction, count, tuple(rules), host,
                                           problem))
            if host is None:
                continue
            new = next((n for n in self.new.values() if f"{n.namespace}/{n.name}" == host), None)
            if new is not None:
                new.rules.setdefault(direction, []).extend(rules)
            else:
                self.by_host[(host, direction)].extend(rules)

    def _host(self, t: Peer, direction: str, selector: dict, seen: list,
              name: str) -> tuple[str | None, str | None]:
        """The policy to add rules to: an existing one selecting exactly this workload's
        pods for the direction, else a new one when that isolates nothing new."""
        kind = KIND[direction]
        ref = workload_ref(t)
        mine = [dict(p.labels) for p in self.index.pods_of(ref) if not p.host_network]
        mine += [dict(p.labels) for p in seen]
        others = [dict(p.labels) for p in self.index.inventory.pods
                  if p.namespace == t.namespace and not p.host_network
                  and self.index.workload_of(p) != ref]
        candidates = []
        for ep in self.existing.policies:
            pol = ep.policy
            if pol.namespace != t.namespace or kind not in pol.policy_types:
                continue
            if all(matches(pol.pod_selector, lab) for lab in mine) \
                    and not any(matches(pol.pod_selector, lab) for lab in others):
                candidates.append((pol.name, pol.id))
        if candidates:
            return min(candidates)[1], None
        existing_new = self.new.get((t.namespace, t.display()))
        if existing_new is not None:
            return f"{existing_new.namespace}/{existing_new.name}", None
        parsed = parse_label_selector(selector, "spec.podSelector")
        newly_isolated = []
        for pod in self.index.inventory.pods:
            if pod.namespace != t.namespace or pod.host_network:
                continue
            if matches(parsed, dict(pod.labels)):
                isolating = self.evaluator.selecting(pod_view(pod))
                if not isolating[0 if direction == "ingress" else 1]:
                    newly_isolated.append(f"{pod.namespace}/{pod.name}")
        if newly_isolated:
            return None, (f"a new policy selecting {t.display()} would also isolate "
                          f"{', '.join(newly_isolated[:5])} for {kind}; add the rule by hand")
        base, n = name, 1
        while f"{t.namespace}/{name}" in self.names:
            n += 1
            name = f"{base}-{n}"
        self.names.add(f"{t.namespace}/{name}")
        self.new[(t.namespace, t.display())] = _NewPolicy(t.namespace, name, selector, {},
                                                           t.display())
        return f"{t.namespace}/{name}", None


def _new_policy_object(n: _NewPolicy) -> dict:
    kinds = [KIND[d] for d in ("ingress", "egress") if d in n.rules]
    spec: dict = {"podSelector": n.selector, "policyTypes": kinds}
    for d in ("ingress", "egress"):
        if d in n.rules:
            spec[d] = n.rules[d]
    return {"apiVersion": API_VERSION, "kind": "NetworkPolicy",
            "metadata": {"name": n.name, "namespace": n.namespace, "labels": dict(MANAGED_BY),
                         "annotations": {"flowpol.dev/purpose": (
                             f"added by flowpol diff for {n.workload}: observed connections the "
                             "existing policies deny")}},
            "spec": spec}


def _new_policy_file(namespace: str) -> str:
    """New policies go to a file of their own, so the review sees them as new (a file of
    that name in the existing set, from an earlier run, is extended)."""
    return f"flowpol-added-{namespace}.yaml"


# ---------------------------------------------------------------- the proposal


def propose(existing: ExistingSet, observed: ObservedTraffic, thresholds: Thresholds = Thresholds(),
            window_ns: int | None = None) -> Proposal:
    inventory = observed.index.inventory
    connections = observed.resolved.connections
    span = recording_span(observed)
    window_start = None
    in_window = list(connections)
    coverage = span.duration if span else 0
    if span is not None and window_ns is not None:
        window_start = span.end - window_ns
        in_window = [c for c in connections if c.last_seen >= window_start]
        coverage = min(window_ns, span.duration)
    policies = existing.parsed
    evaluator = Evaluator.from_inventory(policies, inventory)
    denied = check_policies(connections, policies, observed.index, evaluator)
    usage = rule_usage(in_window, policies, evaluator, inventory)
    usage_ever = usage if window_ns is None else rule_usage(connections, policies, evaluator,
                                                            inventory)
    ever: dict[str, dict[tuple, int]] = defaultdict(dict)
    for r in usage_ever.rules:
        for e in r.entries:
            if e.last_seen is not None:
                ever[f"{r.policy} {r.direction}"][(r.rule, e.peer, e.port)] = e.last_seen
    uses: dict[tuple[str, str], list[RuleUse]] = defaultdict(list)
    for r in usage.rules:
        uses[(r.policy, r.direction)].append(r)
    flows = _policy_flows(in_window, evaluator)

    dns = observed.index.dns_resolvers()
    dns_ports = frozenset({("UDP", p) for p in dns.udp_ports or (53,)}
                          | {("TCP", p) for p in dns.tcp_ports or (53,)})
    adds = _Additions(existing, observed.index, evaluator)
    adds.run(connections)
    narrower = Narrower(observed.index, evaluator, in_window)

    proposals: list[PolicyProposal] = []
    unused: list[Unused] = []
    for ep in existing.policies:
        pid = ep.policy.id
        problem = _evidence_problem(coverage, flows.get(pid, 0), thresholds,
                                    window_ns is not None)
        work = _PolicyWork(ep, problem is None, problem, dns_ports, narrower)
        for direction in ("ingress", "egress"):
            added = adds.by_host.get((pid, direction), [])
            if added:
                work.changes.append(Change(
                    "add-rule", f"{direction}[+]",
                    f"{len(added)} {direction} rule(s) for observed connection(s)", ADDED_NOTE))
            work.direction(direction, uses[(pid, direction)], ever[f"{pid} {direction}"], added)
        proposals.append(PolicyProposal(pid, ep.file, ep, apply_edits(ep.raw, work.edits),
                                        tuple(work.edits), tuple(work.changes),
                                        flows.get(pid, 0), problem, tuple(work.narrowings)))
        unused += work.unused
    for n in adds.new.values():
        obj = _new_policy_object(n)
        what = ", ".join(f"{len(v)} {d} rule(s)" for d, v in n.rules.items())
        proposals.append(PolicyProposal(
            f"{n.namespace}/{n.name}", _new_policy_file(n.namespace), None, obj, (),
            (Change("add-policy", "", f"new policy for {n.workload}: {what}",
                    "no existing policy selects exactly this workload; the new one isolates "
                    "no pod that was not isolated already"),), 0, None))
    isolations = missing_isolation(
        policies, observed.index, evaluator, in_window, adds.names,
        lambda n: _evidence_problem(coverage, n, thresholds, window_ns is not None))
    for iso in isolations:
        if not iso.applied:
            continue
        pol = iso.policy
        assert pol is not None
        proposals.append(PolicyProposal(
            f"{iso.namespace}/{iso.name}", _new_policy_file(iso.namespace), None, pol, (),
            (Change("add-isolation", "", f"{iso.workload}: {iso.direction} to "
                    f"{', '.join(iso.peers)} only" if iso.direction == "egress" else
                    f"{iso.workload}: {iso.direction} from {', '.join(iso.peers)} only",
                    f"no policy isolated it for {KIND[iso.direction]}; "
                    f"{iso.connections:,} observed connection(s) went through that side"),),
            iso.connections, None))
    return Proposal(tuple(proposals), tuple(unused), denied, tuple(adds.additions), span,
                    window_start, coverage, thresholds, isolations)
