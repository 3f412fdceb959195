"""Outside traffic through a NodePort/LoadBalancer Service with externalTrafficPolicy:
Cluster reaches the pod SNATed to a node's address: the rules written from what was
observed may drop it, and the report says so (generator/resolve/external_snat.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import k8s_objects as k
from generator.resolve.edges import EXTERNAL, NODE, WORKLOAD, Edge, Peer
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.synthesize.synthesis import SynthesisOptions, synthesize

NODES = {"node-a": "192.168.0.11", "node-b": "192.168.0.12", "node-c": "192.168.0.13"}
WEB = Peer(WORKLOAD, "shop", "Deployment", "web")


def _index(tmp_path: Path, svc_type: str, policy: str | None) -> InventoryIndex:
    objs = k.base_cluster(node_name="node-a", node_ip=NODES["node-a"], namespaces=["shop"])
    objs += [k.node(n, ip) for n, ip in NODES.items() if n != "node-a"]
    pods = k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5", "10.244.1.6"],
                                  node="node-a", ports=[k.container_port(8080, "http")])
    svc = k.service("web", "shop", selector={"app": "web"}, type=svc_type,
                    external_traffic_policy=policy,
                    ports=[k.service_port(80, "http", name="http", node_port=30080)])
    objs += pods + [svc] + k.endpointslices_for(svc, [p for p in pods if p["kind"] == "Pod"])
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(k.kube_list(objs)))
    return InventoryIndex(load_snapshot([str(path)]).inventory)


def _edge(src: Peer, port: int = 8080) -> Edge:
    return Edge(src, WEB, "TCP", port, 3, 0, 10)


def _warnings(index: InventoryIndex, *edges: Edge) -> list[str]:
    result = synthesize(edges, index, SynthesisOptions(namespaces=("shop",)))
    return [w for w in result.warnings if "externalTrafficPolicy" in w]


@pytest.mark.parametrize("svc_type", ["NodePort", "LoadBalancer"])
def test_seen_from_some_nodes_only(tmp_path: Path, svc_type: str) -> None:
    index = _index(tmp_path, svc_type, None)  # Cluster is the default
    [warning] = _warnings(index, _edge(Peer(NODE, ip=NODES["node-b"], node_name="node-b")))
    assert warning.startswith(f"shop/web is a {svc_type} Service with externalTrafficPolicy: "
                              "Cluster: traffic from outside reaches shop/Deployment/web on "
                              "TCP/8080 SNATed to the address of whichever node took it")
    # node-a runs every pod: its SNAT meets the pods' own node, which is always allowed
    assert "seen from 1 node address(es)" in warning
    assert "traffic through 192.168.0.13 will be dropped" in warning


def test_client_addresses_from_before_the_snat(tmp_path: Path) -> None:
    index = _index(tmp_path, "NodePort", "Cluster")
    [warning] = _warnings(index, _edge(Peer(EXTERNAL, ip="203.0.113.7")))
    assert "the rule allows the client address(es) seen (203.0.113.7)" in warning


def test_no_warning_when_nothing_can_be_lost(tmp_path: Path) -> None:
    every_node = [_edge(Peer(NODE, ip=ip, node_name=n)) for n, ip in NODES.items()
                  if n != "node-a"]  # node-a: the pods' own node
    assert _warnings(_index(tmp_path, "NodePort", "Cluster"), *every_node) == []
    # Local keeps the client's address; a ClusterIP Service is not reached from outside;
    # another port is not the Service's
    client = _edge(Peer(EXTERNAL, ip="203.0.113.7"))
    assert _warnings(_index(tmp_path, "NodePort", "Local"), client) == []
    assert _warnings(_index(tmp_path, "ClusterIP", None), client) == []
    assert _warnings(_index(tmp_path, "NodePort", "Cluster"),
                     _edge(Peer(EXTERNAL, ip="203.0.113.7"), port=9090)) == []
