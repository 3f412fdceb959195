"""Traffic from the API server is labelled as the API server, not as a node or the
outside; the same node address's other traffic (kubelet probes) stays a node's."""

from __future__ import annotations

import json
from pathlib import Path

import k8s_objects as k
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.resolve.apiserver import label_apiserver
from generator.resolve.edges import APISERVER, EXTERNAL, NODE, WORKLOAD, Connection, Peer
from generator.resolve.identity import ResolveResult

HOOK = Peer(WORKLOAD, "admission", "Deployment", "hook")


def _index(tmp_path: Path, cidrs: tuple[str, ...] = ()) -> InventoryIndex:
    objs = k.base_cluster(namespaces=["admission"])
    pods = k.deployment_with_pods("hook", "admission", {"app": "hook"}, ["10.244.1.20"],
                                  ports=[k.container_port(9443, "https"),
                                         k.container_port(8081, "health")])
    svc = k.service("hook", "admission", selector={"app": "hook"}, cluster_ip="10.96.7.7",
                    ports=[k.service_port(443, "https")])
    objs += pods + [svc] + k.endpointslices_for(svc, [o for o in pods if o["kind"] == "Pod"])
    objs.append(k.webhook_configuration("ValidatingWebhookConfiguration", "hook", [
        k.webhook("hook.example", service=k.service_reference("admission", "hook"))]))
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(k.kube_list(objs)))
    return InventoryIndex(load_snapshot([str(path)]).inventory, cidrs)


def _conn(src: Peer, port: int) -> Connection:
    return Connection(src, HOOK, "TCP", port, src.ip or "", "10.244.1.20", None, None, 3,
                      1_000, 2_000)


def test_the_declared_call_from_a_control_plane_node_is_the_api_server(tmp_path: Path) -> None:
    node = Peer(NODE, ip="192.168.0.11", node_name="node-1")
    resolved = ResolveResult((_conn(node, 9443), _conn(node, 8081)), (), ())
    labelled = label_apiserver(resolved, _index(tmp_path))
    call, probe = labelled.connections
    assert call.src == Peer(APISERVER, ip="192.168.0.11", node_name="node-1")
    assert call.src.display() == "kube-apiserver 192.168.0.11 (node node-1)"
    assert probe.src == node  # the kubelet's probe from the same address
    assert labelled.stats["connections-from-the-api-server"] == 1


def test_an_apiserver_cidr_address_is_the_api_server_for_any_traffic(tmp_path: Path) -> None:
    outside = Peer(EXTERNAL, ip="172.16.0.5")
    node = Peer(NODE, ip="192.168.0.11", node_name="node-1")
    resolved = ResolveResult((_conn(outside, 8081), _conn(node, 9443)), (), ())
    labelled = label_apiserver(resolved, _index(tmp_path, ("172.16.0.0/28",)))
    assert labelled.connections[0].src == Peer(APISERVER, ip="172.16.0.5")
    # the EndpointSlice's address is not the API server's once --apiserver-cidr is given
    assert labelled.connections[1].src == node


def test_nothing_to_label_returns_the_result_unchanged(tmp_path: Path) -> None:
    resolved = ResolveResult((_conn(Peer(EXTERNAL, ip="203.0.113.9"), 9443),), (), ())
    assert label_apiserver(resolved, _index(tmp_path)) is resolved
