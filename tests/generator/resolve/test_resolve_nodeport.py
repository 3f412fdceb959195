"""A capture on a node's uplink sees outside traffic to <node address>:<nodePort>,
before kube-proxy's DNAT: it is resolved to the Service's backends on their targetPort,
as a ClusterIP is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import k8s_objects as k
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.resolve.identity import resolve
from recorder.schema import FlowRecord

NODE_IP = "192.168.0.11"


def _index(tmp_path: Path, svc_type: str) -> InventoryIndex:
    objs = k.base_cluster(node_ip=NODE_IP, namespaces=["shop"])
    pods = k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5", "10.244.1.6"],
                                  ports=[k.container_port(8080, "http")])
    svc = k.service("web", "shop", selector={"app": "web"}, type=svc_type,
                    ports=[k.service_port(80, "http", name="http", node_port=30080)])
    objs += pods + [svc] + k.endpointslices_for(svc, [p for p in pods if p["kind"] == "Pod"])
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(k.kube_list(objs)))
    return InventoryIndex(load_snapshot([str(path)]).inventory)


def _flow(dst: str, port: int, protocol: str = "TCP") -> FlowRecord:
    return FlowRecord(first_seen=10**18, last_seen=10**18, protocol=protocol,
                      src_ip="203.0.113.7", dst_ip=dst, dst_port=port, src_port=50000,
                      source_format="pcap", input="uplink.pcap")


@pytest.mark.parametrize("svc_type", ["NodePort", "LoadBalancer"])
def test_a_node_port_is_its_services_backends(tmp_path: Path, svc_type: str) -> None:
    result = resolve([_flow(NODE_IP, 30080)], _index(tmp_path, svc_type))
    assert not result.unresolved
    assert {(c.dst.workload_name, c.port, c.service, c.service_port, c.src.kind)
            for c in result.connections} == {("web", 8080, ("shop", "web"), 30080, "external")}
    assert len(result.connections) == 2  # either backend may have served it


def test_other_ports_and_a_clusterip_service_stay_the_node(tmp_path: Path) -> None:
    for index, flow in ((_index(tmp_path, "NodePort"), _flow(NODE_IP, 30081)),
                        (_index(tmp_path, "NodePort"), _flow(NODE_IP, 30080, "UDP")),
                        (_index(tmp_path, "ClusterIP"), _flow(NODE_IP, 30080))):
        [c] = resolve([flow], index).connections
        assert c.dst.kind == "node" and c.service is None
