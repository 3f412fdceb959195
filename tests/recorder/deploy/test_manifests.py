"""recorder/deploy as kustomize renders it (`kubectl kustomize`, the same renderer
`kubectl apply -k` uses): the base and every component validate against the Kubernetes
OpenAPI schema of two versions, the Namespace comes first, and the DaemonSet and the
tightening CronJob keep their promises (least privilege, every Linux node, probes on
the recorder's port, read-only RBAC), and who may read the segments is the same in the
manifests as in the agent and in collect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from k8s_schema import validate_manifests
from kustomize import render, write_overlay

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "recorder" / "deploy"
COMPONENTS = sorted(p for p in (DEPLOY / "components").iterdir() if p.is_dir())
# CRDs kubernetes-validate has no schema for (the Prometheus Operator's).
CRD_KINDS = {"PodMonitor"}
READ_VERBS = {"get", "list", "watch"}
HTTP_PORT = 9401
NAMESPACE = "flowpol-system"


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return render(DEPLOY)


@pytest.fixture(scope="module")
def with_all(tmp_path_factory) -> list[dict]:
    return render(write_overlay(tmp_path_factory.mktemp("all"), DEPLOY, COMPONENTS))


def test_the_components_are_the_ones_documented() -> None:
    assert [c.name for c in COMPONENTS] == ["prometheus", "tightening"]
    readme = (DEPLOY / "README.md").read_text()
    for c in COMPONENTS:
        assert f"components/{c.name}" in readme


def test_base_validates_against_two_kubernetes_versions(base) -> None:
    assert validate_manifests(base) == len(base) == 9


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda p: p.name)
def test_each_component_renders_and_validates(component: Path, tmp_path: Path) -> None:
    docs = render(write_overlay(tmp_path, DEPLOY, [component]))
    assert validate_manifests(docs, kinds_without_schema=CRD_KINDS) == len(docs) > 9
    _namespace_first(docs)


def test_all_components_together(with_all) -> None:
    validate_manifests(with_all, kinds_without_schema=CRD_KINDS)
    _namespace_first(with_all)
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in with_all]
    assert len(names) == len(set(names))


def _namespace_first(docs: list[dict]) -> None:
    # One `kubectl apply -k` applies in this order: the Namespace must exist before
    # anything in it, the PriorityClass, ServiceAccounts and ConfigMaps before the pods
    # that name them.
    assert docs[0]["kind"] == "Namespace" and docs[0]["metadata"]["name"] == NAMESPACE
    assert sum(d["kind"] == "Namespace" for d in docs) == 1
    order = {(d["kind"], d["metadata"]["name"]): i for i, d in enumerate(docs)}
    for d in docs[1:]:
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "PriorityClass"):
            assert "namespace" not in d["metadata"]
        else:
            assert d["metadata"]["namespace"] == NAMESPACE, d["metadata"]
    for kind in ("DaemonSet", "CronJob"):
        for d in by_kind(docs, kind):
            pod = _pod(d)
            assert order[("ServiceAccount", pod["serviceAccountName"])] < order[(kind, d["metadata"]["name"])]
            if "priorityClassName" in pod:
                assert order[("PriorityClass", pod["priorityClassName"])] < order[(kind, d["metadata"]["name"])]
            for v in pod.get("volumes", []):
                if "configMap" in v:
                    assert order[("ConfigMap", v["configMap"]["name"])] < order[(kind, d["metadata"]["name"])]


def _pod(workload: dict) -> dict:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def test_images_are_set_through_kustomize_images(tmp_path: Path) -> None:
    docs = render(write_overlay(tmp_path, DEPLOY, [DEPLOY / "components" / "tightening"], {
        "images": [{"name": "flowpol-recorder", "newName": "registry.example/flowpol-recorder",
                    "newTag": "1.2.3"},
                   {"name": "flowpol", "newName": "registry.example/flowpol", "newTag": "1.2.3"}]}))
    images = {c["image"] for d in docs if d["kind"] in ("DaemonSet", "CronJob")
              for c in _pod(d)["containers"]}
    assert images == {"registry.example/flowpol-recorder:1.2.3", "registry.example/flowpol:1.2.3"}


def test_images_are_the_tags_scripts_build_image_builds(with_all) -> None:
    from generator.version import __version__ as version
    (recorder,) = _pod(one(with_all, "DaemonSet"))["containers"]
    (job,) = _pod(one(with_all, "CronJob"))["containers"]
    assert recorder["image"] == f"flowpol-recorder:{version}"
    assert job["image"] == f"flowpol:{version}"


def test_daemonset_least_privilege_on_every_linux_node(base) -> None:
    ds = one(base, "DaemonSet")
    pod = _pod(ds)
    assert pod["hostNetwork"] is True and pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    pc = one(base, "PriorityClass", pod["priorityClassName"])
    assert 0 < pc["value"] <= 1_000_000_000 and pc["preemptionPolicy"] == "Never"
    assert not pc.get("globalDefault")
    assert pod["serviceAccountName"] == "flowpol-recorder"
    one(base, "ServiceAccount", "flowpol-recorder")
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsUser"] == 0
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    assert c["ports"] == [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(HTTP_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["segments"]["hostPath"]["path"] == mounts["segments"]
    args = c["args"]
    assert f"--segments={mounts['segments']}/segments" in args
    heartbeat = next(a.split("=", 1)[1] for a in args if a.startswith("--heartbeat="))
    assert heartbeat.startswith(mounts["run"])  # writable despite the read-only root
    # The labels and namespace collect looks for.
    from recorder.agent.collect import DEFAULT_NAMESPACE, DEFAULT_SELECTOR

    key, value = DEFAULT_SELECTOR.split("=")
    assert ds["spec"]["template"]["metadata"]["labels"][key] == value
    assert ds["metadata"]["namespace"] == DEFAULT_NAMESPACE


def test_recorder_rbac_reads_pods_and_reviews_tokens_only(base) -> None:
    role = one(base, "ClusterRole", "flowpol-recorder")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"],
                              "verbs": ["get", "list", "watch"]},
                             {"apiGroups": ["authentication.k8s.io"],
                              "resources": ["tokenreviews"], "verbs": ["create"]}]
    binding = one(base, "ClusterRoleBinding", "flowpol-recorder")
    sa = one(base, "ServiceAccount", "flowpol-recorder")["metadata"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"],
                                    "namespace": sa["namespace"]}]


def test_daemonset_arguments_are_options_the_cli_has(base) -> None:
    args = _pod(one(base, "DaemonSet"))["containers"][0]["args"]
    assert args[0] == "record"
    help_text = subprocess.run([sys.executable, "-m", "generator.cli.main", "record", "--help"],
                               cwd=ROOT, capture_output=True, text=True,
                               env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
    for arg in args[1:]:
        assert arg.split("=")[0] in help_text, arg


def test_namespace_policy_lets_only_the_tightening_pods_reach_the_port(with_all) -> None:
    from generator.verify.policy import parse_policies

    policies = parse_policies(by_kind(with_all, "NetworkPolicy"), "rendered")
    cron = one(with_all, "CronJob")
    job_labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    recorder_labels = one(with_all, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    base_policy = next(p for p in policies if p.name == "flowpol-system-ingress")
    # Every pod of the namespace is isolated for ingress; the one allowance is the
    # tightening pods to TCP 9401.
    raw = one(with_all, "NetworkPolicy", "flowpol-system-ingress")["spec"]
    assert raw["podSelector"] == {} and raw["policyTypes"] == ["Ingress"]
    (rule,) = raw["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}
    assert peer["podSelector"]["matchLabels"].items() <= job_labels.items()
    assert not peer["podSelector"]["matchLabels"].items() <= recorder_labels.items()
    assert rule["ports"] == [{"protocol": "TCP", "port": HTTP_PORT}]
    assert base_policy.namespace == NAMESPACE


def test_tightening_job_is_read_only_and_unprivileged(with_all) -> None:
    cron = one(with_all, "CronJob")
    pod = _pod(cron)
    sa = pod["serviceAccountName"]
    bound_roles = set()
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for b in by_kind(with_all, kind):
            if any(s["name"] == sa for s in b["subjects"]):
                bound_roles.add((b["roleRef"]["kind"], b["roleRef"]["name"]))
    assert bound_roles == {("ClusterRole", "flowpol-tightening"),
                           ("Role", "flowpol-tightening-collect")}
    for kind, name in bound_roles:
        for rule in one(with_all, kind, name)["rules"]:
            assert set(rule["verbs"]) <= READ_VERBS, rule
    snapshot_kinds = {"pods", "services", "endpointslices", "namespaces", "nodes",
                      "replicasets", "deployments", "statefulsets", "daemonsets", "jobs",
                      "cronjobs", "networkpolicies"}
    granted = {r for rule in one(with_all, "ClusterRole", "flowpol-tightening")["rules"]
               for r in rule["resources"]}
    assert granted == snapshot_kinds
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_tightening_job_runs_the_script_of_the_repository(with_all) -> None:
    cron = one(with_all, "CronJob")
    pod = _pod(cron)
    (c,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    script_cm = one(with_all, "ConfigMap", volumes["script"]["configMap"]["name"])
    script = (DEPLOY / "components" / "tightening" / "tighten.sh").read_text()
    assert script_cm["data"] == {"tighten.sh": script}
    assert c["command"] == ["/bin/sh", f"{mounts['script']}/tighten.sh"]
    settings = one(with_all, "ConfigMap", c["envFrom"][0]["configMapRef"]["name"])["data"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    # Every setting the script reads is set by the ConfigMap or the container.
    import re

    read = set(re.findall(r"\$\{?(FLOWPOL_[A-Z_]+)", script))
    assert read <= set(settings) | set(env)
    assert env["FLOWPOL_GIT_CREDENTIALS"] == mounts["git-credentials"]
    assert volumes["git-credentials"]["secret"]["secretName"] == "flowpol-git"
    assert env["FLOWPOL_WORK"] == mounts["work"]


def _env(container: dict) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_segment_readers_are_the_collector_and_with_the_job_the_job(base, with_all) -> None:
    from recorder.agent.collect_token import DEFAULT_SERVICE_ACCOUNT
    from recorder.agent.readers import DEFAULT_READERS

    (recorder,) = _pod(one(base, "DaemonSet"))["containers"]
    assert _env(recorder)["FLOWPOL_SEGMENT_READERS"] == DEFAULT_READERS == DEFAULT_SERVICE_ACCOUNT
    ns, name = DEFAULT_SERVICE_ACCOUNT.split("/")
    collector = one(base, "ServiceAccount", name)
    assert collector["metadata"]["namespace"] == ns
    assert collector["automountServiceAccountToken"] is False
    # An identity only: no role is bound to it, in the base or with every component.
    for docs in (base, with_all):
        for b in by_kind(docs, "RoleBinding") + by_kind(docs, "ClusterRoleBinding"):
            assert all(s["name"] != name for s in b["subjects"]), b
    # With the tightening job, its own ServiceAccount reads too (its projected token).
    (recorder,) = _pod(one(with_all, "DaemonSet"))["containers"]
    job = _pod(one(with_all, "CronJob"))
    assert _env(recorder)["FLOWPOL_SEGMENT_READERS"].split(",") == [
        DEFAULT_SERVICE_ACCOUNT, f"{NAMESPACE}/{job['serviceAccountName']}"]


def test_the_job_shows_the_recorders_a_short_lived_token_for_them_only(with_all) -> None:
    from recorder.agent.readers import AUDIENCE

    pod = _pod(one(with_all, "CronJob"))
    (c,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    (source,) = volumes["recorder-token"]["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == AUDIENCE
    assert token["expirationSeconds"] == 600  # the shortest Kubernetes allows
    assert mounts["recorder-token"]["readOnly"] is True
    assert _env(c)["FLOWPOL_TOKEN_FILE"] == f"{mounts['recorder-token']['mountPath']}/{token['path']}"


def test_the_role_for_people_who_collect(base) -> None:
    from recorder.agent.collect_token import DEFAULT_SERVICE_ACCOUNT

    role = one(base, "Role", "flowpol-collect")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/proxy", "pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"],
         "resourceNames": [DEFAULT_SERVICE_ACCOUNT.split("/")[1]], "verbs": ["create"]}]
    # Bound by the cluster's owner to whom it concerns, not by flowpol.
    assert not [b for b in by_kind(base, "RoleBinding") if b["roleRef"]["name"] == "flowpol-collect"]
    assert "--role flowpol-collect" in (DEPLOY / "README.md").read_text()


def test_the_job_collects_more_than_it_judges(with_all) -> None:
    # The recording must reach back past the window and --min-observation, or nothing is
    # ever proposed for removal; collect --since takes the segments overlapping it.
    from recorder.timefmt import parse_duration

    settings = next(d["data"] for d in by_kind(with_all, "ConfigMap")
                    if "FLOWPOL_COLLECT" in d.get("data", {}))
    since = parse_duration(settings["FLOWPOL_COLLECT_SINCE"])
    assert since > parse_duration(settings["FLOWPOL_WINDOW"])
    assert since > parse_duration(settings["FLOWPOL_MIN_OBSERVATION"])
