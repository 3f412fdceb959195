"""File names built from namespace names: never outside --out, never one of flowpol's
own files. The demo with its namespace `payments` renamed (snapshot and flows alike)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"


def flowpol(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def renamed_demo(tmp: Path, namespace: str) -> list[str]:
    """Flow inputs and the snapshot option of the demo with payments -> ``namespace``."""
    tmp.mkdir(parents=True)
    files = []
    for name in ("cluster.json", "flows/hubble-node-a.jsonl", "flows/hubble-node-b.jsonl"):
        dst = tmp / Path(name).name
        dst.write_text((DEMO / name).read_text().replace("payments", namespace))
        files.append(str(dst))
    return [files[1], files[2], "-s", files[0]]


def test_namespace_called_kustomization_gets_a_file_of_its_own(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = flowpol("generate", *renamed_demo(tmp_path / "in", "kustomization"), "--out", str(out))
    assert run.returncode == 0, run.stderr
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert "kustomization.yaml" not in kustomization["resources"]
    assert "_kustomization.yaml" in kustomization["resources"]
    docs = [d for d in yaml.safe_load_all((out / "_kustomization.yaml").read_text()) if d]
    assert docs and {d["metadata"]["namespace"] for d in docs} == {"kustomization"}
    assert sorted(p.name for p in out.glob("*.yaml")) == sorted(
        kustomization["resources"] + ["kustomization.yaml"])


def test_namespace_name_that_is_no_dns_label_names_no_file(tmp_path: Path) -> None:
    # Refused where the snapshot is read (generator/inventory) before anything is
    # written; generator/output/paths.py refuses it again where file names are built
    # (tests/generator/output/test_files.py).
    out = tmp_path / "deep" / "out"
    run = flowpol("generate", *renamed_demo(tmp_path / "in", "Pay_ments"), "--out", str(out))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "'Pay_ments'" in run.stderr and "cluster.json:" in run.stderr
    assert not any(p.name.startswith("Pay_ments") for p in tmp_path.rglob("*"))


def test_migrate_refuses_a_namespace_name_that_is_no_dns_label(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    run = flowpol("migrate", *renamed_demo(tmp_path / "in", "Pay_ments"), "--out", str(out),
                  "--min-observation", "1m")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "'Pay_ments'" in run.stderr and "cluster.json:" in run.stderr
    assert not any(p.name.startswith("Pay_ments") for p in tmp_path.rglob("*") if p.is_dir())
