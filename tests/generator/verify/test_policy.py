"""Parsing, validating and loading NetworkPolicy objects."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml

from generator.verify.policy import (
    IPBlock,
    PolicyPeer,
    PolicyPort,
    load_policies,
    parse_policy,
    parse_policies,
)
from recorder.errors import InputError


def np(spec: dict, name: str = "p", namespace: str | None = "shop", **extra: object) -> dict:
    meta: dict = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec, **extra}


ALL = {"podSelector": {}}


# ------------------------------------------------------------ policyTypes


def test_types_omitted_means_ingress() -> None:
    assert parse_policy(np({**ALL, "ingress": [{}]})).policy_types == ("Ingress",)


def test_types_omitted_with_egress_rules_adds_egress() -> None:
    assert parse_policy(np({**ALL, "egress": [{}]})).policy_types == ("Ingress", "Egress")


def test_types_omitted_with_empty_egress_list_is_ingress_only() -> None:
    # SetDefaults_NetworkPolicy tests len(spec.Egress) != 0
    assert parse_policy(np({**ALL, "egress": []})).policy_types == ("Ingress",)


def test_types_omitted_is_marked_inferred() -> None:
    assert parse_policy(np(ALL)).policy_types_explicit is False


def test_explicit_empty_types_are_inferred_like_omitted() -> None:
    assert parse_policy(np({**ALL, "policyTypes": [], "egress": [{}]})).policy_types == ("Ingress", "Egress")


def test_explicit_egress_only() -> None:
    assert parse_policy(np({**ALL, "policyTypes": ["Egress"]})).policy_types == ("Egress",)


def test_explicit_types_any_order_normalised() -> None:
    assert parse_policy(np({**ALL, "policyTypes": ["Egress", "Ingress"]})).policy_types == ("Ingress", "Egress")


def test_ingress_section_kept_even_when_type_not_listed() -> None:
    p = parse_policy(np({**ALL, "policyTypes": ["Egress"], "ingress": [{}]}))
    assert (p.policy_types, len(p.ingress)) == (("Egress",), 1)


# ------------------------------------------------------------ rules, peers, ports


def test_absent_from_is_no_peer_list() -> None:
    assert parse_policy(np({**ALL, "ingress": [{"ports": [{"port": 80}]}]})).ingress[0].peers == ()


def test_empty_from_is_no_peer_list() -> None:
    assert parse_policy(np({**ALL, "ingress": [{"from": []}]})).ingress[0].peers == ()


def test_null_rule_is_an_allow_all_rule() -> None:
    rule = parse_policy(np({**ALL, "ingress": [None]})).ingress[0]
    assert (rule.peers, rule.ports) == ((), ())


def test_protocol_defaults_to_tcp() -> None:
    assert parse_policy(np({**ALL, "ingress": [{"ports": [{"port": 80}]}]})).ingress[0].ports[0].protocol == "TCP"


def test_named_port_kept_as_name() -> None:
    port = parse_policy(np({**ALL, "ingress": [{"ports": [{"port": "http", "protocol": "UDP"}]}]})).ingress[0].ports[0]
    assert port == PolicyPort("UDP", "http", None)


def test_end_port_range() -> None:
    port = parse_policy(np({**ALL, "egress": [{"ports": [{"port": 30000, "endPort": 32767}]}]})).egress[0].ports[0]
    assert port == PolicyPort("TCP", 30000, 32767)


def test_port_entry_without_port_is_every_port() -> None:
    assert parse_policy(np({**ALL, "egress": [{"ports": [{"protocol": "UDP"}]}]})).egress[0].ports[0].port is None


def test_pod_and_namespace_selector_in_one_peer() -> None:
    peer = parse_policy(np({**ALL, "ingress": [{"from": [
        {"podSelector": {"matchLabels": {"app": "a"}}, "namespaceSelector": {}}]}]})).ingress[0].peers[0]
    assert peer.namespace_selector is not None and peer.namespace_selector.is_empty() and peer.pod_selector is not None


def test_null_selector_in_peer_counts_as_absent() -> None:
    peer = parse_policy(np({**ALL, "ingress": [{"from": [
        {"podSelector": None, "namespaceSelector": {}}]}]})).ingress[0].peers[0]
    assert peer.pod_selector is None


def test_ip_block_with_except() -> None:
    peer = parse_policy(np({**ALL, "egress": [{"to": [
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]})).egress[0].peers[0]
    assert peer == PolicyPeer(ip_block=IPBlock.make("10.0.0.0/8", ["10.1.0.0/16"]))


def test_ip_block_host_bits_accepted_like_the_api_server() -> None:
    peer = parse_policy(np({**ALL, "egress": [{"to": [{"ipBlock": {"cidr": "10.1.2.3/8"}}]}]})).egress[0].peers[0]
    assert peer.ip_block is not None and peer.ip_block.cidr == "10.0.0.0/8"


def test_ipv6_block() -> None:
    peer = parse_policy(np({**ALL, "egress": [{"to": [
        {"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}}]}]})).egress[0].peers[0]
    assert peer.ip_block is not None and peer.ip_block.excepts == ("2001:db8:1::/48",)


def test_policy_id() -> None:
    assert parse_policy(np(ALL, name="web", namespace="shop")).id == "shop/web"


# ------------------------------------------------------------ validation errors


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({**ALL, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}]}, "not a valid CIDR"),
        ({**ALL, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.1"}}]}]}, "is not a CIDR"),
        ({**ALL, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}]},
         "strict subset"),
        ({**ALL, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}]}]},
         "strict subset"),
        ({**ALL, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["fd00::/8"]}}]}]},
         "strict subset"),
        ({**ALL, "egress": [{"ports": [{"port": "http", "endPort": 90}]}]}, "cannot be used with the named port"),
        ({**ALL, "egress": [{"ports": [{"endPort": 90}]}]}, "needs a numeric port"),
        ({**ALL, "egress": [{"ports": [{"port": 100, "endPort": 90}]}]}, "must not be smaller than port 100"),
        ({**ALL, "egress": [{"ports": [{"port": 80, "endPort": "90"}]}]}, "endPort must be a number"),
        ({**ALL, "egress": [{"ports": [{"port": "80"}]}]}, "quoted number"),
        ({**ALL, "egress": [{"ports": [{"port": 0}]}]}, "out of range"),
        ({**ALL, "egress": [{"ports": [{"port": "Http_Port"}]}]}, "not a valid port name"),
        ({**ALL, "egress": [{"ports": [{"port": 53, "protocol": "udp"}]}]}, "use TCP, UDP or SCTP"),
        ({**ALL, "egress": [{"ports": [{"port": 53, "protocol": "ICMP"}]}]}, "use TCP, UDP or SCTP"),
        ({**ALL, "ingress": [{"form": [{"podSelector": {}}]}]}, "unknown field(s) form"),
        ({**ALL, "ingress": [{"from": [{}]}]}, "peer needs podSelector"),
        ({**ALL, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
         "combines ipBlock with a selector"),
        ({**ALL, "ingress": [{"from": [{"podSelector": {"matchExpressions": [
            {"key": "app", "operator": "Equals", "values": ["a"]}]}}]}]}, "unknown operator 'Equals'"),
        ({**ALL, "policyTypes": ["ingress"]}, "only types are Ingress and Egress"),
        ({**ALL, "policyTypes": ["Ingress", "Egress", "Ingress"]}, "more than two"),
        ({"ingress": [{}]}, "spec.podSelector is missing"),
        ({**ALL, "ingress": {"from": []}}, "spec.ingress must be a list"),
    ],
)
def test_invalid_policy_is_rejected_with_a_fix(spec: dict, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        parse_policy(np(spec))
    assert fragment in str(err.value)


def test_error_names_the_policy() -> None:
    with pytest.raises(InputError, match="NetworkPolicy shop/p: spec.ingress"):
        parse_policy(np({**ALL, "ingress": [{"form": []}]}))


def test_old_api_version_rejected_with_hint() -> None:
    obj = np(ALL)
    obj["apiVersion"] = "extensions/v1beta1"
    with pytest.raises(InputError, match="removed in Kubernetes 1.16"):
        parse_policy(obj)


def test_missing_name_rejected() -> None:
    obj = np(ALL)
    del obj["metadata"]["name"]
    with pytest.raises(InputError, match="metadata.name is missing"):
        parse_policy(obj)


def test_parse_policies_of_inventory_objects() -> None:
    assert [p.id for p in parse_policies([np(ALL, name="a"), np(ALL, name="b")])] == ["shop/a", "shop/b"]


# ------------------------------------------------------------ loading files


def write(path: Path, docs: list) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_load_multi_document_file(tmp_path: Path) -> None:
    f = write(tmp_path / "p.yaml", [np(ALL, name="a"), np(ALL, name="b")])
    assert [p.name for p in load_policies([str(f)]).policies] == ["a", "b"]


def test_load_list_kind(tmp_path: Path) -> None:
    f = write(tmp_path / "l.yaml", [{"apiVersion": "v1", "kind": "List", "items": [np(ALL, name="a")]}])
    assert [p.name for p in load_policies([str(f)]).policies] == ["a"]


def test_load_network_policy_list_items_without_kind(tmp_path: Path) -> None:
    item = {"metadata": {"name": "a", "namespace": "x"}, "spec": ALL}
    f = write(tmp_path / "l.yaml", [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList",
                                     "items": [item]}])
    assert [p.id for p in load_policies([str(f)]).policies] == ["x/a"]


def test_load_json(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [np(ALL, name="a")]}, indent="\t"))
    assert [p.name for p in load_policies([str(f)]).policies] == ["a"]


def test_load_gzip(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml.gz"
    f.write_bytes(gzip.compress(yaml.safe_dump(np(ALL, name="a")).encode()))
    assert [p.name for p in load_policies([str(tmp_path)]).policies] == ["a"]


def test_directory_skips_and_counts_other_documents(tmp_path: Path) -> None:
    write(tmp_path / "np.yaml", [np(ALL, name="a")])
    write(tmp_path / "kustomization.yaml", [{"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                              "kind": "Kustomization", "resources": ["np.yaml"]}])
    write(tmp_path / "anp.yaml", [{"apiVersion": "policy.networking.k8s.io/v1alpha1",
                                   "kind": "AdminNetworkPolicy", "metadata": {"name": "deny"}}])
    (tmp_path / "README.md").write_text("# policies\n")
    (tmp_path / "report.json").write_text('{"policies": [], "verification": {}}')
    loaded = load_policies([str(tmp_path)])
    # objects of other kinds are skipped and counted; files without any object (reports,
    # kustomize configuration, other file types) are ignored
    assert [s.reason for s in loaded.skipped] == ["not-a-networkpolicy:AdminNetworkPolicy"]
    assert sorted(Path(f).name for f in loaded.ignored) == [
        "README.md", "kustomization.yaml", "report.json"]
    assert sorted(Path(f).name for f in loaded.files) == ["anp.yaml", "np.yaml"]


def test_a_file_named_directly_is_always_read(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text('{"policies": []}')
    loaded = load_policies([str(report)])
    assert [s.reason for s in loaded.skipped] == ["not-a-networkpolicy:?"] and not loaded.ignored


def test_directory_walk_is_sorted_and_recursive(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "b.yaml", [np(ALL, name="b")])
    write(tmp_path / "a.yaml", [np(ALL, name="a")])
    assert [p.name for p in load_policies([str(tmp_path)]).policies] == ["a", "b"]


def test_error_points_at_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\n"
        "spec:\n  podSelector: {}\n  egress:\n  - ports:\n    - port: http\n      endPort: 90\n"
    )
    with pytest.raises(InputError) as err:
        load_policies([str(f)])
    assert str(err.value).startswith(f"{f}:8: NetworkPolicy x/p: spec.egress[0].ports[0].endPort")


def test_missing_namespace_defaults_with_warning(tmp_path: Path) -> None:
    f = write(tmp_path / "p.yaml", [np(ALL, namespace=None)])
    loaded = load_policies([str(f)])
    assert (loaded.policies[0].namespace, len(loaded.warnings)) == ("default", 1)


def test_duplicate_policy_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", [np(ALL, name="same")])
    write(tmp_path / "b.yaml", [np(ALL, name="same")])
    with pytest.raises(InputError, match="defined twice"):
        load_policies([str(tmp_path)])


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("apiVersion: v1\nkind: [\n")
    with pytest.raises(InputError, match=rf"^{f}:3: not valid YAML or JSON"):
        load_policies([str(f)])


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_policies([str(tmp_path / "nope.yaml")])


def test_empty_documents_are_not_counted(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("---\n" + yaml.safe_dump(np(ALL)) + "---\n")
    loaded = load_policies([str(f)])
    assert (len(loaded.policies), loaded.skipped) == (1, ())


def test_calico_network_policy_is_skipped_not_parsed(tmp_path: Path) -> None:
    calico = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy", "metadata": {"name": "c"}, "spec": {}}
    loaded = load_policies(str(write(tmp_path / "c.yaml", [calico])))
    assert [s.reason for s in loaded.skipped] == ["other-networkpolicy-api:projectcalico.org"]


def test_python_client_snake_case_refused_with_hint() -> None:
    with pytest.raises(InputError, match="snake_case field.*pod_selector.*kubectl get networkpolicies -o yaml"):
        parse_policy(np({"pod_selector": {}, "policy_types": ["Ingress"]}))
