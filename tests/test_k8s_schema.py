"""The schema helper catches broken manifests and accepts good ones."""

from __future__ import annotations

import copy

import pytest

from k8s_schema import (
    DEFAULT_VERSIONS,
    ManifestSchemaError,
    schema_problems,
    shipped_versions,
    validate_manifests,
)

GOOD = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/managed-by": "flowpol"}},
    "spec": {
        "podSelector": {"matchLabels": {"app": "web"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tools"}},
                      "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]}}],
            "ports": [{"protocol": "TCP", "port": "http"}, {"port": 30000, "endPort": 32767}],
        }],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                    "ports": [{"protocol": "UDP", "port": 53}]}],
    },
}


def broken(change) -> dict:
    doc = copy.deepcopy(GOOD)
    change(doc)
    return doc


def test_default_versions_are_shipped_and_distinct() -> None:
    assert set(DEFAULT_VERSIONS) <= set(shipped_versions()) and len(set(DEFAULT_VERSIONS)) >= 2


def test_good_policy_passes() -> None:
    assert validate_manifests([GOOD]) == 1


def test_list_items_are_validated_one_by_one() -> None:
    assert validate_manifests([{"apiVersion": "v1", "kind": "List", "items": [GOOD, GOOD]}]) == 2


def test_end_port_as_string_fails_in_every_version() -> None:
    doc = broken(lambda d: d["spec"]["ingress"][0]["ports"][1].__setitem__("endPort", "32767"))
    assert set(DEFAULT_VERSIONS) <= {p.version for p in schema_problems([doc])}


def test_unknown_field_fails() -> None:
    doc = broken(lambda d: d["spec"]["ingress"][0].__setitem__("form", []))
    with pytest.raises(ManifestSchemaError, match="'form' was unexpected"):
        validate_manifests([doc])


def test_problem_names_the_path() -> None:
    doc = broken(lambda d: d["spec"]["ingress"][0]["ports"][1].__setitem__("endPort", "32767"))
    assert schema_problems([doc])[0].path == "spec.ingress.0.ports.1.endPort"


def test_label_value_must_be_string() -> None:
    doc = broken(lambda d: d["spec"]["podSelector"]["matchLabels"].__setitem__("enabled", True))
    assert schema_problems([doc])


def test_missing_pod_selector_fails() -> None:
    doc = broken(lambda d: d["spec"].__delitem__("podSelector"))
    assert any("podSelector" in p.message for p in schema_problems([doc]))


def test_api_server_rules_beyond_the_schema() -> None:
    doc = broken(lambda d: d["spec"]["ingress"][0]["ports"][1].__setitem__("endPort", 1))
    assert [p.version for p in schema_problems([doc])] == ["api-server rules"]


def test_crd_without_schema_fails_unless_named() -> None:
    anp = {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
           "metadata": {"name": "deny"}, "spec": {}}
    assert schema_problems([anp]) and not schema_problems([anp], kinds_without_schema={"AdminNetworkPolicy"})


def test_unshipped_version_is_refused() -> None:
    with pytest.raises(ValueError, match="no schema for Kubernetes 1.2"):
        validate_manifests([GOOD], versions=("1.2",))


def test_non_object_document_fails() -> None:
    assert schema_problems(["just a string"])
