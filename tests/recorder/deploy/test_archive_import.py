"""recorder/deploy/jobs/archive-import: the Indexed Job that imports a large archive in N
pods. Rendered by the real kustomize and validated against two Kubernetes versions; its
pods' command is then run here for every completion index, with the archive a local
directory (there is no cluster here: the Job's args are taken from the rendered
manifest, $(FLOWPOL_PART) replaced as the kubelet does, /archive mapped to a temporary
directory), and `flowpol generate` over the N flow logs is checked against `generate`
over the archive itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from k8s_schema import validate_manifests
from kustomize import render

ROOT = Path(__file__).resolve().parents[3]
JOB_DIR = ROOT / "recorder" / "deploy" / "jobs" / "archive-import"
SCENARIO = ROOT / "fixtures" / "scenarios" / "ip-reuse"
INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return render(JOB_DIR)


def one(docs: list[dict], kind: str) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def test_renders_and_validates_against_two_kubernetes_versions(docs) -> None:
    assert validate_manifests(docs) == len(docs) == 2
    assert {d["metadata"]["namespace"] for d in docs} == {"flowpol-system"}
    readme = (ROOT / "recorder" / "deploy" / "README.md").read_text()
    assert "jobs/archive-import" in readme


def test_each_pod_gets_its_own_part_with_least_privilege(docs) -> None:
    job = one(docs, "Job")["spec"]
    assert job["completionMode"] == "Indexed"
    assert 0 < job["parallelism"] <= job["completions"]
    pod = job["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["initContainers"] + pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert set(c["resources"]["limits"]) == {"cpu", "memory"}
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["FLOWPOL_PART"]["valueFrom"]["fieldRef"]["fieldPath"] == INDEX_ANNOTATION
    args = c["args"]
    # N after the slash is the Job's completions: every index has a part, every part a pod
    assert args[args.index("--part") + 1] == f"$(FLOWPOL_PART)/{job['completions']}"
    # worker processes: as many as the CPU limit allows (generator/cpus.py), not the node's
    assert "--jobs" not in args and "-j" not in args
    assert "$(FLOWPOL_PART)" in args[args.index("--out") + 1]
    # the parts' directory exists before the import writes into it
    (init,) = pod["initContainers"]
    parts_dir = str(Path(args[args.index("--out") + 1]).parent)
    assert init["command"] == ["mkdir", "-p", parts_dir]


def test_the_pods_need_no_network(docs) -> None:
    from generator.verify.policy import parse_policies

    job_labels = one(docs, "Job")["spec"]["template"]["metadata"]["labels"]
    raw = one(docs, "NetworkPolicy")
    (policy,) = parse_policies([raw], "rendered")
    assert raw["spec"]["podSelector"]["matchLabels"].items() <= job_labels.items()
    assert sorted(raw["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "egress" not in raw["spec"] and "ingress" not in raw["spec"]


def _split(into: Path) -> int:
    """The ip-reuse scenario's Hubble lines as an archive: a file per node and ten
    minutes, plus a file that is not flows (left out with a warning)."""
    files: dict[str, list[str]] = {}
    for line in (SCENARIO / "flows.jsonl").read_text().splitlines(keepends=True):
        flow = json.loads(line)["flow"]
        files.setdefault(f"{flow['node_name']}/{flow['time'][:15]}.jsonl", []).append(line)
    for name, lines in files.items():
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_text("".join(lines))
    (into / "README.txt").write_text("captures of the prod cluster, one directory per node\n")
    return len(files)


def test_the_job_s_command_for_every_index_imports_the_archive_once(docs, tmp_path) -> None:
    archive = tmp_path / "archive"
    (archive / "raw").mkdir(parents=True)
    files = _split(archive / "raw")
    job = one(docs, "Job")["spec"]
    pod = job["template"]["spec"]
    (c,) = pod["containers"]
    (init,) = pod["initContainers"]
    mounted = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["archive"]

    def local(arg: str, index: int) -> str:
        arg = arg.replace("$(FLOWPOL_PART)", str(index))
        return str(archive) + arg[len(mounted):] if arg.startswith(mounted + "/") else arg

    subprocess.run([local(a, 0) for a in init["command"]], check=True)
    imported: list[str] = []
    for index in range(job["completions"]):
        run = subprocess.run([sys.executable, "-m", "generator.cli.main",
                              *(local(a, index) for a in c["args"])],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert re.search(rf"^part {index}/{job['completions']}: \d+ of {files} input",
                         run.stderr, re.M)
        assert "left out 1 file(s) that are not flow inputs (README.txt" in run.stderr
        imported += re.findall(r"^  (\S+): hubble, ", run.stderr, re.M)
    assert sorted(imported) == sorted(str(p) for p in (archive / "raw").rglob("*.jsonl"))
    parts = sorted((archive / "parts").iterdir())
    assert [p.name for p in parts] == sorted(f"part-{k}.jsonl.gz"
                                             for k in range(job["completions"]))

    out = {}
    for name, inputs in (("direct", archive / "raw"), ("parts", archive / "parts")):
        run = subprocess.run([sys.executable, "-m", "generator.cli.main", "generate",
                              str(inputs), "-s", str(SCENARIO / "cluster.json"), "--out",
                              str(tmp_path / name)], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr
        out[name] = {p.name: [_without_evidence(d) for d in yaml.safe_load_all(p.read_text())]
                     for p in sorted((tmp_path / name).glob("*.yaml"))}
    assert out["direct"] == out["parts"] and out["direct"]


def _without_evidence(doc: dict | None) -> dict | None:
    if doc is not None:
        doc.get("metadata", {}).get("annotations", {}).pop("flowpol.dev/evidence", None)
    return doc


def test_the_readme_s_overlay_changes_the_number_of_parts_in_both_places(tmp_path) -> None:
    readme = (ROOT / "recorder" / "deploy" / "README.md").read_text()
    section = readme[readme.index("## Import a large archive"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    overlay = yaml.safe_load(block)
    (url,) = overlay["resources"]
    assert url.split("//", 2)[-1].split("?")[0] == "recorder/deploy/jobs/archive-import"
    overlay["resources"] = [os.path.relpath(JOB_DIR, tmp_path)]  # kustomize: relative
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    docs = render(tmp_path)
    assert validate_manifests(docs) == 2
    job = one(docs, "Job")["spec"]
    args = job["template"]["spec"]["containers"][0]["args"]
    assert job["completions"] == 32 and job["parallelism"] == 16
    assert args[args.index("--part") + 1] == "$(FLOWPOL_PART)/32"
    assert job["template"]["spec"]["containers"][0]["image"] == "registry.example.com/flowpol:0.1.0"
