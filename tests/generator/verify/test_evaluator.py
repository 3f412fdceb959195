"""NetworkPolicy v1 semantics, one construct or edge case per test."""

from __future__ import annotations

import pytest

from generator.resolve.edges import PodView
from generator.verify.evaluator import ADDRESS, HOST_NETWORK, OWN_NODE, SELF, Evaluator
from generator.verify.policy import parse_policy
from recorder.errors import InputError

NAMESPACES = {"shop": {"team": "red"}, "tools": {"team": "blue"}, "batch": {}}

WEB = PodView("shop", "web-1", (("app", "web"),), (("http", "TCP", 8080), ("dns", "UDP", 5353)),
              "10.244.1.10", node="n1")
WEB2 = PodView("shop", "web-2", (("app", "web"),), (("http", "TCP", 8080), ("dns", "UDP", 5353)),
               "10.244.2.10", node="n2")
API = PodView("shop", "api-1", (("app", "api"),), (("http", "TCP", 9090),), "10.244.1.11", node="n1")
CLIENT = PodView("tools", "client-1", (("app", "client"),), (), "10.244.1.12", node="n1")
JOB = PodView("batch", "job-1", (("app", "client"),), (), "10.244.2.13", node="n2")
HOSTNET = PodView("shop", "agent-n1", (("app", "web"),), (("http", "TCP", 8080),), "192.168.0.1",
                  host_network=True, node="n1")
NODES = {"n1": ["192.168.0.1"], "n2": ["192.168.0.2", "fd00::2"]}


def policy(spec: dict, name: str = "p", namespace: str = "shop"):
    return parse_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def ev(*specs: dict, namespace: str = "shop") -> Evaluator:
    return Evaluator([policy(s, f"p{i}", namespace) for i, s in enumerate(specs)], NAMESPACES, NODES)


def allowed(evaluator: Evaluator, src, dst, protocol: str = "TCP", port: int | None = 8080) -> bool:
    return evaluator.check(src, dst, protocol, port).allowed


SEL_WEB = {"matchLabels": {"app": "web"}}
DENY_IN = {"podSelector": SEL_WEB, "policyTypes": ["Ingress"]}
DENY_OUT = {"podSelector": {}, "policyTypes": ["Egress"]}


def ingress(*rules: dict) -> dict:
    return {"podSelector": SEL_WEB, "policyTypes": ["Ingress"], "ingress": list(rules)}


def egress(*rules: dict) -> dict:
    return {"podSelector": {}, "policyTypes": ["Egress"], "egress": list(rules)}


# ------------------------------------------------------------ isolation


def test_no_policy_allows() -> None:
    assert allowed(ev(), CLIENT, WEB)


def test_no_policy_sides_not_isolated() -> None:
    v = ev().check(CLIENT, WEB, "TCP", 8080)
    assert (v.egress.isolated, v.ingress.isolated) == (False, False)


def test_ingress_default_deny() -> None:
    assert not allowed(ev(DENY_IN), CLIENT, WEB)


def test_denied_by_destination_ingress() -> None:
    assert ev(DENY_IN).check(CLIENT, WEB, "TCP", 8080).denied_by == "destination ingress"


def test_selecting_lists_the_isolating_policy() -> None:
    assert ev(DENY_IN).check(CLIENT, WEB, "TCP", 8080).ingress.selecting == ("shop/p0",)


def test_unselected_pod_of_same_namespace_not_isolated() -> None:
    assert allowed(ev(DENY_IN), CLIENT, API)


def test_policy_of_other_namespace_does_not_select() -> None:
    assert allowed(ev({"podSelector": {}, "policyTypes": ["Ingress"]}, namespace="tools"), CLIENT, WEB)


def test_egress_default_deny() -> None:
    assert ev(DENY_OUT).check(WEB, API, "TCP", 8080).denied_by == "source egress"


def test_both_sides_deny() -> None:
    e = ev(DENY_OUT, {"podSelector": {}, "policyTypes": ["Ingress"]})
    assert e.check(WEB, API, "TCP", 9090).denied_by == "source egress and destination ingress"


def test_egress_isolation_of_source_does_not_affect_other_sources() -> None:
    assert allowed(ev(DENY_OUT), CLIENT, WEB)


def test_union_of_policies() -> None:
    e = ev(DENY_IN, ingress({"from": [{"namespaceSelector": {}}]}))
    assert allowed(e, CLIENT, WEB)


def test_allowed_by_names_policy_and_rule_index() -> None:
    e = ev(ingress({"ports": [{"port": 1}]}, {"ports": [{"port": 8080}]}))
    assert e.check(CLIENT, WEB, "TCP", 8080).ingress.allowed_by == (("shop/p0", 1),)


def test_allowed_by_lists_every_matching_rule() -> None:
    e = ev(ingress({}), ingress({"ports": [{"port": 8080}]}))
    assert e.check(CLIENT, WEB, "TCP", 8080).ingress.allowed_by == (("shop/p0", 0), ("shop/p1", 0))


def test_inferred_egress_type_isolates_egress() -> None:
    e = ev({"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]})
    assert not allowed(e, WEB, API, "TCP", 9090)


def test_inferred_types_still_isolate_ingress() -> None:
    e = ev({"podSelector": {}, "egress": [{}]})
    assert not allowed(e, CLIENT, WEB)


def test_empty_egress_list_without_types_does_not_isolate_egress() -> None:
    assert allowed(ev({"podSelector": {}, "egress": []}), WEB, CLIENT)


def test_ingress_section_ignored_without_ingress_type() -> None:
    e = ev({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]})
    assert not e.check(WEB, API, "TCP", 9090).ingress.isolated


def test_egress_section_ignored_without_egress_type() -> None:
    e = ev({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}], "egress": [{"ports": [{"port": 1}]}]})
    assert allowed(e, WEB, CLIENT, "TCP", 8080)


# ------------------------------------------------------------ peers


def test_pod_selector_alone_matches_own_namespace() -> None:
    assert allowed(ev(ingress({"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]})), API, WEB)


def test_pod_selector_alone_excludes_other_namespaces() -> None:
    assert not allowed(ev(ingress({"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]})), CLIENT, WEB)


def test_empty_pod_selector_is_all_pods_of_policy_namespace() -> None:
    assert not allowed(ev(ingress({"from": [{"podSelector": {}}]})), CLIENT, WEB)


def test_namespace_selector_alone_matches_any_pod_there() -> None:
    assert allowed(ev(ingress({"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]})), CLIENT, WEB)


def test_namespace_selector_rejects_other_namespaces() -> None:
    assert not allowed(ev(ingress({"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]})), JOB, WEB)


def test_empty_namespace_selector_is_all_namespaces() -> None:
    assert allowed(ev(ingress({"from": [{"namespaceSelector": {}}]})), JOB, WEB)


def test_metadata_name_label_always_present() -> None:
    e = ev(ingress({"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "batch"}}}]}))
    assert allowed(e, JOB, WEB)


def test_unknown_namespace_gets_metadata_name_label() -> None:
    stray = PodView("unlisted", "x", (), (), "10.244.3.3")
    e = ev(ingress({"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "unlisted"}}}]}))
    assert allowed(e, stray, WEB)


def test_pod_and_namespace_selector_in_one_peer_is_and() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"team": "blue"}}, "podSelector": {"matchLabels": {"app": "other"}}}
    assert not allowed(ev(ingress({"from": [peer]})), CLIENT, WEB)


def test_pod_and_namespace_selector_both_matching() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"team": "blue"}}, "podSelector": {"matchLabels": {"app": "client"}}}
    assert allowed(ev(ingress({"from": [peer]})), CLIENT, WEB)


def test_peers_in_a_list_are_or() -> None:
    peers = [{"podSelector": {"matchLabels": {"app": "nothing"}}}, {"namespaceSelector": {}}]
    assert allowed(ev(ingress({"from": peers})), JOB, WEB)


def test_absent_from_allows_addresses() -> None:
    assert allowed(ev(ingress({"ports": [{"port": 8080}]})), "203.0.113.9", WEB)


def test_empty_from_list_allows_everything() -> None:
    assert allowed(ev(ingress({"from": []})), "203.0.113.9", WEB)


def test_selectors_never_match_an_address() -> None:
    assert not allowed(ev(ingress({"from": [{"namespaceSelector": {}}]})), "203.0.113.9", WEB)


def test_ip_block_matches_address() -> None:
    assert allowed(ev(ingress({"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]})), "203.0.113.9", WEB)


def test_ip_block_except_carves_out() -> None:
    block = {"cidr": "203.0.113.0/24", "except": ["203.0.113.0/28"]}
    assert not allowed(ev(ingress({"from": [{"ipBlock": block}]})), "203.0.113.9", WEB)


def test_ip_block_ipv6() -> None:
    assert allowed(ev(ingress({"from": [{"ipBlock": {"cidr": "2001:db8::/32"}}]})), "2001:db8::7", WEB)


def test_ip_block_ipv6_does_not_match_ipv4() -> None:
    assert not allowed(ev(ingress({"from": [{"ipBlock": {"cidr": "::/0"}}]})), "203.0.113.9", WEB)


def test_ip_block_egress_to_address() -> None:
    assert allowed(ev(egress({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})), WEB, "8.8.8.8", "TCP", 443)


def test_ip_block_matches_pod_ip() -> None:
    # Documented choice: common CNIs match ipBlock against pod IPs too.
    assert allowed(ev(ingress({"from": [{"ipBlock": {"cidr": "10.244.1.0/24"}}]})), CLIENT, WEB)


def test_ip_block_does_not_match_pod_without_ip() -> None:
    no_ip = PodView("tools", "pending", (("app", "client"),), ())
    assert not allowed(ev(ingress({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})), no_ip, WEB)


# ------------------------------------------------------------ ports


def test_protocol_defaults_to_tcp_so_udp_denied() -> None:
    assert not allowed(ev(ingress({"ports": [{"port": 8080}]})), CLIENT, WEB, "UDP", 8080)


def test_numeric_port_mismatch_denied() -> None:
    assert not allowed(ev(ingress({"ports": [{"port": 8080}]})), CLIENT, WEB, "TCP", 8081)


def test_port_entry_without_port_allows_all_ports_of_protocol() -> None:
    assert allowed(ev(ingress({"ports": [{"protocol": "UDP"}]})), CLIENT, WEB, "UDP", 40000)


def test_port_entry_without_port_keeps_protocol() -> None:
    assert not allowed(ev(ingress({"ports": [{"protocol": "UDP"}]})), CLIENT, WEB, "TCP", 40000)


def test_sctp_port() -> None:
    assert allowed(ev(ingress({"ports": [{"protocol": "SCTP", "port": 3868}]})), CLIENT, WEB, "SCTP", 3868)


@pytest.mark.parametrize("port, expected", [(29999, False), (30000, True), (32767, True), (32768, False)])
def test_end_port_range_is_inclusive(port: int, expected: bool) -> None:
    assert allowed(ev(ingress({"ports": [{"port": 30000, "endPort": 32767}]})), CLIENT, WEB, "TCP", port) is expected


def test_empty_ports_allow_every_protocol() -> None:
    assert allowed(ev(ingress({"from": [{"namespaceSelector": {}}], "ports": []})), CLIENT, WEB, "SCTP", 9)


def test_portless_protocol_matches_rule_without_ports() -> None:
    assert allowed(ev(ingress({})), CLIENT, WEB, "ICMP", None)


def test_portless_protocol_does_not_match_port_rule() -> None:
    assert not allowed(ev(ingress({"ports": [{"port": 8080}]})), CLIENT, WEB, "ICMP", None)


def test_lower_case_protocol_accepted() -> None:
    assert allowed(ev(ingress({"ports": [{"port": 8080}]})), CLIENT, WEB, "tcp", 8080)


def test_named_port_ingress_resolves_on_selected_pod() -> None:
    assert allowed(ev(ingress({"ports": [{"port": "http"}]})), CLIENT, WEB, "TCP", 8080)


def test_named_port_ingress_other_number_denied() -> None:
    assert not allowed(ev(ingress({"ports": [{"port": "http"}]})), CLIENT, WEB, "TCP", 9090)


def test_named_port_needs_matching_protocol() -> None:
    assert not allowed(ev(ingress({"ports": [{"port": "dns", "protocol": "TCP"}]})), CLIENT, WEB, "TCP", 5353)


def test_named_port_with_its_protocol() -> None:
    assert allowed(ev(ingress({"ports": [{"port": "dns", "protocol": "UDP"}]})), CLIENT, WEB, "UDP", 5353)


def test_named_port_egress_resolves_on_destination() -> None:
    # WEB's http is 8080, API's http is 9090: the destination's number counts.
    assert allowed(ev(egress({"ports": [{"port": "http"}]})), WEB, API, "TCP", 9090)


def test_named_port_egress_ignores_source_number() -> None:
    assert not allowed(ev(egress({"ports": [{"port": "http"}]})), WEB, API, "TCP", 8080)


def test_named_port_never_matches_an_address() -> None:
    assert not allowed(ev(egress({"ports": [{"port": "http"}]})), WEB, "203.0.113.9", "TCP", 8080)


def test_named_port_missing_on_destination() -> None:
    assert not allowed(ev(egress({"ports": [{"port": "metrics"}]})), WEB, API, "TCP", 9090)


# ------------------------------------------------------------ nodes, hostNetwork, self


def test_host_network_pod_never_isolated() -> None:
    v = ev(DENY_IN).check(CLIENT, HOSTNET, "TCP", 8080)
    assert (v.allowed, v.ingress.endpoint) == (True, HOST_NETWORK)


def test_host_network_source_not_matched_by_pod_selector() -> None:
    # HOSTNET is in namespace shop with app=web, but runs on n1 and WEB2 on n2.
    assert not allowed(ev(ingress({"from": [{"podSelector": {}}]})), HOSTNET, WEB2)


def test_host_network_source_matched_by_ip_block() -> None:
    assert allowed(ev(ingress({"from": [{"ipBlock": {"cidr": "192.168.0.0/24"}}]})), HOSTNET, WEB2)


def test_host_network_destination_only_ip_block_on_egress() -> None:
    assert not allowed(ev(egress({"to": [{"podSelector": {}}]})), WEB2, HOSTNET)


def test_host_network_source_on_same_node_exempt() -> None:
    v = ev(DENY_IN).check(HOSTNET, WEB, "TCP", 8080)
    assert (v.allowed, v.ingress.exemption) == (True, OWN_NODE)


def test_own_node_address_always_allowed_in() -> None:
    assert allowed(ev(DENY_IN), "192.168.0.1", WEB)


def test_own_node_ipv6_address_allowed_in() -> None:
    assert allowed(ev(DENY_IN), "fd00::2", WEB2)


def test_other_node_address_denied() -> None:
    assert not allowed(ev(DENY_IN), "192.168.0.2", WEB)


def test_other_node_allowed_by_ip_block() -> None:
    assert allowed(ev(ingress({"from": [{"ipBlock": {"cidr": "192.168.0.0/24"}}]})), "192.168.0.2", WEB)


def test_pod_on_same_node_is_not_node_traffic() -> None:
    assert not allowed(ev(DENY_IN), CLIENT, WEB)


def test_egress_to_own_node_not_exempt() -> None:
    assert not allowed(ev(DENY_OUT), WEB, "192.168.0.1", "TCP", 10250)


def test_pod_cannot_block_itself() -> None:
    v = ev(DENY_IN, DENY_OUT).check(WEB, WEB, "TCP", 8080)
    assert (v.allowed, v.ingress.exemption, v.egress.exemption) == (True, SELF, SELF)


def test_address_source_is_never_isolated() -> None:
    v = ev({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}).check("203.0.113.9", WEB, "TCP", 8080)
    assert (v.egress.isolated, v.egress.endpoint) == (False, ADDRESS)


# ------------------------------------------------------------ caching must not merge different pods


def test_same_labels_different_ip_block_membership() -> None:
    e = ev(ingress({"from": [{"ipBlock": {"cidr": "10.244.1.0/24"}}]}))
    twin = PodView("tools", "client-2", CLIENT.labels, (), "10.244.9.9")
    assert [allowed(e, CLIENT, WEB), allowed(e, twin, WEB)] == [True, False]


def test_same_labels_different_named_ports() -> None:
    e = ev(ingress({"ports": [{"port": "http"}]}))
    other = PodView("shop", "web-3", WEB.labels, (("http", "TCP", 7000),), "10.244.2.30")
    assert [allowed(e, CLIENT, WEB, "TCP", 7000), allowed(e, CLIENT, other, "TCP", 7000)] == [False, True]


def test_same_labels_different_node() -> None:
    e = ev(DENY_IN)
    assert [allowed(e, "192.168.0.1", WEB), allowed(e, "192.168.0.1", WEB2)] == [True, False]


# ------------------------------------------------------------ reasons and API


def test_reason_names_side_and_policies() -> None:
    reason = ev(DENY_IN).check(CLIENT, WEB, "TCP", 8080).reason
    assert reason == ("denied by destination ingress: isolated by shop/p0; "
                      "no ingress rule of these allows TCP/8080 from the source")


def test_reason_for_allowed_names_rule() -> None:
    reason = ev(ingress({"ports": [{"port": 8080}]})).check(CLIENT, WEB, "TCP", 8080).reason
    assert "destination ingress: isolated by shop/p0; allowed by shop/p0 ingress[0]" in reason


def test_reason_for_both_sides() -> None:
    e = ev(DENY_OUT, {"podSelector": {}, "policyTypes": ["Ingress"]})
    assert e.check(WEB, API, "UDP", 53).reason.startswith(
        "denied by source egress and destination ingress: source egress: isolated by shop/p0;")


def test_selecting_api() -> None:
    assert ev(DENY_IN, DENY_OUT).selecting(WEB) == (("shop/p0",), ("shop/p1",))


def test_invalid_address_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not an IP address"):
        ev().check("node-1", WEB, "TCP", 80)


def test_from_inventory_uses_namespace_labels_and_nodes() -> None:
    from generator.inventory.model import Inventory, Namespace, Node

    inv = Inventory(namespaces=(Namespace("tools", (("team", "blue"),)),), nodes=(Node("n1", ("192.168.0.1",)),))
    e = Evaluator.from_inventory([policy(ingress({"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}))],
                                 inv)
    assert [allowed(e, CLIENT, WEB), allowed(e, "192.168.0.1", WEB), allowed(e, JOB, WEB)] == [True, True, False]
