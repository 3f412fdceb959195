"""What the review report says about traffic that got no rule, through the real CLI on
the demo: the dropped connection attempts (who tried what, how often), the edges outside
the namespaces in scope, and the hostNetwork pods behind each node peer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"


def _section(md: str, heading: str) -> str:
    start = md.index(heading)
    end = md.find("\n## ", start + len(heading))
    return md[start:] if end == -1 else md[start:end]


def _rows(section: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines()
            if line.startswith("|") and first_cell in line.split("|")[1]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("review") / "out"
    run = subprocess.run([sys.executable, "-m", "generator.cli.main", "generate",
                          str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"), "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    return out


def _dropped_in_flows() -> dict[tuple[str, str, int], int]:
    """The demo's dropped SYNs, counted from the flow files themselves: (client pod's
    namespace, server pod's namespace, port) -> connections (one per source port)."""
    seen: dict[tuple[str, str, int], set] = {}
    for f in sorted((DEMO / "flows").glob("*.jsonl")):
        for line in f.read_text().splitlines():
            flow = json.loads(line).get("flow")
            if not flow or flow.get("verdict") != "DROPPED":
                continue
            tcp = flow["l4"].get("TCP", {})
            if not tcp.get("flags", {}).get("SYN") or tcp["flags"].get("ACK"):
                continue
            key = (flow["source"]["pod_name"], flow["destination"]["pod_name"],
                   tcp["destination_port"])
            seen.setdefault(key, set()).add(tcp["source_port"])
    return {k: len(v) for k, v in seen.items()}


def test_dropped_attempts_are_listed_with_who_what_and_how_often(demo: Path) -> None:
    truth = _dropped_in_flows()
    assert truth, "the demo has dropped attempts"
    report = json.loads((demo / "report.json").read_text())
    listed = report["dropped_attempts"]
    assert sum(d["attempts"] for d in listed) == report["aggregation"]["dropped"] \
        == sum(truth.values())
    assert {(d["client"], d["server"], d["port"]) for d in listed} == {
        ("storefront/Deployment/web", "payments/StatefulSet/postgres", 5432)}
    skipped = _section((demo / "report.md").read_text(), "## Skipped and unresolved")
    [row] = _rows(skipped, "storefront/Deployment/web")
    assert row[:4] == ["storefront/Deployment/web", "payments/StatefulSet/postgres", "TCP/5432",
                       str(sum(truth.values()))]
    html = (demo / "report.html").read_text()
    assert "payments/StatefulSet/postgres" in html and "Attempts" in html


def test_out_of_scope_edges_are_listed_as_skipped(demo: Path) -> None:
    report = json.loads((demo / "report.json").read_text())
    drawn = {(e["src"].get("workload_name") or e["src"].get("ip"),
              e["dst"].get("workload_name") or e["dst"].get("ip"))
             for e in report["edges"]}
    assert ("coredns", "198.51.100.53") in drawn  # in the graph ...
    skipped = {s["edge"]: s["reason"] for s in report["skipped_edges"]}
    edge = "kube-system/Deployment/coredns -> external 198.51.100.53 UDP/53"
    assert "namespace kube-system is not in scope" in skipped[edge]  # ... and said why
    md = _section((demo / "report.md").read_text(), "## Skipped and unresolved")
    assert edge.replace("->", "-\\>") in md  # Markdown escapes ">"
    # every drawn edge has a rule or a line saying why not: no edge outside the scope
    # without one
    scope = set(report["scope"]["namespaces"])
    for e in report["edges"]:
        ends = [p for p in (e["src"], e["dst"]) if p["kind"] == "workload"]
        if not any(p["namespace"] in scope for p in ends):
            label_start = e["src"].get("workload_name") or e["src"].get("ip")
            assert any(label_start in s and f"/{e['port']}" in s for s in skipped), e


def test_node_peers_name_the_host_network_pods_behind_them(demo: Path) -> None:
    snapshot = json.loads((DEMO / "cluster.json").read_text())
    expected: dict[str, set[str]] = {}
    for o in snapshot["items"]:
        if o["kind"] == "Pod" and o["spec"].get("hostNetwork"):
            expected.setdefault(o["spec"]["nodeName"], set()).add(
                f"{o['metadata']['namespace']}/{o['metadata']['name']}")
    report = json.loads((demo / "report.json").read_text())
    assert len(report["node_peers"]) == 2
    for peer in report["node_peers"]:
        node = peer["peer"].split()[1]
        named = {p.split(" (")[0] for p in peer["host_network_pods"]}
        assert named == expected[node], peer
    assert "kube-system/cilium-v4srz (DaemonSet cilium)" in report["node_peers"][0][
        "host_network_pods"]
    md = _section((demo / "report.md").read_text(), "## Skipped and unresolved")
    [row] = _rows(md, "node node-b")
    assert "platform/metrics-agent-xqc7h (DaemonSet metrics-agent)" in row[2]
