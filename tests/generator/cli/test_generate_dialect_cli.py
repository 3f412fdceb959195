"""`flowpol generate --dialect` through the real entry point: what each dialect writes,
that `verify` reads it back, and usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from k8s_schema import validate_manifests

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"


def flowpol(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT)


def _kinds(out: Path) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for f in out.glob("*.yaml"):
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict):
                kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    return kinds


def test_cilium_cluster_wide_then_verify(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = flowpol("generate", str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"), "-o", str(out),
                "--dialect", "cilium", "--cilium-cluster-wide")
    assert r.returncode == 0, r.stderr
    kinds = _kinds(out)
    assert kinds.get("CiliumClusterwideNetworkPolicy") == 1 and kinds["CiliumNetworkPolicy"] == 7
    assert "NetworkPolicy" not in kinds and (out / "_cluster.yaml").exists()
    docs = [d for f in sorted(out.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
            if isinstance(d, dict) and d.get("kind") != "Kustomization"]
    assert validate_manifests(docs) == 8  # each against its CRD's own schema
    v = flowpol("verify", "--policies", str(out), str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"))
    assert v.returncode == 0, v.stdout + v.stderr
    assert "8 Cilium policy rules" in v.stdout and "0 denied" in v.stdout
    # the reports and kustomization.yaml beside the policies are no skipped documents
    assert "ignored 4 files of the directory that hold no policy: kustomization.yaml, " \
           "report.html, report.json, report.md" in v.stdout
    assert "skipped" not in v.stdout.split("flows:")[0]


def test_kubernetes_dialect_warns_on_cilium(tmp_path: Path) -> None:
    r = flowpol("generate", str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"), "-o",
                str(tmp_path / "out"))
    assert r.returncode == 0
    assert "CNI looks like Cilium (DaemonSet kube-system/cilium in the snapshot; Hubble flows" in r.stdout


def test_usage_errors(tmp_path: Path) -> None:
    base = ("generate", str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"), "-o", str(tmp_path / "o"))
    r = flowpol(*base, "--dialect", "calico")
    assert r.returncode == 2 and "--dialect 'calico' is not one of" in r.stderr
    r = flowpol(*base, "--cilium-cluster-wide")
    assert r.returncode == 2 and "--cilium-cluster-wide needs --dialect cilium" in r.stderr
    r = flowpol(*base, "--fqdn-pattern", "*.example.com")
    assert r.returncode == 2 and "--fqdn-pattern needs --dialect cilium" in r.stderr
    r = flowpol(*base, "--dialect", "cilium", "--fqdn-pattern", "**.")
    assert r.returncode == 2 and "admits every DNS name" in r.stderr
    r = flowpol(*base, "--dialect", "cilium", "--fqdn-pattern", "a..b")
    assert r.returncode == 2 and "is not a DNS name pattern" in r.stderr
    assert not (tmp_path / "o").exists()


def test_cluster_network_policy_dialect_validates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = flowpol("generate", str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"), "-o", str(out),
                "--dialect", "cluster-network-policy")
    assert r.returncode == 0, r.stderr
    docs = [d for f in sorted(out.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
            if isinstance(d, dict) and d.get("kind") != "Kustomization"]
    assert [d["kind"] for d in docs].count("ClusterNetworkPolicy") == 1
    assert validate_manifests(docs) == len(docs)  # NetworkPolicies and the CRD alike
