"""`verify --unused` on Cilium policies: per allow rule, which L3 alternative and port
each observed connection matched on its side; what none matched is listed."""

from __future__ import annotations

from generator.inventory.model import Inventory, Namespace, Pod
from generator.verify.cilium_policy import parse_cilium_policy
from generator.verify.combined import CombinedEvaluator
from generator.verify.names import NameBinding, NameBindings
from generator.verify.usage import rule_usage

from test_usage import ADMIN, API, NAMESPACES, NODES, WEB, connection


def cnp(spec: dict, name: str = "api", namespace: str = "shop", kind: str = "CiliumNetworkPolicy"):
    meta = {"name": name} | ({"namespace": namespace} if kind == "CiliumNetworkPolicy" else {})
    return parse_cilium_policy({"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta,
                                "spec": spec})


API_CNP = {
    "endpointSelector": {"matchLabels": {"app": "api"}},
    "ingress": [
        {"fromEndpoints": [{"matchLabels": {"app": "web"}},
                           {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "tools",
                                            "app": "admin"}}],
         "toPorts": [{"ports": [{"port": "9090", "protocol": "TCP"},
                                {"port": "http", "protocol": "TCP"},
                                {"port": "9443", "protocol": "TCP"}]}]},
        {"fromEntities": []},  # admits nothing: not an entry
        {"fromEntities": ["host", "remote-node"]},  # every port
    ],
    "egress": [
        {"toFQDNs": [{"matchName": "api.example.com"}, {"matchPattern": "*.s3.example.com"}],
         "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
        {"toServices": [{"k8sService": {"serviceName": "db", "namespace": "shop"}}]},
    ],
    "egressDeny": [{"toCIDR": ["198.51.100.0/24"]}],  # deny rules are not entries
}


def _usage(policies, connections, bindings=None, inventory=None):
    ev = CombinedEvaluator((), policies, (), NAMESPACES, NODES, (), bindings)
    return rule_usage(connections, (), ev, inventory, policies)


def test_cilium_entries_count_their_own_connections() -> None:
    policies = cnp(API_CNP)
    bindings = NameBindings([NameBinding("b.s3.example.com", "203.0.113.5", 0, 1000)])
    result = _usage(policies, [
        connection(WEB, API, 9090, count=3, last_seen=50),
        connection(WEB, API, 9090, count=2, last_seen=70),
        connection(API, "203.0.113.5", 443, count=4),
        connection("192.168.0.1", API, 8080),  # the node: entity host
    ], bindings)
    used = {(e.rule, e.direction, e.peer, e.port): (e.connections, e.last_seen)
            for r in result.rules for e in r.entries if e.used}
    # TCP/9090 and the named port http (9090 on API) both admit web's connections
    assert used == {(0, "ingress", 0, 0): (5, 70), (0, "ingress", 0, 1): (5, 70),
                    (2, "ingress", 0, None): (1, 100), (0, "egress", 1, 0): (4, 100)}
    refs = [r.ref for r in result.rules]
    # the rule that admits nothing is not listed; the unjudged one is, with why
    assert refs == ["CiliumNetworkPolicy shop/api ingress[0]", "CiliumNetworkPolicy shop/api ingress[2]",
                    "CiliumNetworkPolicy shop/api egress[0]", "CiliumNetworkPolicy shop/api egress[1]"]
    [services] = result.unused_rules
    assert services.ref.endswith("egress[1]") and "toServices not judged" in services.note
    unused = {(e.rule, e.direction, e.peer_text, e.port_text) for e in result.unused_entries}
    assert (0, "ingress", "endpoints app=admin in namespace tools", "TCP/9090") in unused
    assert (0, "ingress", "endpoints app=web in namespace shop", "TCP/9443") in unused
    assert (0, "egress", "DNS name api.example.com", "TCP/443") in unused
    assert (2, "ingress", "entity remote-node", "every port") in unused


def test_a_policy_that_selects_no_pod_says_so() -> None:
    policies = cnp({"endpointSelector": {"matchLabels": {"app": "gone"}},
                    "egress": [{"toEntities": ["world"]}]}, name="gone")
    inv = Inventory(namespaces=(Namespace("shop"), Namespace("tools")),
                    pods=(Pod("shop", "api-1", labels=(("app", "api"),)),))
    [rule] = _usage(policies, [], inventory=inv).rules
    assert rule.note == "the policy selects no pod in the snapshot" and not rule.used
    ccnp = cnp({"endpointSelector": {"matchLabels": {"app": "api"}},
                "egress": [{"toEntities": ["world"]}]}, name="all-api", kind="CiliumClusterwideNetworkPolicy")
    [rule] = _usage(ccnp, [connection(API, "198.51.100.7", 443)], inventory=inv).rules
    assert rule.note is None and rule.used and rule.selects == "endpoints app=api in every namespace"


def test_admin_is_matched_by_its_namespaced_selector() -> None:
    result = _usage(cnp(API_CNP), [connection(ADMIN, API, 9443)])
    used = [(e.rule, e.peer, e.port) for r in result.rules for e in r.entries if e.used]
    assert used == [(0, 1, 2)]
