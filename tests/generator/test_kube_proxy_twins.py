"""kube-proxy mode seen by two nodes: the client's node sees the connection addressed to
the ClusterIP:servicePort, the backend's node sees it addressed to the backend pod on
its targetPort, and neither record names the other address. With the cluster known,
it is one connection, and a drop on the backend's side wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.generate import GenerateRequest, run_generate
from recorder.aggregate import Aggregator
from recorder.schema import FlowRecord

SCENARIO = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "service-port-differs"
VIP, BACKEND_IP = "10.96.21.111", "10.244.2.11"
NS = 1_000_000_000


def _syn(t: int, dst: str, dport: int, **kw) -> FlowRecord:
    fields = dict(first_seen=t, last_seen=t, protocol="TCP", src_ip="10.244.1.11",
                  dst_ip=dst, dst_port=dport, src_port=49380, source_format="hubble",
                  input="x")
    fields.update(kw)
    return FlowRecord(**fields)  # type: ignore[arg-type]


def _dnat_peers(ip: str, port: int, protocol: str) -> tuple[tuple[str, int], ...]:
    return {(BACKEND_IP, 8080, "TCP"): ((VIP, 80),),
            (VIP, 80, "TCP"): (("10.244.2.12", 8080), (BACKEND_IP, 8080))}.get(
        (ip, port, protocol), ())


@pytest.mark.parametrize("client_first", [True, False])
@pytest.mark.parametrize("server_verdict, kept", [("FORWARDED", 1), ("DROPPED", 0)])
def test_the_aggregator_joins_the_two_sides(server_verdict: str, kept: int,
                                            client_first: bool) -> None:
    # the backend's node first: its clock runs a little behind the client's
    client = _syn(0 if client_first else NS // 1000, VIP, 80, node="node-a",
                  verdict="FORWARDED")
    server = _syn(NS // 1000 if client_first else 0, BACKEND_IP, 8080, node="node-b",
                  verdict=server_verdict)
    agg = Aggregator(dnat_peers=_dnat_peers)
    for rec in (client, server) if client_first else (server, client):
        agg.add(rec)
    assert sum(r.count for r in agg.drain()) == kept
    assert agg.stats.duplicates == 1 and agg.stats.dropped == 1 - kept


def test_another_backend_is_another_connection() -> None:
    agg = Aggregator(dnat_peers=_dnat_peers)
    agg.add(_syn(0, "10.244.2.12", 8080, node="node-b"))  # the other backend, directly
    agg.add(_syn(NS // 1000, "10.244.2.99", 8080, node="node-b"))  # no Service's backend
    agg.add(_syn(NS // 500, VIP, 80, node="node-a", src_port=50000))  # another port
    assert sum(r.count for r in agg.drain()) == 3


def test_without_the_cluster_they_stay_two() -> None:
    agg = Aggregator()
    agg.add(_syn(0, VIP, 80, node="node-a"))
    agg.add(_syn(NS // 1000, BACKEND_IP, 8080, node="node-b"))
    assert sum(r.count for r in agg.drain()) == 2


def _backend_side(line: str, verdict: str) -> str | None:
    """The backend node's observation of a client SYN to the ClusterIP, 1 ms later."""
    obj = json.loads(line)
    flow = obj["flow"]
    tcp = flow["l4"].get("TCP", {})
    if flow["IP"]["destination"] != VIP or flow.get("is_reply") or tcp.get("flags") != {"SYN": True}:
        return None
    t = flow["time"]
    later = t[:-4] + f"{(int(t[-4:-1]) + 1) % 1000:03d}Z"  # +1 ms (stays in the second)
    flow.update(time=later, verdict=verdict, node_name="node-b",
                trace_observation_point="TO_ENDPOINT", traffic_direction="INGRESS")
    flow["IP"]["destination"] = BACKEND_IP
    tcp["destination_port"] = 8080
    flow["destination"] = {"namespace": "shop", "pod_name": "backend-nwrkd28bfp-fx62g",
                           "labels": ["k8s:app=backend", "k8s:io.kubernetes.pod.namespace=shop"],
                           "workloads": [{"name": "backend", "kind": "Deployment"}]}
    flow.pop("destination_service", None)
    obj.update(flow=flow, node_name="node-b", time=later)
    return json.dumps(obj, separators=(",", ":")) + "\n"


def _generate(tmp_path: Path, verdict: str | None) -> tuple[str, dict]:
    inputs = [str(SCENARIO / "flows.jsonl")]
    if verdict is not None:
        node_b = tmp_path / f"node-b-{verdict}.jsonl"
        lines = [_backend_side(ln, verdict) for ln in
                 (SCENARIO / "flows.jsonl").read_text().splitlines()]
        node_b.write_text("".join(ln for ln in lines if ln))
        inputs.append(str(node_b))
    out = tmp_path / f"out-{verdict}"
    result = run_generate(GenerateRequest(inputs=inputs, snapshot=[str(SCENARIO / "cluster.json")],
                                          out_dir=out))
    shop = out / "shop.yaml"
    return (shop.read_text() if shop.exists() else ""), result.report


def test_both_nodes_count_each_connection_once(tmp_path: Path) -> None:
    expected = json.loads((SCENARIO / "expected-edges.json").read_text())["edges"]
    [edge] = [e for e in expected if e["dst"].get("workload_name") == "backend"]
    one_node, _ = _generate(tmp_path, None)
    both, report = _generate(tmp_path, "FORWARDED")
    assert f"TCP/8080: {edge['connections']} connection(s)" in both
    assert report["aggregation"]["duplicates"] >= edge["connections"]
    # the rules are the same: only inputs named in the evidence differ
    assert _rules(both) == _rules(one_node)


def _rules(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if "#" not in ln and "evidence" not in ln]


def test_a_drop_on_the_backends_node_is_no_evidence(tmp_path: Path) -> None:
    dropped, report = _generate(tmp_path, "DROPPED")
    # every connection was dropped by the backend's node: no rule from frontend to
    # backend (here nothing else happened in shop, so no policy for it at all)
    assert "8080" not in dropped
    assert not [p for p in report["policies"] if p["workload"] and "backend" in p["workload"]]
    assert report["aggregation"]["dropped"] == 24
