"""Services whose backends are not pods (``default/kubernetes``: the API server's
addresses; a selector-less Service whose own EndpointSlice lists outside addresses),
seen before kube-proxy's DNAT (dst = ClusterIP:servicePort). NetworkPolicy is enforced
after the DNAT, on the backend's address and targetPort: the rules name those, and
generate's own check, ``verify`` and ``diff`` must judge the connections there too,
not at the ClusterIP (which no rule names: a false DENY, exit 1, a duplicate rule
proposed). Through the real CLI on the ``non-pod-backends`` scenario (Hubble in
kube-proxy mode, recorded on the client's node only) and on conntrack lines built here.
"""

from __future__ import annotations

import calendar
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SCENARIO = REPO / "fixtures" / "scenarios" / "non-pod-backends"
FLOWS = str(SCENARIO / "flows.jsonl")
SNAPSHOT = str(SCENARIO / "cluster.json")
# (namespace, Service) -> the client workload that calls it in the scenario
CALLS = {("default", "kubernetes"): ("ops", "operator"),
         ("billing", "payments"): ("billing", "invoicer")}


def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


class Cluster:
    """What the snapshot says, read here without flowpol's loader."""

    def __init__(self) -> None:
        items = json.loads(Path(SNAPSHOT).read_text())["items"]
        self.services = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
                         for o in items if o["kind"] == "Service"}
        self.slices = [o for o in items if o["kind"] == "EndpointSlice"]
        self.pods = [o for o in items if o["kind"] == "Pod"]

    def cluster_ip(self, svc: tuple[str, str]) -> str:
        return self.services[svc]["spec"]["clusterIP"]

    def service_port(self, svc: tuple[str, str]) -> int:
        return self.services[svc]["spec"]["ports"][0]["port"]

    def backends(self, svc: tuple[str, str]) -> tuple[list[str], int]:
        """The EndpointSlice's addresses (none a pod's) and its port."""
        ips, ports = [], set()
        for sl in self.slices:
            owner = sl["metadata"]["labels"].get("kubernetes.io/service-name")
            if (sl["metadata"]["namespace"], owner) != svc:
                continue
            ips += [a for e in sl["endpoints"] for a in e["addresses"]]
            assert not any("targetRef" in e for e in sl["endpoints"])
            ports |= {p["port"] for p in sl["ports"]}
        assert len(ips) >= 2 and len(ports) == 1, "the scenario needs several backends"
        return sorted(ips), ports.pop()

    def client_ip(self, svc: tuple[str, str]) -> str:
        ns, app = CALLS[svc]
        return next(p["status"]["podIP"] for p in self.pods
                    if p["metadata"]["namespace"] == ns
                    and p["metadata"].get("labels", {}).get("app") == app)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster()
    pod_ips = {p["status"].get("podIP") for p in c.pods}
    for svc in CALLS:
        assert not set(c.backends(svc)[0]) & pod_ips
    return c


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("generated")
    return out, flowpol("generate", FLOWS, "--snapshot", SNAPSHOT, "--out", str(out))


def _egress_peers(out: Path, namespace: str, workload: str) -> set[tuple[str, str, int]]:
    """(cidr, protocol, port) of every ipBlock egress rule of the workload's policy."""
    found = set()
    for doc in yaml.safe_load_all((out / f"{namespace}.yaml").read_text()):
        if doc and doc["metadata"]["name"] == f"flowpol-{workload}":
            for rule in doc["spec"].get("egress", []):
                for peer in rule.get("to", []):
                    if "ipBlock" in peer:
                        found |= {(peer["ipBlock"]["cidr"], p["protocol"], p["port"])
                                  for p in rule["ports"]}
    return found


def test_generate_allows_every_backend_and_its_own_check_agrees(cluster, generated) -> None:
    out, run = generated
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    verified = next(line for line in run.stdout.splitlines() if line.startswith("verified:"))
    assert verified.endswith(" denied") and ", 0 denied" in verified
    for svc, (ns, workload) in CALLS.items():
        ips, target = cluster.backends(svc)
        peers = _egress_peers(out, ns, workload)
        assert {(f"{ip}/32", "TCP", target) for ip in ips} <= peers
        assert not any(cidr.startswith(cluster.cluster_ip(svc) + "/") for cidr, _, _ in peers)
        assert not any(port == cluster.service_port(svc) for _, _, port in peers)


def test_verify_says_allowed_at_the_backend(cluster, generated) -> None:
    out, _ = generated
    run = flowpol("verify", FLOWS, "--snapshot", SNAPSHOT, "--policies", str(out),
                  "--show-allowed")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 denied" in run.stdout and "DENIED" not in run.stdout
    allowed = run.stdout.split("ALLOWED:", 1)[1]
    for svc in CALLS:
        ips, target = cluster.backends(svc)
        for ip in ips:
            assert f"{ip} TCP/{target}:" in allowed
        assert f"via Service {svc[0]}/{svc[1]}:{cluster.service_port(svc)}" in allowed
    report = json.loads(flowpol("verify", FLOWS, "--snapshot", SNAPSHOT, "--policies", str(out),
                                "-o", "json").stdout)
    # the example connection names the backend's address, never the ClusterIP
    examples = " ".join(g["example"] for g in report["allowed"])
    for svc in CALLS:
        assert cluster.cluster_ip(svc) not in examples
        assert all(ip in examples for ip in cluster.backends(svc)[0])


def test_diff_on_generated_policies_proposes_nothing(generated, tmp_path: Path) -> None:
    out, _ = generated
    run = flowpol("diff", FLOWS, "--snapshot", SNAPSHOT, "--existing", str(out),
                  "--out", str(tmp_path), "--min-observation", "1h")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(a) denied: none" in run.stdout
    assert "proposed: 0 of " in run.stdout and "add-rule" not in run.stdout
    assert (tmp_path / "proposed.diff").read_text() == ""


def test_a_policy_missing_one_backend_is_denied_for_it(cluster, generated,
                                                       tmp_path: Path) -> None:
    """Which backend took a pre-DNAT connection is unknown and kube-proxy may pick any:
    a policy that admits only some backends is reported denied for the others."""
    out, _ = generated
    ips, target = cluster.backends(("billing", "payments"))
    text = (out / "billing.yaml").read_text()
    cut = f"cidr: {ips[-1]}/32"
    assert text.count(cut) == 1
    (tmp_path / "billing.yaml").write_text(text.replace(cut, f"cidr: {ips[0]}/32"))
    run = flowpol("verify", FLOWS, "--snapshot", SNAPSHOT, "--policies",
                  str(tmp_path / "billing.yaml"))
    assert run.returncode == 1, run.stdout + run.stderr
    denied = run.stdout.split("DENY", 1)[1] if "DENY" in run.stdout else run.stdout
    assert f"external {ips[-1]} TCP/{target}" in denied
    assert f"external {ips[0]} TCP/{target}" not in denied


def _epoch(text: str) -> float:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def _conntrack_line(t: float, client: str, vip: str, sport: int, dport: int,
                    reply_ip: str, reply_port: int) -> str:
    return (f"[{t:.6f}]\t    [NEW] tcp      6 120 SYN_SENT src={client} dst={vip} "
            f"sport={sport} dport={dport} [UNREPLIED] src={reply_ip} dst={client} "
            f"sport={reply_port} dport={sport}")


def test_conntrack_before_dnat_is_judged_at_every_backend(cluster, tmp_path: Path) -> None:
    """conntrack read in the client pod's network namespace: the DNAT happens in the
    node's, so the reply tuple names the ClusterIP again (no backend)."""
    t = _epoch("2026-11-20T10:00:00Z")
    lines = []
    for i, svc in enumerate(CALLS):
        vip = cluster.cluster_ip(svc)
        lines.append(_conntrack_line(t + i, cluster.client_ip(svc), vip, 40000 + i,
                                     cluster.service_port(svc), vip, cluster.service_port(svc)))
    ct = tmp_path / "pod-netns.conntrack"
    ct.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    run = flowpol("generate", str(ct), "--snapshot", SNAPSHOT, "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert ", 0 denied" in run.stdout
    report = json.loads((out / "report.json").read_text())
    for svc, (ns, workload) in CALLS.items():
        ips, target = cluster.backends(svc)
        got = {e["dst"].get("ip") for e in report["edges"]
               if e["src"].get("workload_name") == workload and e["port"] == target}
        assert got == set(ips)
        assert {(f"{ip}/32", "TCP", target) for ip in ips} <= _egress_peers(out, ns, workload)
    run = flowpol("verify", str(ct), "--snapshot", SNAPSHOT, "--policies", str(out))
    assert run.returncode == 0 and ", 0 denied" in run.stdout, run.stdout + run.stderr


def test_conntrack_naming_the_backend_keeps_that_backend_only(cluster, tmp_path: Path) -> None:
    """The node's conntrack has the DNAT in its reply tuple: the backend that took the
    connection is known, and only it is the peer (nothing changes for such sources)."""
    svc = ("default", "kubernetes")
    vip = cluster.cluster_ip(svc)
    ips, target = cluster.backends(svc)
    ct = tmp_path / "node.conntrack"
    ct.write_text(_conntrack_line(_epoch("2026-11-20T10:00:00Z"), cluster.client_ip(svc), vip,
                                  40000, cluster.service_port(svc), ips[-1], target) + "\n")
    out = tmp_path / "out"
    run = flowpol("generate", str(ct), "--snapshot", SNAPSHOT, "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((out / "report.json").read_text())
    assert [(e["dst"].get("ip"), e["port"]) for e in report["edges"]] == [(ips[-1], target)]
    assert _egress_peers(out, *CALLS[svc]) == {(f"{ips[-1]}/32", "TCP", target)}


def test_host_network_backends_are_judged_at_their_node_address(tmp_path: Path) -> None:
    """A Service whose selector picks hostNetwork pods (a DaemonSet on each node): its
    backends are the nodes' addresses on the targetPort, one per node, none a pod."""
    import k8s_objects as k

    nodes = {"node-1": "192.168.0.11", "node-2": "192.168.0.12"}
    objs = k.base_cluster(node_ip=nodes["node-1"], namespaces=["shop", "edge"])
    objs.append(k.node("node-2", nodes["node-2"], pod_cidr="10.244.2.0/24"))
    proxy = k.daemonset_with_pods("edge-proxy", "edge", {"app": "edge-proxy"}, nodes,
                                  host_network=True, ports=[k.container_port(8081, "http")])
    web = k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5"])
    svc = k.service("edge-proxy", "edge", selector={"app": "edge-proxy"}, cluster_ip="10.96.0.50",
                    ports=[k.service_port(80, "http", name="http")])
    objs += proxy + web + [svc] + k.endpointslices_for(
        svc, [o for o in proxy if o["kind"] == "Pod"])
    snapshot = tmp_path / "cluster.json"
    snapshot.write_text(json.dumps(k.kube_list(objs)))
    ct = tmp_path / "pod-netns.conntrack"
    ct.write_text(_conntrack_line(_epoch("2024-05-01T12:00:00Z"), "10.244.1.5", "10.96.0.50",
                                  40000, 80, "10.96.0.50", 80) + "\n")
    out = tmp_path / "out"
    run = flowpol("generate", str(ct), "--snapshot", str(snapshot), "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert ", 0 denied" in run.stdout
    assert _egress_peers(out, "shop", "web") == {(f"{ip}/32", "TCP", 8081)
                                                 for ip in nodes.values()}
    run = flowpol("verify", str(ct), "--snapshot", str(snapshot), "--policies", str(out))
    assert run.returncode == 0 and ", 0 denied" in run.stdout, run.stdout + run.stderr
