"""`flowpol diff` narrows used rules that admit more than their use, against the bank
scenario (tests/bank_scenario.py) and hand-written broad sets (assets/broad: one file
per broad shape, in three namespaces): an allow-all rule ``{}``, ``namespaceSelector:
{}``, ``podSelector: {}``, ipBlock 0.0.0.0/0 and 10.0.0.0/8, no ports, a port range, a
rule without ``from``, DNS to all of kube-system, an allow-all policy.

Each shape alone and all together: the proposal allows every observed connection, is
never broader than the existing set, and no rule of it admits anything beyond the
observed edges and DNS (the pods' own node is exempt anyway) - proved with the
Evaluator over every pair of pods, nodes and outside addresses, on every port any
policy or pod mentions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bank_scenario import MINUTE, observe_bank
from generator.output.yamlout import strip_comments
from generator.resolve.edges import PodView
from generator.review.evidence import Thresholds
from generator.tighten.propose import NOT_ENOUGH_EVIDENCE
from generator.verify.evaluator import Evaluator
from test_tighten_propose import (
    _allowed, _assert_valid_yaml, _assert_verifies_clean, _ends, _key, _ports, _run,
    _workload,
)

BROAD = Path(__file__).parent / "assets" / "broad"
DNS = "kube-system/Deployment/coredns"
# file -> (policy, rule) it must narrow
SHAPES = {
    "shop/allow-all-rule.yaml": ("shop/api-open", "ingress[0]"),
    "shop/no-ports.yaml": ("shop/api-out", "egress[0]"),
    "shop/port-range.yaml": ("shop/web-out", "egress[0]"),
    "billing/namespace-selector-empty.yaml": ("billing/ledger-in", "ingress[0]"),
    "billing/pod-selector-empty.yaml": ("billing/db-in", "ingress[0]"),
    "billing/no-from.yaml": ("billing/db-any", "ingress[0]"),
    "billing/ipblock-all.yaml": ("billing/ledger-out", "egress[0]"),
    "ops/ipblock-8.yaml": ("ops/backup-out", "egress[0]"),
    "ops/dns-kube-system.yaml": ("ops/backup-dns", "egress[0]"),
    "ops/allow-all-policy.yaml": ("ops/ops-open", "egress[0]"),
}
ENOUGH = Thresholds(min_observation_ns=60 * MINUTE, min_flows=1)
TOO_SHORT = Thresholds(min_observation_ns=180 * MINUTE, min_flows=1)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return observe_bank(tmp_path_factory.mktemp("bank"))[1]


def _observed(observed) -> set[tuple]:
    out = set()
    for c in observed.resolved.connections:
        src = c.src.display() if c.src.kind == "workload" else c.src_ip
        dst = c.dst.display() if c.dst.kind == "workload" else c.dst_ip
        out.add((src, dst, c.protocol, c.port))
    return out


def _newcomers(observed) -> list[PodView]:
    """A pod added later to each namespace, with labels nobody selects by name: what
    an empty selector admits beyond the pods there now."""
    return [PodView(ns.name, "newcomer", (("app", "newcomer"),), (), f"10.244.9.{i}",
                    False, "node-a")
            for i, ns in enumerate(observed.index.inventory.namespaces, start=1)]


def _admitted_beyond_use(policies, observed) -> set[tuple]:
    """What a rule of ``policies`` admits (a side that isolates and a rule that allows,
    no exemption) that is neither an observed edge nor DNS to the resolvers; pods added
    later count as peers (an empty selector admits them) but not as the pods a policy
    applies to: its podSelector is kept as the author wrote it."""
    ev = Evaluator.from_inventory(policies, observed.index.inventory)
    newcomers = _newcomers(observed)
    ends, ports = _ends(observed) + newcomers, _ports(policies, observed)
    used = _observed(observed)
    out = set()
    for s in ends:
        for d in ends:
            if s is d:
                continue
            for proto in ("TCP", "UDP"):
                for port in ports:
                    v = ev.check(s, d, proto, port)
                    for side, subject in ((v.egress, s), (v.ingress, d)):
                        if not side.isolated or not side.allowed_by or side.exemption:
                            continue
                        if subject in newcomers:
                            continue  # which pods a policy selects is the author's, kept
                        edge = (_end(observed, s), _end(observed, d), proto, port)
                        if edge in used or (edge[1] == DNS and port == 53):
                            continue
                        out.add(edge)
    return out


def _end(observed, end) -> str:
    if isinstance(end, PodView) and end.name == "newcomer":
        return f"{end.namespace}/newcomer"
    return _workload(observed, _key(end))


def _assert_never_broader(existing, proposal, observed) -> None:
    old, new = existing.parsed, proposal.parsed()
    ends, ports = _ends(observed), _ports(old + new, observed)
    assert _allowed(new, observed, ends, ports) <= _allowed(old, observed, ends, ports)


def _narrowed(proposal) -> set[tuple[str, str]]:
    return {(p.id, c.ref) for p in proposal.policies for c in p.changes
            if c.action == "narrow-rule"}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_broad_shape_alone_is_cut_to_its_use(bank, name: str) -> None:
    existing, proposal = _run(bank, BROAD / name)
    assert proposal.denied.denied == 0
    assert SHAPES[name] in _narrowed(proposal)
    assert _admitted_beyond_use(existing.parsed, bank)  # it was broad
    _assert_verifies_clean(proposal, bank)
    _assert_never_broader(existing, proposal, bank)
    assert _admitted_beyond_use(proposal.parsed(), bank) == set()
    _assert_valid_yaml(existing, proposal)


def test_every_broad_shape_together_across_namespaces(bank) -> None:
    existing, proposal = _run(bank, BROAD)
    assert len({p.policy.namespace for p in existing.policies}) == 3
    assert set(SHAPES.values()) <= _narrowed(proposal)
    _assert_verifies_clean(proposal, bank)
    _assert_never_broader(existing, proposal, bank)
    assert _admitted_beyond_use(proposal.parsed(), bank) == set()
    # names, selectors and rule order kept: every policy is there, in order, selecting
    # what it selected
    ids = [p.id for p in proposal.policies]
    assert ids[:len(existing.policies)] == [e.policy.id for e in existing.policies]
    # and the sides no policy isolated get a policy each (report's egress, admin's)
    assert ids[len(existing.policies):] == ["billing/flowpol-report", "shop/flowpol-admin"]
    by_id = {p.id: p for p in proposal.policies}
    for e in existing.policies:
        assert by_id[e.policy.id].proposed["spec"]["podSelector"] == e.raw["spec"]["podSelector"]
    _assert_valid_yaml(existing, proposal)


def test_narrowed_rules_are_the_observed_peers_as_generate_writes_them(bank) -> None:
    existing, proposal = _run(bank, BROAD)
    spec = {p.id: p.proposed["spec"] for p in proposal.policies}
    # 0.0.0.0/0 used by one external API -> its /32; the other rules stay in place
    assert spec["billing/ledger-out"]["egress"][0] == {
        "to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}],
        "ports": [{"protocol": "TCP", "port": 443}]}
    assert spec["billing/ledger-out"]["egress"][1:] == \
        next(e.raw for e in existing.policies if e.policy.id == "billing/ledger-out")[
            "spec"]["egress"][1:]
    # every namespace -> the one client, with its namespace's name label
    assert spec["billing/ledger-in"]["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
                  "podSelector": {"matchLabels": {"app": "api"}}}],
        "ports": [{"port": 9090}]}]
    # DNS to all of kube-system -> the resolver pods, UDP and its TCP twin kept
    assert spec["ops/backup-dns"]["egress"][0]["to"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert {(p["protocol"], p["port"]) for p in spec["ops/backup-dns"]["egress"][0]["ports"]} \
        == {("UDP", 53), ("TCP", 53)}
    # allow-all: one rule per set of ports, each peer only with the ports it used
    assert spec["ops/ops-open"]["egress"] == [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "billing"}},
                 "podSelector": {"matchLabels": {"app": "db"}}}],
         "ports": [{"protocol": "TCP", "port": 5432}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
         "ports": [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]}]
    assert "ingress" not in spec["ops/ops-open"]  # nothing came in: removed, still isolated
    assert spec["ops/ops-open"]["policyTypes"] == ["Ingress", "Egress"]
    # a port range -> the observed port
    assert spec["shop/web-out"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    # what each change removes, measured
    what = {(p.id, c.ref): c.what for p in proposal.policies for c in p.changes
            if c.action == "narrow-rule"}
    assert "4,294,967,295 address(es) beyond the 1 observed peer(s) → external 203.0.113.10 only" \
        in what[("billing/ledger-out", "egress[0]")]
    assert "TCP/8000-8999: 999 port(s) beyond the observed → TCP/8080" \
        in what[("shop/web-out", "egress[0]")]


def test_without_enough_evidence_nothing_is_narrowed_and_each_change_is_listed(bank) -> None:
    existing, proposal = _run(bank, BROAD, thresholds=TOO_SHORT)
    assert _narrowed(proposal) == set()
    for p in proposal.policies:
        assert p.proposed == p.existing.raw  # not one edit
    listed = {(p.id, c.ref): c.why for p in proposal.policies for c in p.changes
              if c.action == "keep" and c.why.startswith("would narrow")}
    assert set(SHAPES.values()) <= set(listed)
    assert all(f"{NOT_ENOUGH_EVIDENCE}: the recording covers" in why for why in listed.values())
    by_id = {p.id: p for p in proposal.policies}
    assert all(not n.problem for p in by_id.values() for n in p.narrowings)
    assert {(n.policy, n.ref) for p in proposal.policies for n in p.narrowings} \
        >= set(SHAPES.values())


def test_a_workload_without_egress_isolation_gets_it_from_the_evidence(bank) -> None:
    existing, proposal = _run(bank, BROAD / "billing/no-egress-isolation.yaml")
    # every open side with traffic in billing (the namespace the set covers) gets a policy
    sides = {(i.workload, i.direction): i for i in proposal.isolations}
    assert set(sides) == {("billing/CronJob/report", "egress"),
                          ("billing/Deployment/ledger", "egress"),
                          ("billing/Deployment/ledger", "ingress"),
                          ("billing/StatefulSet/db", "ingress")}
    assert all(i.applied for i in proposal.isolations)
    iso = sides[("billing/CronJob/report", "egress")]
    assert iso.peers == ("billing/StatefulSet/db", DNS)
    new = next(p for p in proposal.policies if p.id == "billing/flowpol-report")
    assert new.existing is None and new.file == "flowpol-added-billing.yaml"
    spec = strip_comments(new.proposed)["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app": "report"}}
    assert spec["policyTypes"] == ["Egress"]  # only the open side; ingress stays the author's
    assert spec["egress"] == [  # DNS first, as generate writes it, then the database
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
         "ports": [{"protocol": "TCP", "port": 5432}]}]
    # a second open side of one workload gets its own name
    assert {p.id for p in proposal.policies if p.existing is None} == {
        "billing/flowpol-report", "billing/flowpol-ledger", "billing/flowpol-ledger-ingress",
        "billing/flowpol-db"}
    _assert_verifies_clean(proposal, bank)
    _assert_never_broader(existing, proposal, bank)
    # a report run to the outside: open before, closed now
    run = PodView("billing", "report-next", (("app", "report"),), (), "10.244.9.50", False,
                  "node-a")
    old, now = (Evaluator.from_inventory(p, bank.index.inventory)
                for p in (existing.parsed, proposal.parsed()))
    assert old.check(run, "198.51.100.7", "TCP", 443).allowed
    assert not now.check(run, "198.51.100.7", "TCP", 443).allowed
    assert _admitted_beyond_use(proposal.parsed(), bank) == set()
    _assert_valid_yaml(existing, proposal)


def test_without_enough_evidence_isolation_is_listed_not_added(bank) -> None:
    existing, proposal = _run(bank, BROAD / "billing/no-egress-isolation.yaml",
                              thresholds=TOO_SHORT)
    assert len(proposal.isolations) == 4
    for iso in proposal.isolations:
        assert not iso.applied and iso.policy is not None
        assert iso.problem.startswith("the recording covers 1h 55m, less than "
                                      "--min-observation 3h")
    assert all(p.existing is not None for p in proposal.policies)  # nothing added
