"""recorder/deploy: every manifest validates against the Kubernetes OpenAPI schema, and
the DaemonSet keeps the promises of the issue (least privilege, every node, probes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from k8s_schema import validate_manifests

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "recorder" / "deploy"


def _docs() -> dict[str, dict]:
    docs = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def test_every_manifest_validates_against_the_openapi_schema() -> None:
    docs = _docs()
    assert set(docs) == {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                         "DaemonSet"}
    assert validate_manifests(list(docs.values())) == 5


def test_rbac_is_read_only_on_what_the_agent_reads() -> None:
    docs = _docs()
    rules = docs["ClusterRole"]["rules"]
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    binding = docs["ClusterRoleBinding"]
    sa = docs["ServiceAccount"]["metadata"]
    assert binding["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"],
                                    "namespace": sa["namespace"]}]


def test_daemonset_least_privilege_on_every_node() -> None:
    ds = _docs()["DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["serviceAccountName"] == _docs()["ServiceAccount"]["metadata"]["name"]
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}
    assert set(c["resources"]["requests"]) == {"cpu", "memory"}
    assert set(c["resources"]["limits"]) == {"cpu", "memory"}
    assert "livenessProbe" in c
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["segments"]["hostPath"]["path"] == mounts["segments"]
    args = c["args"]
    assert f"--segments={mounts['segments']}/segments" in args and "--stdout" in args
    heartbeat = next(a.split("=", 1)[1] for a in args if a.startswith("--heartbeat="))
    assert heartbeat in " ".join(c["livenessProbe"]["exec"]["command"])
    assert heartbeat.startswith(mounts["run"])  # writable despite the read-only root
    # The labels collect looks for.
    from recorder.agent.collect import DEFAULT_NAMESPACE, DEFAULT_SELECTOR

    key, value = DEFAULT_SELECTOR.split("=")
    assert ds["spec"]["template"]["metadata"]["labels"][key] == value
    assert ds["metadata"]["namespace"] == DEFAULT_NAMESPACE


def test_daemonset_arguments_are_options_the_cli_has() -> None:
    args = _docs()["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "record"
    help_text = subprocess.run([sys.executable, "-m", "generator.cli.main", "record", "--help"],
                               cwd=ROOT, capture_output=True, text=True,
                               env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
    for arg in args[1:]:
        assert arg.split("=")[0] in help_text, arg
