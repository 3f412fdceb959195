"""synthesize: the DNS rule every namespace needs once egress is restricted."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

import k8s_objects as k
from generator.resolve.edges import PodView
from generator.generate import GenerateRequest, run_generate
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.synthesize.synthesis import SynthesisOptions, SynthesisResult, synthesize
from generator.verify.evaluator import Evaluator
from generator.verify.policy import load_policies
from generator.output.yamlout import Commented, dump_all

KUBESPRAY_ARGS = ["-localip", "169.254.25.10", "-conf", "/etc/Corefile", "-upstreamsvc", "coredns"]
UPSTREAM_ARGS = ["-localip", "169.254.20.10,10.96.0.10", "-conf", "/etc/Corefile",
                 "-upstreamsvc", "kube-dns-upstream"]


def _snapshot(tmp_path: Path, node_local_args: list[str] | None) -> Path:
    objs = k.base_cluster(namespaces=["shop"])
    objs += k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5"])
    local = k.daemonset_with_pods("node-local-dns", "kube-system", {"k8s-app": "node-local-dns"},
                                  {"node-1": "192.168.0.11"}, host_network=True)
    for o in local:
        spec = o["spec"]["template"]["spec"] if o["kind"] == "DaemonSet" else o["spec"]
        if node_local_args is not None:
            spec["containers"][0]["args"] = list(node_local_args)
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(k.kube_list(objs + local)))
    return path


def _synthesize(snapshot: Path) -> SynthesisResult:
    index = InventoryIndex(load_snapshot([str(snapshot)]).inventory)
    # No traffic: web is idle; isolated (not held out) so that the DNS rule alone decides
    return synthesize((), index, SynthesisOptions(namespaces=("shop",), isolate_idle=True))


def _dns_rule(result: SynthesisResult) -> Commented:
    (doc,) = [p for p in result.policies if p.name == "flowpol-allow-dns"]
    (rule,) = doc.manifest["spec"]["egress"]
    return rule


def _ip_blocks(rule: Commented) -> list[str]:
    return [el["ipBlock"]["cidr"] for el in rule.value["to"] if "ipBlock" in el]


def test_dns_ipblock_is_the_snapshots_node_local_address(tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path, KUBESPRAY_ARGS)
    result = _synthesize(snapshot)
    rule = _dns_rule(result)
    assert _ip_blocks(rule) == ["169.254.25.10/32"]
    assert {"protocol": "UDP", "port": 53} in rule.value["ports"]
    assert {"protocol": "TCP", "port": 53} in rule.value["ports"]
    assert any("-localip of DaemonSet kube-system/node-local-dns" in c for c in rule.comments)
    assert result.dns["node_local_ips"] == ["169.254.25.10"]
    assert not [w for w in result.warnings if "node-local-dns" in w]

    # applied, the policies let a pod reach the real listener and not the old guess
    out = tmp_path / "out"
    out.mkdir()
    (out / "shop.yaml").write_text(dump_all([p.manifest for p in result.policies]))
    inventory = load_snapshot([str(snapshot)]).inventory
    ev = Evaluator.from_inventory(load_policies(str(out)).policies, inventory)
    web = PodView("shop", "web-1", (("app", "web"),), ip="10.244.1.5", node="node-1")
    for proto in ("UDP", "TCP"):
        assert ev.check(web, "169.254.25.10", proto, 53).allowed
        assert not ev.check(web, "169.254.20.10", proto, 53).allowed
    assert not ev.check(web, "169.254.25.10", "TCP", 80).allowed


def test_the_dns_clusterip_node_local_dns_binds_is_allowed_and_explained(tmp_path: Path) -> None:
    rule = _dns_rule(_synthesize(_snapshot(tmp_path, UPSTREAM_ARGS)))
    assert _ip_blocks(rule) == ["169.254.20.10/32", "10.96.0.10/32"]
    # the resolver pods stay allowed for when node-local-dns is down (then kube-proxy DNATs)
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}} in rule.value["to"]
    assert any("10.96.0.10 is the DNS Service's ClusterIP" in c for c in rule.comments)


def test_an_assumed_node_local_address_is_a_synthesis_warning(tmp_path: Path) -> None:
    result = _synthesize(_snapshot(tmp_path, None))
    assert _ip_blocks(_dns_rule(result)) == ["169.254.20.10/32"]
    (warning,) = [w for w in result.warnings if "node-local-dns" in w]
    assert "assumed 169.254.20.10" in warning
    assert any("assumed (upstream default)" in c for c in _dns_rule(result).comments)


def _hubble_dns_flow(minute: int, pod: str, dst: str) -> dict:
    """A pod's DNS query to a node-local-dns address: the destination is a local
    address of the node, so Hubble labels it reserved:host."""
    time = f"2026-11-20T09:{minute:02d}:00.000000000Z"
    return {"flow": {
        "time": time, "verdict": "FORWARDED", "Type": "L3_L4", "node_name": "node-1",
        "IP": {"source": "10.244.1.5", "destination": dst, "ipVersion": "IPv4"},
        "l4": {"UDP": {"source_port": 40000 + minute, "destination_port": 53}},
        "source": {"ID": 12, "identity": 5000, "namespace": "shop", "pod_name": pod,
                   "labels": ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"],
                   "workloads": [{"name": "web", "kind": "Deployment"}]},
        "destination": {"identity": 1, "labels": ["reserved:host"]},
        "traffic_direction": "EGRESS", "is_reply": False, "event_type": {"type": 4}},
        "node_name": "node-1", "time": time}


def test_generate_counts_node_local_dns_queries_as_dns_and_allows_them(tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path, KUBESPRAY_ARGS)
    web = next(o["metadata"]["name"] for o in json.loads(snapshot.read_text())["items"]
               if o["kind"] == "Pod" and o["metadata"]["namespace"] == "shop")
    flows = tmp_path / "flows.jsonl"
    flows.write_text("".join(json.dumps(_hubble_dns_flow(m, web, "169.254.25.10")) + "\n"
                             for m in (10, 20, 30)))
    result = run_generate(GenerateRequest(inputs=[str(flows)], snapshot=[str(snapshot)],
                                          out_dir=tmp_path / "out"))
    assert result.denied_lines == ()
    text = (tmp_path / "out" / "shop.yaml").read_text()
    assert "cidr: 169.254.25.10/32" in text and "169.254.20.10" not in text
    assert "observed DNS: 3 connection(s)" in text  # evidence on the DNS rule, no other rule
    assert [p["metadata"]["name"] for p in _docs(text)] == ["flowpol-default-deny",
                                                            "flowpol-allow-dns"]
    # the DNS rule covers node-local-dns: it is not flagged as a node peer
    assert not any(line.startswith("node peers") for line in result.summary)
    assert result.report["node_peers"] == []


def _docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_what_the_dns_rule_may_lack_is_a_warning(tmp_path: Path) -> None:
    path = _snapshot(tmp_path, UPSTREAM_ARGS)
    doc = json.loads(path.read_text())
    for o in doc["items"]:
        if o["kind"] == "Service" and o["metadata"]["name"] == "kube-dns":
            o["spec"]["ports"] = [p for p in o["spec"]["ports"] if p["protocol"] == "UDP"]
    path.write_text(json.dumps(doc))
    result = _synthesize(path)
    assert "DNS Service kube-system/kube-dns has no 53/TCP port" in result.warnings
