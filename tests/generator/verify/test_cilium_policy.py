"""Cilium and ClusterNetworkPolicy files: parsed, judged, and bad ones refused with
``path:line``; what cannot be judged is counted, never silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.resolve.edges import PodView
from generator.verify.combined import CombinedEvaluator
from generator.verify.policyset import load_policy_kinds
from generator.verify.run import policies_from_files
from recorder.errors import InputError

ASSETS = Path(__file__).parent / "assets" / "cilium"
WEB = PodView("shop", "web-1", (("app", "web"),), (), "10.244.1.2", False, "node-a")
API = PodView("shop", "api-1", (("app", "api"),), (), "10.244.1.3", False, "node-a")
DB = PodView("shop", "db-1", (("app", "db"),), (), "10.244.2.3", False, "node-b")


def _ev(path: Path) -> CombinedEvaluator:
    _, kinds = load_policy_kinds(str(path))
    return CombinedEvaluator(kinds.network, kinds.cilium, kinds.cluster, {"shop": {}},
                             {"node-a": ["192.168.56.11"]})


def test_l7_rules_are_judged_at_l4_and_reported() -> None:
    ev = _ev(ASSETS / "l7.yaml")
    assert ev.check(WEB, API, "TCP", 8080).allowed
    assert not ev.check(DB, API, "TCP", 8080).allowed
    loaded = policies_from_files([str(ASSETS / "l7.yaml")])
    assert any("L7 rules (http) judged at L3/L4 only" in w and "l7-http ingress[0]" in w
               for w in loaded.warnings)


def test_ingress_deny_and_match_expressions() -> None:
    ev = _ev(ASSETS / "deny.yaml")
    # ingress: [{}] has no L3 and no port: every peer (Cilium's rule parser)
    assert ev.check(DB, API, "TCP", 9090).allowed
    assert ev.check(WEB, API, "TCP", 8080).allowed
    v = ev.check(WEB, DB, "TCP", 9090)
    assert not v.allowed and "deny-web ingressDeny[0]" in v.reason
    assert ev.check(WEB, WEB, "TCP", 9090).allowed  # itself; and web is not selected


def test_unknown_field_is_an_input_error_with_its_line() -> None:
    with pytest.raises(InputError) as e:
        load_policy_kinds(str(ASSETS / "unknown-field.yaml"))
    assert "fromEndpoint" in str(e.value) and e.value.line == 9


def test_unjudged_peers_match_nothing_and_are_counted() -> None:
    ev = _ev(ASSETS / "services.yaml")
    assert not ev.check(WEB, API, "TCP", 8080).allowed
    loaded = policies_from_files([str(ASSETS / "services.yaml")])
    assert any("toServices not judged" in w for w in loaded.warnings)


def test_mixed_kinds_in_one_directory(tmp_path: Path) -> None:
    for name in ("l7.yaml", "deny.yaml"):
        (tmp_path / name).write_text((ASSETS / name).read_text())
    (tmp_path / "np.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: shop}\n"
        "spec:\n  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n")
    loaded, kinds = load_policy_kinds(str(tmp_path))
    assert len(kinds.network) == 1 and len(kinds.cilium) == 2
    ev = CombinedEvaluator(kinds.network, kinds.cilium, kinds.cluster, {"shop": {}}, {})
    assert not ev.check(WEB, API, "TCP", 8080).allowed  # the NetworkPolicy isolates web's egress


def test_cluster_network_policy_tiers() -> None:
    from generator.verify.policyset import parse_manifests

    def cnp(name, tier, prio, action, ns="shop"):
        return {"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
                "metadata": {"name": name}, "spec": {
                    "tier": tier, "priority": prio,
                    "subject": {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
                    "ingress": [{"name": "r", "action": action, "from": [{"namespaces": {}}],
                                 "protocols": [{"tcp": {"destinationPort": {"number": 8080}}}]}]}}

    np = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "iso", "namespace": "shop"},
          "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"]}}

    def ev(*objs):
        k = parse_manifests(objs)
        return CombinedEvaluator(k.network, k.cilium, k.cluster, {"shop": {}}, {})

    # Admin Accept wins over an isolating NetworkPolicy; Pass hands over to it
    assert ev(cnp("a", "Admin", 1, "Accept"), np).check(WEB, API, "TCP", 8080).allowed
    assert not ev(cnp("a", "Admin", 1, "Pass"), np).check(WEB, API, "TCP", 8080).allowed
    # Admin Deny wins over everything; lower priority first
    assert not ev(cnp("a", "Admin", 5, "Accept"), cnp("b", "Admin", 2, "Deny")).check(
        WEB, API, "TCP", 8080).allowed
    # Baseline only where no NetworkPolicy selects the pod
    base = cnp("base", "Baseline", 1, "Deny")
    assert not ev(base).check(WEB, DB, "TCP", 8080).allowed
    assert ev(base).check(WEB, DB, "TCP", 9090).allowed  # no rule matches: allowed
    np_db = dict(np, spec={"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
                           "ingress": [{}]})
    assert ev(base, np_db).check(WEB, DB, "TCP", 8080).allowed


def test_every_kind_is_read_after_a_networkpolicy_in_a_directory(tmp_path: Path) -> None:
    """Files are read in name order; kinds read after a NetworkPolicy are read all the same."""
    (tmp_path / "a-networkpolicy.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: web, namespace: shop}\nspec: {podSelector: {matchLabels: {app: web}}}\n")
    (tmp_path / "b-cilium.yaml").write_text((ASSETS / "deny.yaml").read_text())
    (tmp_path / "c-cluster.yaml").write_text(
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
        "metadata: {name: base}\nspec:\n  tier: Baseline\n  priority: 1\n"
        "  subject: {namespaces: {}}\n"
        "  ingress: [{name: deny, action: Deny, from: [{namespaces: {}}]}]\n")
    loaded, kinds = load_policy_kinds(str(tmp_path))
    assert [p.name for p in loaded.policies] == ["web"]
    assert kinds.cilium and [c.name for c in kinds.cluster] == ["base"]
    assert not loaded.skipped
