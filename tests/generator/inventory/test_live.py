"""`flowpol snapshot` through the real kubernetes client against the stand-in API server."""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import sys
from pathlib import Path

import pytest

import k8s_objects as k
from generator.inventory.kinds import KINDS, RESOURCE
from generator.inventory.live import read_cluster, write_snapshot
from generator.inventory.load import load_snapshot
from recorder.errors import ClusterError
from standin_apiserver import StandInApiServer


def _cluster() -> list[dict]:
    objs = k.base_cluster(namespaces=["shop"])
    objs += k.deployment_with_pods("web", "shop", {"app": "web"},
                                   [f"10.244.1.{i}" for i in range(10, 17)],
                                   ports=[k.container_port(8080, "http")])
    objs += k.statefulset_with_pods("db", "shop", {"app": "db"}, ["10.244.1.40", "10.244.1.41"])
    objs += k.cronjob_with_pods("report", "shop", {"app": "report"}, ["10.244.1.30"])
    objs.append(k.network_policy("deny", "shop", {"podSelector": {}}))
    for o in objs:  # what a real server returns and kubectl hides
        o["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Update"}]
    return objs


def _load(tmp_path: Path, doc: dict, name: str) -> object:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return dataclasses.replace(load_snapshot([str(path)]).inventory, sources=(), captured_at=None)


def test_snapshot_equals_kubectl_output_and_paginates(tmp_path: Path) -> None:
    objs = _cluster()
    with StandInApiServer(objs) as srv:
        result = read_cluster(str(srv.kubeconfig_path(tmp_path)), page_size=2)
        pod_requests = srv.requests_for("pods")
    per_kind = {kind: sum(1 for o in objs if o["kind"] == kind) for kind in KINDS}
    assert result.counts == per_kind
    # Pages of 2: ceil(n/2) LIST requests per kind, at least one for an empty kind.
    assert len(pod_requests) == math.ceil(per_kind["Pod"] / 2) > 1
    assert all(r.query["limit"] == "2" for r in pod_requests)
    assert sum("continue" in r.query for r in pod_requests) == len(pod_requests) - 1
    assert result.requests == sum(max(1, math.ceil(n / 2)) for n in per_kind.values())
    assert result.context == "standin" and result.warnings == ()

    doc = result.document
    assert doc["kind"] == "List" and doc["apiVersion"] == "v1"
    for item in doc["items"]:
        assert list(item)[:2] == ["apiVersion", "kind"]
        assert "managedFields" not in item["metadata"]
    keys = [(KINDS.index(i["kind"]), i["metadata"].get("namespace", ""), i["metadata"]["name"])
            for i in doc["items"]]
    assert keys == sorted(keys)
    snap, kubectl = _load(tmp_path, doc, "snap.json"), _load(tmp_path, k.kube_list(objs), "kubectl.json")
    # Raw NetworkPolicies differ only in the resourceVersion the server assigned.
    assert [p["spec"] for p in snap.network_policies] == [p["spec"] for p in kubectl.network_policies]
    assert all("managedFields" not in p["metadata"] for p in kubectl.network_policies)
    assert dataclasses.replace(snap, network_policies=()) == \
        dataclasses.replace(kubectl, network_policies=())
    captured = load_snapshot([str(tmp_path / "snap.json")]).inventory.captured_at
    assert captured is not None


def test_expired_continue_token_restarts_the_listing(tmp_path: Path) -> None:
    objs = _cluster()
    with StandInApiServer(objs) as srv:
        kubeconfig = str(srv.kubeconfig_path(tmp_path))
        baseline = read_cluster(kubeconfig, page_size=3)
        srv.expire_continue_tokens(1)
        result = read_cluster(kubeconfig, page_size=3)
    assert result.counts == baseline.counts
    assert result.requests > baseline.requests
    assert result.document["items"] == baseline.document["items"]


def test_cli_writes_a_loadable_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from generator.cli.main import main

    with StandInApiServer(_cluster()) as srv:
        kubeconfig = str(srv.kubeconfig_path(tmp_path))
        for name in ("cluster.json", "cluster.json.gz"):
            out = tmp_path / name
            monkeypatch.setattr(sys, "argv", ["flowpol", "snapshot", "--out", str(out),
                                              "--kubeconfig", kubeconfig, "--page-size", "4"])
            with pytest.raises(SystemExit) as exit_info:
                main()
            assert exit_info.value.code == 0
            inv = load_snapshot([str(out)]).inventory
            assert len(inv.pods) == 1 + 7 + 2 + 1
    err = capsys.readouterr().err
    assert "objects from context standin" in err and "requests" in err


def test_write_snapshot_to_stdout_and_unwritable(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    doc = k.kube_list(k.base_cluster())
    write_snapshot(doc, "-")
    assert json.loads(capsys.readouterr().out) == doc
    with pytest.raises(Exception) as info:
        write_snapshot(doc, str(tmp_path / "missing-dir" / "x.json"))
    assert "cannot write the snapshot" in str(info.value)


# -- failures the user can fix -----------------------------------------------------------------


def test_no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterError, match="no kubeconfig found.*--kubeconfig"):
        read_cluster()
    with pytest.raises(ClusterError, match="no such kubeconfig file"):
        read_cluster(str(tmp_path / "typo"))


def test_kubeconfig_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with StandInApiServer(_cluster()) as srv:
        monkeypatch.setenv("KUBECONFIG", str(srv.kubeconfig_path(tmp_path)))
        assert read_cluster().counts["Pod"] == 11


def test_unknown_context_lists_the_known_ones(tmp_path: Path) -> None:
    with StandInApiServer([]) as srv:
        kubeconfig = str(srv.kubeconfig_path(tmp_path, context="kind-dev"))
        with pytest.raises(ClusterError, match="context 'prod' is not in .* it has kind-dev"):
            read_cluster(kubeconfig, context="prod")


def test_kubeconfig_without_current_context(tmp_path: Path) -> None:
    with StandInApiServer(_cluster()) as srv:
        path = srv.kubeconfig_path(tmp_path)
        config = json.loads(path.read_text())
        del config["current-context"]
        path.write_text(json.dumps(config))
        with pytest.raises(ClusterError, match="no current-context; choose one of standin"):
            read_cluster(str(path))
        assert read_cluster(str(path), context="standin").counts["Pod"] == 11


def test_corrupt_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "kc").write_text("apiVersion: v1\nclusters: [\n")
    with pytest.raises(ClusterError, match="cannot read the kubeconfig"):
        read_cluster(str(tmp_path / "kc"))


def test_unauthorized(tmp_path: Path) -> None:
    with StandInApiServer(_cluster()) as srv:
        kubeconfig = str(srv.kubeconfig_path(tmp_path, token="expired"))
        with pytest.raises(ClusterError, match="rejected the credentials of context 'standin'"):
            read_cluster(kubeconfig)


def test_token_is_sent(tmp_path: Path) -> None:
    """kubernetes 36.0.0 drops kubeconfig bearer tokens; live.py must still send them."""
    with StandInApiServer(_cluster()) as srv:
        read_cluster(str(srv.kubeconfig_path(tmp_path)))


def test_forbidden_names_verb_and_resource(tmp_path: Path) -> None:
    with StandInApiServer(_cluster()) as srv:
        srv.forbid("endpointslices")
        with pytest.raises(ClusterError) as info:
            read_cluster(str(srv.kubeconfig_path(tmp_path)))
    text = str(info.value)
    assert "forbidden to `list` endpointslices (API group 'discovery.k8s.io')" in text
    assert "--verb=list" in text and ",".join(RESOURCE[k2] for k2 in KINDS) in text


def test_connection_refused(tmp_path: Path) -> None:
    with StandInApiServer([]) as srv:
        kubeconfig = str(srv.kubeconfig_path(tmp_path))
    # The server is gone; make sure nothing else took the port.
    port = int(srv_port(kubeconfig))
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    with pytest.raises(ClusterError, match="cannot reach the API server .*connection refused"):
        read_cluster(kubeconfig)


def test_cli_error_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from generator.cli.main import main

    monkeypatch.setattr(sys, "argv", ["flowpol", "snapshot", "--out", str(tmp_path / "x.json"),
                                      "--kubeconfig", str(tmp_path / "nope")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "no such kubeconfig file" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def srv_port(kubeconfig: str) -> str:
    server = json.loads(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    return server.rsplit(":", 1)[1]


def _declared() -> list[dict]:
    return [k.webhook_configuration("ValidatingWebhookConfiguration", "policy", [
                k.webhook("validate.example", service=k.service_reference("shop", "hook"))]),
            k.api_service("v1beta1", "metrics.k8s.io",
                          k.service_reference("kube-system", "metrics-server")),
            k.crd("widgets", "example.com",
                  conversion_service=k.service_reference("shop", "converter", 9443))]


def test_snapshot_has_what_the_api_server_calls_and_crds_without_schemas(tmp_path: Path) -> None:
    objs = _cluster() + _declared()
    with StandInApiServer(objs) as srv:
        result = read_cluster(str(srv.kubeconfig_path(tmp_path)))
    assert result.counts["ValidatingWebhookConfiguration"] == 1
    assert result.counts["APIService"] == 3 and result.counts["CustomResourceDefinition"] == 1
    (crd,) = [i for i in result.document["items"] if i["kind"] == "CustomResourceDefinition"]
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1", "v2"]
    assert all("schema" not in v for v in crd["spec"]["versions"])
    assert crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"] == 9443
    snap = load_snapshot([str(_write_doc(tmp_path, result.document))])
    assert snap.warnings == ()
    assert len(snap.inventory.api_server_calls) == 1 + 3 + 1


def test_forbidden_declared_kinds_are_a_warning_not_a_failure(tmp_path: Path) -> None:
    with StandInApiServer(_cluster() + _declared()) as srv:
        srv.forbid("validatingwebhookconfigurations")
        result = read_cluster(str(srv.kubeconfig_path(tmp_path)))
    assert result.counts["ValidatingWebhookConfiguration"] == 0
    assert result.counts["APIService"] == 3
    (warning,) = result.warnings
    assert "forbidden to `list` validatingwebhookconfigurations (403)" in warning
    assert "cannot be checked" in warning


def _write_doc(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "declared.json"
    path.write_text(json.dumps(doc))
    return path
