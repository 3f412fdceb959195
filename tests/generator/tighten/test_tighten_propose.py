"""`flowpol diff`'s analysis and proposal against hand-written policy sets for the bank
scenario (tests/bank_scenario.py): exactly right, too broad, too narrow; in several
namespaces and in one; under enough and too little evidence.

Two properties are checked on every proposal, not just examples: it verifies clean
against the observed traffic (generator.verify.check), and it is never broader than the
existing set - proved with the Evaluator over every pair of pods, node and outside
addresses on every port any of the policies or pods mention - except, for a set that
denied observed traffic, exactly the workloads and ports of those observed connections.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bank_scenario import END, MINUTE, observe_bank
from generator.verify.check import check_policies
from generator.resolve.identity import pod_view
from generator.review.evidence import Thresholds
from generator.tighten.existing import existing_from_files, existing_from_objects
from generator.tighten.propose import KEPT_DNS, NO_EFFECT, NOT_ENOUGH_EVIDENCE, REMOVED, propose
from generator.tighten.run import proposed_files
from generator.verify.evaluator import Evaluator
from generator.verify.policy import NetworkPolicy
from k8s_schema import validate_manifests

ASSETS = Path(__file__).parent / "assets"
ENOUGH = Thresholds(min_observation_ns=60 * MINUTE, min_flows=1)
OUTSIDE = ("203.0.113.10", "198.51.100.7", "10.0.0.9")


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return observe_bank(tmp_path_factory.mktemp("bank"))[1]


def _run(observed, *paths: Path, thresholds: Thresholds = ENOUGH, window_ns=None):
    existing = existing_from_files([str(p) for p in paths])
    return existing, propose(existing, observed, thresholds, window_ns)


# ---------------------------------------------------------------- the two properties


def _ports(policies: tuple[NetworkPolicy, ...], observed) -> list[int]:
    ports = {22, 53, 80, 443, 5432, 8000, 8080, 9090, 9443, 12345}
    for p in policies:
        for rule in p.ingress + p.egress:
            for port in rule.ports:
                if isinstance(port.port, int):
                    ports.update({port.port, port.end_port or port.port})
    for pod in observed.index.inventory.pods:
        ports.update(cp.port for cp in pod.ports)
    return sorted(ports)


def _ends(observed) -> list:
    inv = observed.index.inventory
    return [pod_view(p) for p in inv.pods] + [a for n in inv.nodes for a in n.addresses] \
        + list(OUTSIDE)


def _allowed(policies, observed, ends, ports) -> set[tuple]:
    ev = Evaluator.from_inventory(policies, observed.index.inventory)
    out = set()
    for s in ends:
        for d in ends:
            if s is d:
                continue
            for proto in ("TCP", "UDP"):
                for port in ports:
                    if ev.check(s, d, proto, port).allowed:
                        out.add((_key(s), _key(d), proto, port))
    return out


def _key(end) -> str:
    return end if isinstance(end, str) else f"{end.namespace}/{end.name}"


def _workload(observed, key: str) -> str:
    if "/" not in key:
        return key
    ns, name = key.split("/")
    pod = observed.index.pod(ns, name)
    return observed.index.workload_of(pod).display()


def _widened(existing, proposal, observed) -> set[tuple]:
    """What the proposal allows that the existing set does not, as (client workload or
    address, server workload or address, protocol, port)."""
    old, new = existing.parsed, proposal.parsed()
    ends, ports = _ends(observed), _ports(old + new, observed)
    extra = _allowed(new, observed, ends, ports) - _allowed(old, observed, ends, ports)
    return {(_workload(observed, s), _workload(observed, d), proto, port)
            for s, d, proto, port in extra}


def _peer_key(peer) -> str:
    return peer.display() if peer.kind == "workload" else peer.ip


def _assert_verifies_clean(proposal, observed) -> None:
    result = check_policies(observed.resolved.connections, proposal.parsed(), observed.index)
    assert result.denied == 0, [g.reason for g in result.groups if not g.allowed]
    assert result.allowed_count == sum(c.count for c in observed.resolved.connections)


def _assert_valid_yaml(existing, proposal) -> None:
    docs = [d for f in proposed_files(existing, proposal) for d in yaml.safe_load_all(f.new)]
    assert validate_manifests([d for d in docs if d and d.get("kind") != "Kustomization"]) > 0
    for p in proposal.policies:  # flowpol's own validator (API-server rules) accepts them
        assert isinstance(p.proposed, dict)


# ---------------------------------------------------------------- exactly right


def test_exactly_right_set_stays_as_it_is(bank) -> None:
    existing, proposal = _run(bank, ASSETS / "exact")
    assert len(existing.policies) == 11 and len({p.policy.namespace for p in existing.policies}) == 3
    assert proposal.denied.denied == 0
    assert proposal.unused == ()
    assert not any(p.changed for p in proposal.policies)
    assert all(not f.changed for f in proposed_files(existing, proposal))
    _assert_verifies_clean(proposal, bank)
    assert _widened(existing, proposal, bank) == set()


# ---------------------------------------------------------------- too broad


def _unused(proposal) -> dict[tuple[str, str], str]:
    return {(u.policy, u.ref): u.status for u in proposal.unused}


def test_too_broad_set_loses_exactly_what_went_unused(bank) -> None:
    existing, proposal = _run(bank, ASSETS / "too-broad")
    assert proposal.denied.denied == 0
    assert _unused(proposal) == {
        ("shop/api-server", "ingress[0].from[2]"): REMOVED,  # every pod in namespace ops
        ("shop/api-server", "ingress[0].ports[1]"): REMOVED,  # 9443
        ("shop/api-server", "ingress[2]"): REMOVED,  # ssh from anywhere
        ("shop/web-extra", "ingress[0]"): REMOVED,
        ("shop/web-extra", "egress[0]"): REMOVED,
        ("billing/billing-dns", "egress[0].ports[1]"): KEPT_DNS,  # TCP 53 unused, UDP used
        ("billing/ledger", "egress[0].to[0].ports[1]"): REMOVED,  # db on 443
        ("billing/ledger", "egress[0].to[1].ports[0]"): REMOVED,  # gateway on 5432
        ("billing/db-ingress-only", "egress[0]"): NO_EFFECT,  # policyTypes lacks Egress
        ("ops/legacy-app", "ingress[0]"): NOT_ENOUGH_EVIDENCE,  # selects no pod
    }
    assert all(u.last_seen is None for u in proposal.unused)  # none of it ever seen
    actions = {p.id: sorted(c.action for c in p.changes) for p in proposal.policies if p.changes}
    assert actions == {
        "shop/api-server": ["remove-peer", "remove-port", "remove-rule"],
        "shop/web-extra": ["remove-rule", "remove-rule", "set-policy-types"],
        "billing/ledger": ["split-rule"],
        "billing/db": ["narrow-rule"],  # "anything in the namespace": ledger and report used it
        "billing/db-ingress-only": ["remove-inert"],
        "ops/legacy-app": ["keep"],
    }
    legacy = next(p for p in proposal.policies if p.id == "ops/legacy-app")
    assert "no pod it selects was seen" in legacy.evidence_problem


def test_too_broad_proposal_keeps_names_selectors_and_the_authors_text(bank) -> None:
    existing, proposal = _run(bank, ASSETS / "too-broad")
    by_id = {p.id: p for p in proposal.policies}
    assert [p.id for p in proposal.policies] == [e.policy.id for e in existing.policies]
    for e in existing.policies:  # names and selectors kept, nothing deleted
        assert by_id[e.policy.id].proposed["spec"]["podSelector"] == e.raw["spec"]["podSelector"]
    # The split keeps each used combination, in the rule's place, one rule per port set.
    ledger_egress = by_id["billing/ledger"].proposed["spec"]["egress"]
    assert ledger_egress == [
        {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]},
        {"to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}], "ports": [{"port": 443}]}]
    # web-extra loses both rules but stays isolating web for both directions.
    web_extra = by_id["shop/web-extra"].proposed["spec"]
    assert web_extra == {"podSelector": {"matchLabels": {"app": "web"}},
                         "policyTypes": ["Ingress", "Egress"]}
    files = {f.name: f for f in proposed_files(existing, proposal)}
    api = files["shop/api-server.yaml"]
    assert api.method == "edited"  # the author's file with lines taken out
    assert "# kubelet probes from the nodes" in api.new and "# clients" in api.new
    assert "# ssh for debugging" not in api.new and "port: 22" not in api.new
    assert "port: 9443" not in api.new and "kubernetes.io/metadata.name: ops" not in api.new
    old_lines = api.old.splitlines()
    assert [line for line in api.new.splitlines() if line not in old_lines] == []
    assert files["billing/policies.yaml"].method == "edited"  # a List, flow-style mappings
    assert "{protocol: UDP, port: 53}" in files["billing/policies.yaml"].new
    assert files["shop/admin.json"].new == files["shop/admin.json"].old
    _assert_valid_yaml(existing, proposal)


def test_too_broad_proposal_verifies_clean_and_is_strictly_narrower(bank) -> None:
    existing, proposal = _run(bank, ASSETS / "too-broad")
    _assert_verifies_clean(proposal, bank)
    assert _widened(existing, proposal, bank) == set()
    old, new = existing.parsed, proposal.parsed()
    ends, ports = _ends(bank), _ports(old + new, bank)
    narrowed = {(_workload(bank, s), _workload(bank, d), proto, port) for s, d, proto, port in
                _allowed(old, bank, ends, ports) - _allowed(new, bank, ends, ports)}
    assert ("198.51.100.7", "shop/Deployment/api", "TCP", 22) in narrowed  # ssh rule
    assert ("shop/Deployment/web", "198.51.100.7", "TCP", 443) in narrowed  # web-extra
    assert ("billing/CronJob/report", "kube-system/Deployment/coredns", "TCP", 53) not in narrowed
    assert ("billing/Deployment/ledger", "203.0.113.10", "TCP", 5432) in narrowed


# ---------------------------------------------------------------- too narrow


def test_too_narrow_set_gets_rules_for_exactly_what_it_denies(bank) -> None:
    existing, proposal = _run(bank, ASSETS / "too-narrow")
    denied = {(g.src.display(), _peer_key(g.dst), g.protocol, g.port, g.denied_by)
              for g in proposal.denied.groups if not g.allowed}
    assert denied == {
        ("shop/Deployment/admin", "shop/Deployment/api", "TCP", 8080, "destination ingress"),
        ("shop/Deployment/web", "shop/Deployment/api", "TCP", 8080, "source egress"),
        ("billing/Deployment/ledger", "203.0.113.10", "TCP", 443, "source egress"),
        ("ops/Deployment/backup", "billing/StatefulSet/db", "TCP", 5432,
         "source egress and destination ingress"),
    }
    hosts = {(a.workload, a.direction): a.host for a in proposal.additions}
    assert hosts == {
        ("shop/Deployment/api", "ingress"): "shop/api-server",  # selects exactly api
        ("billing/Deployment/ledger", "egress"): "billing/ledger",
        ("ops/Deployment/backup", "egress"): "ops/backup",
        ("billing/StatefulSet/db", "ingress"): "billing/db",
        # only deny-all and dns-egress select web: a new policy, web is isolated already
        ("shop/Deployment/web", "egress"): "shop/flowpol-web",
    }
    new = next(p for p in proposal.policies if p.existing is None)
    assert new.file == "flowpol-added-shop.yaml"
    assert new.proposed["spec"]["policyTypes"] == ["Egress"]
    _assert_verifies_clean(proposal, bank)
    # Wider only by the observed connections that were denied, nothing else.
    observed_denied = {(g.src.display(), _peer_key(g.dst), g.protocol, g.port)
                       for g in proposal.denied.groups if not g.allowed}
    widened = _widened(existing, proposal, bank)
    assert widened and widened <= observed_denied
    files = {f.name: f for f in proposed_files(existing, proposal)}
    assert files["shop/api-server.yaml"].method == "edited"
    assert files["flowpol-added-shop.yaml"].method == "new"
    _assert_valid_yaml(existing, proposal)


# ---------------------------------------------------------------- evidence


def test_too_little_evidence_removes_nothing_but_still_reports(bank) -> None:
    existing, proposal = _run(bank, ASSETS / "too-broad", thresholds=Thresholds())  # 7d
    statuses = _unused(proposal)
    assert statuses[("shop/api-server", "ingress[2]")] == NOT_ENOUGH_EVIDENCE
    assert statuses[("billing/db-ingress-only", "egress[0]")] == NO_EFFECT  # changes nothing
    assert {s for s in statuses.values()} == {NOT_ENOUGH_EVIDENCE, NO_EFFECT, KEPT_DNS}
    api = next(p for p in proposal.policies if p.id == "shop/api-server")
    assert not api.edits and "less than --min-observation 7d" in api.evidence_problem
    changed = [p.id for p in proposal.policies if p.changed]
    assert changed == ["billing/db-ingress-only"]


def test_min_flows_is_per_policy(bank) -> None:
    # admin made one connection: its policy may not lose anything with --min-flows 2,
    # the busy api's may.
    _, proposal = _run(bank, ASSETS / "too-broad",
                       thresholds=Thresholds(60 * MINUTE, min_flows=2))
    flows = {p.id: p.evidence_connections for p in proposal.policies}
    assert flows["shop/admin-egress"] == 1
    admin = next(p for p in proposal.policies if p.id == "shop/admin-egress")
    assert "fewer than --min-flows 2" in admin.evidence_problem
    api = next(p for p in proposal.policies if p.id == "shop/api-server")
    assert api.evidence_problem is None and api.edits


def test_window_counts_recent_use_and_reports_when_older_use_was_last_seen(bank) -> None:
    # The ledger called the gateway last at 10:31; a 20-minute window ends at 10:55.
    existing, proposal = _run(bank, ASSETS / "exact",
                              thresholds=Thresholds(10 * MINUTE, 1), window_ns=20 * MINUTE)
    gateway = [c for c in bank.resolved.connections if c.dst.ip == "203.0.113.10"]
    item = next(u for u in proposal.unused if (u.policy, u.ref) == ("billing/ledger", "egress[1]"))
    assert item.status == REMOVED and item.last_seen == max(c.last_seen for c in gateway)
    assert proposal.window_start is not None and proposal.window_start > item.last_seen
    # Used in the window: the admin's single connection at 10:50 keeps its peer.
    assert ("shop/api-server", "ingress[0].from[1]") not in _unused(proposal)
    assert END - proposal.window_start <= 30 * MINUTE


# ---------------------------------------------------------------- one namespace


@pytest.mark.parametrize("name", ["exact", "too-broad", "too-narrow"])
def test_one_namespace_alone(bank, name: str) -> None:
    _, whole = _run(bank, ASSETS / name)
    existing, proposal = _run(bank, ASSETS / name / "shop")
    assert {p.policy.namespace for p in existing.policies} == {"shop"}
    shop = {p.id: p.proposed for p in whole.policies if p.id.startswith("shop/")}
    assert {p.id: p.proposed for p in proposal.policies} == shop
    _assert_verifies_clean(proposal, bank)
    widened = _widened(existing, proposal, bank)
    assert (widened == set()) == (name != "too-narrow")


# ---------------------------------------------------------------- from a cluster


def test_policies_from_a_cluster_are_cleaned_rendered_and_tightened(bank) -> None:
    objects = []
    for path in sorted((ASSETS / "too-broad" / "shop").iterdir()):  # JSON is YAML too
        for doc in yaml.safe_load_all(path.read_text()):
            doc["metadata"].update({"uid": "u-1", "resourceVersion": "42", "generation": 1,
                                    "creationTimestamp": "2026-01-01T00:00:00Z",
                                    "managedFields": [{"manager": "kubectl"}],
                                    "annotations": {
                                        "kubectl.kubernetes.io/last-applied-configuration": "{}",
                                        "team": "storefront"}})
            objects.append(doc)
    existing = existing_from_objects(objects, "cluster", "cluster:test", "test")
    assert [f.name for f in existing.files] == ["shop.yaml"]
    raw = existing.policies[0].raw
    assert set(raw["metadata"]) == {"name", "namespace", "annotations"}
    assert raw["metadata"]["annotations"] == {"team": "storefront"}
    proposal = propose(existing, bank, ENOUGH)
    [f] = proposed_files(existing, proposal)
    # web-extra needs policyTypes written out, so that policy is re-emitted ("rewritten");
    # the rest of the file is the rendered original with lines taken out.
    assert f.method == "rewritten" and f.changed
    assert "port: 22" in f.old and "port: 22" not in f.new
    assert "name: admin-egress" in f.new
    _assert_verifies_clean(proposal, bank)
