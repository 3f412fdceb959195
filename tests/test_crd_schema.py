"""The vendored CRDs are intact and their schemas accept documented policies and refuse
broken ones (tests/crd_schema.py)."""

from __future__ import annotations

import copy
import hashlib
import re

import pytest

from crd_schema import SCHEMAS, crd_problems, load_crds, unchecked
from k8s_schema import schema_problems, validate_manifests


def test_vendored_files_are_the_ones_the_readme_names() -> None:
    readme = (SCHEMAS / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([^`]+\.yaml)` \|.*\| `([0-9a-f]{64})` \|$", readme, re.M))
    files = sorted(p.name for p in SCHEMAS.glob("*.yaml"))
    assert sorted(rows) == files and len(files) == 3
    for name in files:
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == rows[name], name
    assert "Apache License" in (SCHEMAS / "LICENSE").read_text()


def test_each_kind_has_its_own_schema() -> None:
    crds = load_crds()
    assert set(crds) == {("cilium.io/v2", "CiliumNetworkPolicy"),
                         ("cilium.io/v2", "CiliumClusterwideNetworkPolicy"),
                         ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy")}
    assert crds[("cilium.io/v2", "CiliumNetworkPolicy")].namespaced
    assert not crds[("cilium.io/v2", "CiliumClusterwideNetworkPolicy")].namespaced
    assert not crds[("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy")].namespaced


def test_what_is_not_checked_is_known() -> None:
    """A CRD update that brings a CEL rule or format these checks do not enforce shows up
    here, to be implemented in crd_schema or accepted knowingly."""
    rest = {"default (applied, not validated)", "format date-time", "format idn-hostname",
            "x-kubernetes-map-type (a merge strategy)"}
    found = unchecked()
    assert set(found["cilium.io_ciliumnetworkpolicies.yaml"]) == rest
    assert set(found["cilium.io_ciliumclusterwidenetworkpolicies.yaml"]) == rest
    assert set(found["policy.networking.k8s.io_clusternetworkpolicies.yaml"]) == {
        "format date-time", "x-kubernetes-map-type (a merge strategy)"}


# Examples shaped after Cilium's documentation (docs.cilium.io, "Layer 3 Examples",
# "Layer 4 Examples", "DNS based" and "Deny Policies").
CNP_DOC = [
    {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
     "metadata": {"name": "l3-rule", "namespace": "default"},
     "spec": {"endpointSelector": {"matchLabels": {"role": "backend"}},
              "ingress": [{"fromEndpoints": [{"matchLabels": {"role": "frontend"}}]}]}},
    {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
     "metadata": {"name": "dev-to-kube-apiserver", "namespace": "default"},
     "spec": {"endpointSelector": {"matchLabels": {"env": "dev"}},
              "egress": [{"toEntities": ["kube-apiserver"]}]}},
    {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
     "metadata": {"name": "fqdn", "namespace": "default"},
     "spec": {"endpointSelector": {"matchLabels": {"org": "empire", "class": "mediabot"}},
              "egress": [
                  {"toFQDNs": [{"matchName": "api.github.com"}, {"matchPattern": "*.github.com"}],
                   "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
                  {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                                    "k8s:k8s-app": "kube-dns"}}],
                   "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}],
                                "rules": {"dns": [{"matchPattern": "*"}]}}]}]}},
    {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
     "metadata": {"name": "cidr-except", "namespace": "default"},
     "spec": {"endpointSelector": {"matchLabels": {"app": "myService"}},
              "egress": [{"toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}],
                          "toPorts": [{"ports": [{"port": "8000", "endPort": 8080,
                                                  "protocol": "TCP"}]}]}],
              "egressDeny": [{"toEntities": ["world"]}]}},
    {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
     "metadata": {"name": "default-deny"},
     "spec": {"endpointSelector": {}, "enableDefaultDeny": {"ingress": True, "egress": True},
              "ingress": [{"fromEntities": []}], "egress": [{"toEntities": []}]}},
]

CLUSTER_NP = {
    "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
    "metadata": {"name": "baseline"},
    "spec": {"tier": "Baseline", "priority": 1000,
             "subject": {"namespaces": {"matchExpressions": [
                 {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["shop"]}]}},
             "ingress": [{"name": "deny", "action": "Deny", "from": [{"namespaces": {}}]}],
             "egress": [
                 {"name": "dns", "action": "Accept",
                  "to": [{"pods": {"namespaceSelector": {"matchLabels": {
                      "kubernetes.io/metadata.name": "kube-system"}},
                      "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}}],
                  "protocols": [{"udp": {"destinationPort": {"number": 53}}},
                                {"tcp": {"destinationPort": {"range": {"start": 8000, "end": 8080}}}},
                                {"destinationNamedPort": "dns"}]},
                 {"name": "deny", "action": "Deny",
                  "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}]}]},
}


@pytest.mark.parametrize("doc", CNP_DOC + [CLUSTER_NP], ids=lambda d: d["metadata"]["name"])
def test_documented_policies_pass(doc) -> None:
    assert crd_problems(doc) == []


def test_k8s_schema_validates_them_too() -> None:
    assert validate_manifests(CNP_DOC + [CLUSTER_NP]) == len(CNP_DOC) + 1


def _broken(doc: dict, change) -> dict:
    out = copy.deepcopy(doc)
    change(out)
    return out


FQDN = CNP_DOC[2]
BAD = {
    "unknown rule field": (_broken(FQDN, lambda d: d["spec"]["egress"][0].__setitem__("toFQDN", [])),
                           "spec.egress.0", "'toFQDN' was unexpected"),
    "port as a number": (_broken(FQDN, lambda d: d["spec"]["egress"][0]["toPorts"][0]["ports"][0]
                                 .__setitem__("port", 443)),
                         "spec.egress.0.toPorts.0.ports.0.port", "not of type 'string'"),
    "matchName and matchPattern in one": (
        _broken(FQDN, lambda d: d["spec"]["egress"][0]["toFQDNs"][0].__setitem__("matchPattern", "*")),
        "spec.egress.0.toFQDNs.0", "valid under each of"),
    "a spec without rules": (_broken(CNP_DOC[0], lambda d: d["spec"].pop("ingress")),
                             "spec", "not valid under any of the given schemas"),
    "both selectors": (_broken(CNP_DOC[0], lambda d: d["spec"].__setitem__("nodeSelector", {})),
                       "spec", "valid under each of"),
    "unknown entity": (_broken(CNP_DOC[1], lambda d: d["spec"]["egress"][0]
                               .__setitem__("toEntities", ["apiserver"])),
                       "spec.egress.0.toEntities.0", "is not one of"),
    "not a CIDR": (_broken(CNP_DOC[3], lambda d: d["spec"]["egress"][0]["toCIDRSet"][0]
                           .__setitem__("cidr", "10.0.0.0")),
                   "spec.egress.0.toCIDRSet.0.cidr", "is not a 'cidr'"),
    "protocol": (_broken(CNP_DOC[3], lambda d: d["spec"]["egress"][0]["toPorts"][0]["ports"][0]
                         .__setitem__("protocol", "ICMP")),
                 "spec.egress.0.toPorts.0.ports.0.protocol", "is not one of"),
    "L7 rules in a deny rule": (_broken(CNP_DOC[3], lambda d: d["spec"]["egressDeny"][0].__setitem__(
        "toPorts", [{"ports": [{"port": "53"}], "rules": {"dns": [{"matchPattern": "*"}]}}])),
        "spec.egressDeny.0.toPorts.0", "'rules' was unexpected"),
    "a CNP without namespace": (_broken(CNP_DOC[0], lambda d: d["metadata"].pop("namespace")),
                                "metadata.namespace", "not a namespace name"),
    "a CCNP with a namespace": (_broken(CNP_DOC[4], lambda d: d["metadata"].__setitem__("namespace", "x")),
                                "metadata.namespace", "cluster-scoped"),
    "a name that is not a DNS subdomain": (
        _broken(CNP_DOC[0], lambda d: d["metadata"].__setitem__("name", "Web_API")),
        "metadata.name", "not a DNS subdomain"),
    "a typo in metadata": (_broken(CNP_DOC[0], lambda d: d["metadata"].__setitem__("lables", {})),
                           "metadata", "'lables' was unexpected"),
    "a bad label value": (_broken(CNP_DOC[0], lambda d: d["metadata"].__setitem__("labels", {"a": "b c"})),
                          "metadata.labels.a", "not a label value"),
    "a log value with a control character": (
        _broken(CNP_DOC[0], lambda d: d["spec"].__setitem__("log", {"value": "a\x07"})),
        "spec.log.value", "control"),
    "port range start after end": (
        _broken(CLUSTER_NP, lambda d: d["spec"]["egress"][0]["protocols"][1]["tcp"]["destinationPort"]
                ["range"].update(start=9000)),
        "spec.egress.0.protocols.1.tcp.destinationPort.range", "Start port must be less than End port"),
    "networks not a CIDR (CEL isCIDR)": (
        _broken(CLUSTER_NP, lambda d: d["spec"]["egress"][1]["to"][1].__setitem__("networks", ["::"])),
        "spec.egress.1.to.1.networks.0", "Invalid CIDR format provided"),
    "networks twice (list-type set)": (
        _broken(CLUSTER_NP, lambda d: d["spec"]["egress"][1]["to"][1].__setitem__(
            "networks", ["0.0.0.0/0", "0.0.0.0/0"])),
        "spec.egress.1.to.1.networks", "listed twice"),
    "two protocols in one entry": (
        _broken(CLUSTER_NP, lambda d: d["spec"]["egress"][0]["protocols"][0].__setitem__(
            "tcp", {"destinationPort": {"number": 53}})),
        "spec.egress.0.protocols.0", "has too many properties"),
    "priority out of range": (_broken(CLUSTER_NP, lambda d: d["spec"].__setitem__("priority", 1001)),
                              "spec.priority", "greater than the maximum"),
    "tier": (_broken(CLUSTER_NP, lambda d: d["spec"].__setitem__("tier", "Developer")),
             "spec.tier", "is not one of"),
    "a rule name over 100 characters": (
        _broken(CLUSTER_NP, lambda d: d["spec"]["egress"][0].__setitem__("name", "x" * 101)),
        "spec.egress.0.name", "is too long"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_broken_policies_fail_where_they_are_broken(name: str) -> None:
    doc, path, message = BAD[name]
    problems = crd_problems(doc)
    assert any(p == path and message in m for p, m in problems), problems
    assert any(p.path == path and message in p.message for p in schema_problems([doc]))


def test_other_kinds_have_no_crd_here() -> None:
    assert crd_problems({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}) is None
    assert crd_problems({"apiVersion": "cilium.io/v3", "kind": "CiliumNetworkPolicy"}) is None
