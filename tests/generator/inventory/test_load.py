"""Loading cluster snapshots: every accepted shape, every field, every refusal."""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
import re
from pathlib import Path

import pytest
import yaml

import k8s_objects as k
from generator.inventory.load import load_snapshot
from generator.inventory.model import (
    ApiServerCall, ContainerPort, LabelSelector, OwnerRef, ServicePort, ServiceRef,
)
from recorder.errors import SnapshotError

ASSETS = Path(__file__).parent / "assets"


def _rich_cluster() -> list[dict]:
    objs = k.base_cluster(namespaces=["shop"])
    objs += k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5", "10.244.1.6"],
                                   ports=[k.container_port(8080, "http")])
    objs += k.statefulset_with_pods("db", "shop", {"app": "db"}, ["10.244.1.40"])
    objs += k.cronjob_with_pods("report", "shop", {"app": "report"}, ["10.244.1.30"])
    objs += k.daemonset_with_pods("agent", "kube-system", {"app": "agent"},
                                  {"node-1": "192.168.0.11"}, host_network=True)
    objs.append(k.service("web", "shop", selector={"app": "web"}, cluster_ip="10.96.5.5",
                          ports=[k.service_port(80, "http", name="http")]))
    objs.append(k.network_policy("deny", "shop", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    return objs


def _write(tmp_path: Path, objs: list[dict], name: str = "cluster.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(k.kube_list(objs), indent=4))
    return path


def _without_sources(inv):  # noqa: ANN001, ANN202
    return dataclasses.replace(inv, sources=())


# -- accepted shapes -----------------------------------------------------------------------


def test_kubectl_json_list_parses_every_kind(tmp_path: Path) -> None:
    result = load_snapshot([str(_write(tmp_path, _rich_cluster()))])
    inv = result.inventory
    assert result.warnings == ()
    assert inv.kinds_present == frozenset({
        "Namespace", "Node", "Pod", "Service", "EndpointSlice", "ReplicaSet", "Deployment",
        "StatefulSet", "DaemonSet", "Job", "CronJob", "NetworkPolicy", "APIService"})
    assert [n.name for n in inv.namespaces] == ["default", "kube-system", "shop"]
    assert inv.nodes[0].addresses == ("192.168.0.11",)
    assert inv.nodes[0].pod_cidrs == ("10.244.1.0/24",)
    web = [p for p in inv.pods if p.labels and ("app", "web") in p.labels]
    assert sorted(p.ips for p in web) == [("10.244.1.5",), ("10.244.1.6",)]
    assert web[0].owner is not None and web[0].owner.kind == "ReplicaSet"
    assert web[0].ports == (ContainerPort("http", 8080, "TCP"),)
    assert web[0].created == 1714557600 * 10**9 and web[0].deleted is None
    agent = next(p for p in inv.pods if p.name.startswith("agent-"))
    assert agent.host_network and agent.ips == ("192.168.0.11",) and agent.node == "node-1"
    report_pod = next(p for p in inv.pods if p.name.startswith("report-"))
    assert report_pod.phase == "Succeeded"
    cron = next(c for c in inv.controllers if c.kind == "CronJob")
    assert cron.schedule == "*/5 * * * *" and cron.template_labels == (("app", "report"),)
    assert cron.selector is None
    job = next(c for c in inv.controllers if c.kind == "Job")
    assert job.owner == OwnerRef("CronJob", "report")
    rs = next(c for c in inv.controllers if c.kind == "ReplicaSet" and c.namespace == "shop")
    assert rs.owner == OwnerRef("Deployment", "web") and rs.replicas == 2
    svc = next(s for s in inv.services if s.name == "web")
    assert svc.cluster_ips == ("10.96.5.5",) and svc.selector == (("app", "web"),)
    assert svc.ports == (ServicePort("http", 80, "http", "TCP"),)
    dns_slice = next(s for s in inv.endpoint_slices if s.service == "kube-dns")
    assert {(p.name, p.port, p.protocol) for p in dns_slice.ports} == {
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}
    assert dns_slice.endpoints[0].pod and dns_slice.endpoints[0].ready is True
    assert inv.network_policies[0]["metadata"]["name"] == "deny"
    assert inv.captured_at is None


def test_yaml_list_and_gzip_give_the_same_inventory(tmp_path: Path) -> None:
    objs = _rich_cluster()
    from_json = load_snapshot([str(_write(tmp_path, objs))]).inventory
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(k.kube_list(objs)))
    from_yaml = load_snapshot([str(tmp_path / "cluster.yaml")]).inventory
    (tmp_path / "cluster.gz").write_bytes(gzip.compress(json.dumps(k.kube_list(objs)).encode()))
    from_gzip = load_snapshot([str(tmp_path / "cluster.gz")]).inventory
    assert _without_sources(from_yaml) == _without_sources(from_json)
    assert _without_sources(from_gzip) == _without_sources(from_json)


def test_input_order_does_not_change_the_inventory(tmp_path: Path) -> None:
    objs = _rich_cluster()
    first = load_snapshot([str(_write(tmp_path, objs, "a.json"))]).inventory
    shuffled = list(objs)
    random.Random(7).shuffle(shuffled)
    for o in shuffled:  # lists inside objects too
        if o["kind"] == "Node":
            o["status"]["addresses"].reverse()
    second = load_snapshot([str(_write(tmp_path, shuffled, "b.json"))]).inventory
    assert _without_sources(first) == _without_sources(second)


def test_multidoc_yaml_fields(tmp_path: Path) -> None:
    inv = load_snapshot([str(ASSETS / "multidoc.yaml")]).inventory
    default, shop = inv.namespaces
    # The API server sets kubernetes.io/metadata.name; a snapshot without it still gets it.
    assert default.labels == (("kubernetes.io/metadata.name", "default"),)
    assert ("team", "payments") in shop.labels
    node = inv.nodes[0]
    assert node.addresses == ("192.168.0.11", "203.0.113.11", "fd00::11")
    assert node.pod_cidrs == ("10.244.1.0/24", "fd00:10:244:1::/64")
    pod = inv.pods[0]
    assert pod.ips == ("10.244.1.7", "fd00:10:244:1::7")
    assert pod.deleted == pod.created + 3600 * 10**9 + 500_000_000
    assert pod.owner == OwnerRef("StatefulSet", "cart")
    # Sidecars (init containers with restartPolicy Always) listen; plain init ones do not.
    assert pod.ports == (ContainerPort("http", 8080), ContainerPort("metrics", 15090))
    assert inv.services[0].ports[0].target_port == 6443
    assert inv.endpoint_slices[0].endpoints[0].pod is None


def test_directory_is_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    result = load_snapshot([str(ASSETS / "cluster_dir")])
    inv = result.inventory
    assert [Path(s).name for s in inv.sources] == [
        "core.yaml", "deployments.json", "pods.json", "services.json"]
    # A typed PodList's items have no kind: it comes from the list.
    assert [p.name for p in inv.pods] == ["web"]
    # An empty DeploymentList still says the kind was captured.
    assert "Deployment" in inv.kinds_present and not inv.controllers
    # (and this partial capture has none of the kinds the API server calls)
    assert result.warnings[0].startswith("the snapshot has no ValidatingWebhookConfiguration")
    assert result.warnings[1:] == (
        "ignored 1 object(s) of kinds flowpol does not use: ConfigMap (1)",)


def test_several_files_and_duplicates(tmp_path: Path) -> None:
    objs = k.base_cluster()
    a = _write(tmp_path, objs, "a.json")
    b = _write(tmp_path, objs, "b.json")
    result = load_snapshot([str(a), str(b)])
    assert result.warnings == ()  # identical copies are not a problem
    assert len(result.inventory.pods) == 1
    changed = json.loads(json.dumps(objs))
    pod = next(o for o in changed if o["kind"] == "Pod")
    pod["status"]["podIP"] = "10.244.1.99"
    pod["status"]["podIPs"] = [{"ip": "10.244.1.99"}]
    c = _write(tmp_path, changed, "c.json")
    result = load_snapshot([str(a), str(c)])
    assert len(result.warnings) == 1 and "different content" in result.warnings[0]
    assert result.inventory.pods[0].ips == ("10.244.1.99",)


def test_single_objects_and_concatenated_json(tmp_path: Path) -> None:
    path = tmp_path / "objects.json"
    path.write_text("\n".join(json.dumps(o, indent=2) for o in k.base_cluster()))
    inv = load_snapshot([str(path)]).inventory
    assert len(inv.pods) == 1 and len(inv.services) == 2


def test_missing_controller_kinds_are_fine(tmp_path: Path) -> None:
    objs = [o for o in k.base_cluster() if o["kind"] not in ("Deployment", "ReplicaSet")]
    inv = load_snapshot([str(_write(tmp_path, objs))]).inventory
    assert "Deployment" not in inv.kinds_present and not inv.controllers
    assert inv.pods[0].owner == OwnerRef("ReplicaSet", inv.pods[0].owner.name)


def test_captured_at_from_flowpol_snapshot(tmp_path: Path) -> None:
    doc = k.kube_list(k.base_cluster())
    doc["metadata"]["annotations"] = {"flowpol/captured-at": "2024-05-01T12:00:00.25Z"}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    assert load_snapshot([str(path)]).inventory.captured_at == 1714564800 * 10**9 + 250_000_000


# -- field details -------------------------------------------------------------------------


def test_service_shapes(tmp_path: Path) -> None:
    objs = k.base_cluster() + [
        k.service("manual", "default", selector=None, ports=[k.service_port(5432)]),
        k.service("empty-selector", "default", selector={}, cluster_ip="10.96.0.30",
                  ports=[k.service_port(80, "8080")]),
        k.service("db", "default", selector={"app": "db"}, headless=True,
                  ports=[k.service_port(5432, name="pg")]),
        k.service("ext", "default", type="ExternalName", external_name="api.example.com"),
        k.service("lb", "default", selector={"app": "web"}, type="LoadBalancer",
                  cluster_ip=["10.96.0.40", "fd00:96::40"], external_traffic_policy="Local",
                  external_ips=["198.51.100.7"], load_balancer_ips=["203.0.113.50"],
                  ports=[k.service_port(443, 8443, node_port=30443)]),
    ]
    svcs = {s.name: s for s in load_snapshot([str(_write(tmp_path, objs))]).inventory.services}
    assert svcs["manual"].selector is None
    assert svcs["empty-selector"].selector == ()
    assert svcs["empty-selector"].ports[0].target_port == 8080  # "8080" is a number
    assert svcs["manual"].ports[0].target_port == 5432
    assert svcs["db"].headless and svcs["db"].cluster_ips == ()
    assert svcs["ext"].type == "ExternalName" and not svcs["ext"].headless
    lb = svcs["lb"]
    assert lb.cluster_ips == ("10.96.0.40", "fd00:96::40")
    assert lb.external_traffic_policy == "Local"
    assert lb.external_ips == ("198.51.100.7",) and lb.load_balancer_ips == ("203.0.113.50",)
    assert lb.ports == (ServicePort(None, 443, 8443, "TCP", 30443),)


def test_owner_reference_prefers_the_controller(tmp_path: Path) -> None:
    objs = k.base_cluster()
    pod = k.pod("x", "default", ip="10.244.1.50")
    pod["metadata"]["ownerReferences"] = [
        k.owner_ref("ConfigMap", "not-the-controller", controller=False),
        k.owner_ref("ReplicaSet", "x-abc"),
    ]
    mirror = k.pod("kube-apiserver-node-1", "kube-system", ip="192.168.0.11",
                   host_network=True, owner=k.owner_ref("Node", "node-1"))
    inv = load_snapshot([str(_write(tmp_path, objs + [pod, mirror]))]).inventory
    owners = {p.name: p.owner for p in inv.pods}
    assert owners["x"] == OwnerRef("ReplicaSet", "x-abc")
    assert owners["kube-apiserver-node-1"] == OwnerRef("Node", "node-1")


def test_selector_expressions_are_parsed_and_sorted(tmp_path: Path) -> None:
    dep = k.deployment("api", "default", {"app": "api", "tier": "be"}, selector={"app": "api"},
                       match_expressions=[
                           {"key": "tier", "operator": "In", "values": ["be", "api"]},
                           {"key": "canary", "operator": "DoesNotExist"}])
    inv = load_snapshot([str(_write(tmp_path, k.base_cluster() + [dep]))]).inventory
    c = next(c for c in inv.controllers if c.name == "api")
    assert c.selector == LabelSelector(
        (("app", "api"),),
        (("canary", "DoesNotExist", ()), ("tier", "In", ("api", "be"))))


def test_unquoted_yaml_timestamps_and_label_scalars(tmp_path: Path) -> None:
    text = yaml.safe_dump(k.kube_list(k.base_cluster())).replace(
        "creationTimestamp: '2024-05-01T10:00:00Z'", "creationTimestamp: 2024-05-01T10:00:00Z")
    text = re.sub(r"^( +)k8s-app: kube-dns$", r"\1k8s-app: kube-dns\n\1enabled: true\n\1replicas: 2",
                  text, count=0, flags=re.M)
    (tmp_path / "c.yaml").write_text(text)
    inv = load_snapshot([str(tmp_path / "c.yaml")]).inventory
    assert inv.pods[0].created == 1714557600 * 10**9
    # YAML reads unquoted true/2 as bool/int; the API has strings.
    assert ("enabled", "true") in inv.pods[0].labels and ("replicas", "2") in inv.pods[0].labels


# -- refusals --------------------------------------------------------------------------------


def _error(paths: list[str]) -> SnapshotError:
    with pytest.raises(SnapshotError) as info:
        load_snapshot(paths)
    return info.value


def test_snake_case_to_dict_asset_is_refused() -> None:
    err = _error([str(ASSETS / "snake_case_to_dict.json")])
    text = str(err)
    assert err.path.endswith("snake_case_to_dict.json") and err.line == 1
    assert "snake_case" in text and "to_dict()" in text
    assert "flowpol snapshot" in text and "kubectl get" in text


def _client_models() -> list:  # noqa: ANN001
    from kubernetes import client as c

    meta = c.V1ObjectMeta(name="web", namespace="default", labels={"app": "web"})
    return [
        c.V1Namespace(api_version="v1", kind="Namespace", metadata=c.V1ObjectMeta(name="default")),
        c.V1Node(api_version="v1", kind="Node", metadata=c.V1ObjectMeta(name="node-1"),
                 status=c.V1NodeStatus(addresses=[c.V1NodeAddress(address="192.168.0.11",
                                                                  type="InternalIP")])),
        c.V1Pod(api_version="v1", kind="Pod", metadata=meta,
                spec=c.V1PodSpec(containers=[c.V1Container(name="web", ports=[
                    c.V1ContainerPort(container_port=8080, name="http")])], node_name="node-1"),
                status=c.V1PodStatus(pod_ip="10.244.1.5", phase="Running")),
        c.V1Service(api_version="v1", kind="Service", metadata=meta,
                    spec=c.V1ServiceSpec(cluster_ip="10.96.0.20", selector={"app": "web"},
                                         ports=[c.V1ServicePort(port=80, target_port="http")])),
        c.V1EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice",
                          address_type="IPv4", metadata=c.V1ObjectMeta(
                              name="web-x", namespace="default",
                              labels={"kubernetes.io/service-name": "web"}),
                          endpoints=[c.V1Endpoint(addresses=["10.244.1.5"])],
                          ports=[c.DiscoveryV1EndpointPort(port=8080, name="")]),
    ]


def test_real_client_to_dict_is_refused_and_sanitized_output_accepted(tmp_path: Path) -> None:
    from kubernetes import client as c

    models = _client_models()
    for i, model in enumerate(models):
        path = tmp_path / f"todict-{i}.json"
        path.write_text(json.dumps(model.to_dict(), default=str))
        err = _error([str(path)])
        assert "to_dict()" in str(err), type(model).__name__
        # The same without the top-level api_version: still recognised by nested fields.
        stripped = {k2: v for k2, v in model.to_dict().items() if k2 not in ("api_version", "kind")}
        stripped["kind"] = model.kind
        if stripped.get("spec") or stripped.get("status") or "address_type" in stripped:
            path.write_text(json.dumps(stripped, default=str))
            assert "to_dict()" in str(_error([str(path)])), type(model).__name__
    listed = c.V1PodList(items=[models[2]]).to_dict()
    (tmp_path / "list.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(listed, default=str))))
    assert "to_dict()" in str(_error([str(tmp_path / "list.yaml")]))

    sanitized = [c.ApiClient().sanitize_for_serialization(m) for m in models]
    (tmp_path / "ok.json").write_text(json.dumps(k.kube_list(sanitized)))
    inv = load_snapshot([str(tmp_path / "ok.json")]).inventory
    assert inv.pods[0].ips == ("10.244.1.5",)
    assert inv.services[0].ports[0].target_port == "http"


def test_custom_resources_with_snake_case_fields_are_ignored_not_refused(tmp_path: Path) -> None:
    crd_object = k.obj("Certificate", "web-tls", "shop", apiVersion="cert-manager.io/v1",
                       spec={"secret_name": "web-tls", "node_name": "x"})
    result = load_snapshot([str(_write(tmp_path, k.base_cluster() + [crd_object]))])
    assert result.warnings == (
        "ignored 1 object(s) of kinds flowpol does not use: Certificate (1)",)


def test_truncated_json_names_the_line() -> None:
    err = _error([str(ASSETS / "truncated.json")])
    assert err.line == 12 and "truncated" in str(err)
    assert re.match(r".*truncated\.json:12: not valid JSON", str(err))


def test_bad_yaml_names_the_line() -> None:
    err = _error([str(ASSETS / "bad.yaml")])
    assert err.line == 8 and "not valid YAML" in str(err)


def test_missing_required_kind_names_files_and_command() -> None:
    err = _error([str(ASSETS / "missing_node.json")])
    text = str(err)
    assert "missing_node.json" in text and "no Node objects" in text
    assert "kubectl get pods,services,endpointslices,namespaces,nodes" in text
    assert "flowpol snapshot" in text


def test_object_without_name_yaml_line() -> None:
    err = _error([str(ASSETS / "no_name.yaml")])
    assert err.line == 8 and "no metadata.name" in str(err) and "Pod" in str(err)


def test_object_without_name_json_line(tmp_path: Path) -> None:
    objs = k.base_cluster()
    broken = k.pod("x", "default", ip="10.244.1.9")
    del broken["metadata"]["name"]
    objs.insert(3, broken)
    path = _write(tmp_path, objs)
    lines = path.read_text().splitlines()
    item_lines = [i + 1 for i, line in enumerate(lines) if line == "        {"]
    err = _error([str(path)])
    assert err.line == item_lines[3] and "no metadata.name" in str(err)


def test_wrong_field_type_names_object_and_line(tmp_path: Path) -> None:
    objs = k.base_cluster()
    bad = k.pod("x", "default", ip="10.244.1.9", ports=[k.container_port(80, "http")])
    bad["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    objs.append(bad)
    text = yaml.safe_dump(k.kube_list(objs), sort_keys=False)
    (tmp_path / "c.yaml").write_text(text)
    err = _error([str(tmp_path / "c.yaml")])
    lines = text.splitlines()
    assert lines[err.line - 1].startswith("- apiVersion: v1")
    assert "Pod default/x" in str(err) and "containerPort must be an integer" in str(err)


def test_namespaced_object_without_namespace(tmp_path: Path) -> None:
    objs = k.base_cluster()
    svc = k.service("x", "default")
    del svc["metadata"]["namespace"]
    objs.append(svc)
    assert "no metadata.namespace" in str(_error([str(_write(tmp_path, objs))]))


def test_object_without_kind(tmp_path: Path) -> None:
    objs = k.base_cluster()
    del objs[0]["kind"]
    assert "without `kind`" in str(_error([str(_write(tmp_path, objs))]))


@pytest.mark.parametrize("content", [b"", b"  \n\n", b"\x1f\x8b\x08\x00broken", b"\xff\xfe\x00\x00"])
def test_empty_binary_and_corrupt_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content)
    err = _error([str(path)])
    assert err.path == str(path)
    assert any(w in str(err) for w in ("empty", "truncated or corrupt", "not a text file"))


def test_missing_path_and_no_paths(tmp_path: Path) -> None:
    assert "no such file" in str(_error([str(tmp_path / "nope.json")]))
    assert "no snapshot given" in str(_error([]))


def test_scalar_document_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("just a string\n")
    assert "expected a Kubernetes object or List" in str(_error([str(tmp_path / "x.yaml")]))


@pytest.mark.parametrize("where, value, message", [
    ("containerPort", "http",
     "spec.containers[0].ports[1].containerPort must be an integer, not 'http'"),
    ("name", 7, "spec.containers[0].ports[1].name must be a string, not 7"),
    ("protocol", ["TCP"], "spec.containers[0].ports[1].protocol must be a string, not ['TCP']"),
    (None, "oops", "spec.containers[0].ports[1] must be a mapping, not str"),
])
def test_container_port_errors_name_the_field(tmp_path: Path, where: str | None, value: object,
                                              message: str) -> None:
    objs = k.base_cluster()
    bad = k.pod("x", "default", ip="10.244.1.9",
                ports=[k.container_port(80, "http"), k.container_port(81, "other")])
    if where is None:
        bad["spec"]["containers"][0]["ports"][1] = value
    else:
        bad["spec"]["containers"][0]["ports"][1][where] = value
    objs.append(bad)
    assert f"Pod default/x: {message};" in str(_error([str(_write(tmp_path, objs))]))


@pytest.mark.parametrize("field, value, message", [
    ("targetRef", "web-1", "endpoints[1].targetRef must be a mapping, not str"),
    ("conditions", [True], "endpoints[1].conditions must be a mapping, not list"),
    ("addresses", "10.0.0.1", "endpoints[1].addresses must be a list, not str"),
    (None, 5, "endpoints[1] must be a mapping, not int"),
])
def test_slice_endpoint_errors_name_the_field(tmp_path: Path, field: str | None, value: object,
                                              message: str) -> None:
    objs = k.base_cluster()
    sl = k.endpointslice("web-abc", "default", "web",
                         [k.endpoint("10.244.1.5"), k.endpoint("10.244.1.6")], [k.slice_port(80)])
    if field is None:
        sl["endpoints"][1] = value
    else:
        sl["endpoints"][1][field] = value
    objs.append(sl)
    assert f"EndpointSlice default/web-abc: {message};" in str(
        _error([str(_write(tmp_path, objs))]))


def test_byte_order_mark_and_gzip_read_as_the_plain_file(tmp_path: Path) -> None:
    plain = _write(tmp_path, _rich_cluster())
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    packed = tmp_path / "packed.json"  # gzip recognised by its magic, not its name
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    want = _without_sources(load_snapshot([str(plain)]).inventory)
    assert _without_sources(load_snapshot([str(bom)]).inventory) == want
    assert _without_sources(load_snapshot([str(packed)]).inventory) == want


def test_container_args_are_kept_for_node_agents_only(tmp_path: Path) -> None:
    objs = k.base_cluster(namespaces=["shop"])
    agent = k.daemonset_with_pods("agent", "kube-system", {"app": "agent"},
                                  {"node-1": "192.168.0.11"})
    web = k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5"])
    host = k.pod("probe", "kube-system", ip="192.168.0.11", host_network=True)
    for o in (*agent, *web, host):
        spec = o["spec"]["template"]["spec"] if "template" in o["spec"] else o["spec"]
        spec["containers"][0]["command"] = ["/agent"]
        spec["containers"][0]["args"] = ["-listen", 9100]  # an unquoted YAML number
    inv = load_snapshot([str(_write(tmp_path, objs + agent + web + [host]))]).inventory
    args = (("/agent", "-listen", "9100"),)
    controllers = {(c.kind, c.name): c for c in inv.controllers}
    assert controllers[("DaemonSet", "agent")].container_args == args
    assert controllers[("Deployment", "web")].container_args == ()
    pods = {p.name.split("-")[0]: p for p in inv.pods}
    assert pods["agent"].container_args == args and pods["probe"].container_args == args
    assert pods["web"].container_args == () and pods["coredns"].container_args == ()


@pytest.mark.parametrize("field, value, message", [
    ("args", "-localip 169.254.20.10", "spec.containers[0].args must be a list, not str"),
    ("command", [["/node-cache"]], "spec.containers[0].command[0] must be a string, not"),
])
def test_container_args_errors_name_the_field(tmp_path: Path, field: str, value: object,
                                              message: str) -> None:
    objs = k.base_cluster()
    bad = k.pod("x", "kube-system", ip="192.168.0.11", host_network=True)
    bad["spec"]["containers"][0][field] = value
    objs.append(bad)
    assert f"Pod kube-system/x: {message}" in str(_error([str(_write(tmp_path, objs))]))


# -- what the API server calls ---------------------------------------------------------------


def _declared_objects() -> list[dict]:
    return [
        k.webhook_configuration("ValidatingWebhookConfiguration", "policy", [
            k.webhook("validate.policy.example", service=k.service_reference(
                "admission", "policy-webhook", path="/validate")),
            k.webhook("audit.policy.example", url="https://audit.example:8443/hook",
                      failure_policy="Ignore")]),
        k.webhook_configuration("MutatingWebhookConfiguration", "injector", [
            k.webhook("inject.example", service=k.service_reference("admission", "injector", 8443),
                      failure_policy=None)]),
        k.api_service("v1beta1", "metrics.k8s.io",
                      k.service_reference("kube-system", "metrics-server", 443)),
        k.crd("widgets", "example.com",
              conversion_service=k.service_reference("widgets", "converter", 9443)),
        k.crd("gadgets", "example.com"),  # strategy None: no call
    ]


def test_declared_kinds_become_api_server_calls(tmp_path: Path) -> None:
    result = load_snapshot([str(_write(tmp_path, k.base_cluster() + _declared_objects()))])
    assert result.warnings == ()
    calls = result.inventory.api_server_calls
    assert calls == (
        ApiServerCall("ValidatingWebhookConfiguration", "policy", "validate.policy.example",
                      ServiceRef("admission", "policy-webhook", 443), None, "Fail"),
        ApiServerCall("ValidatingWebhookConfiguration", "policy", "audit.policy.example",
                      None, "https://audit.example:8443/hook", "Ignore"),
        # failurePolicy left out: Fail, the admissionregistration.k8s.io/v1 default
        ApiServerCall("MutatingWebhookConfiguration", "injector", "inject.example",
                      ServiceRef("admission", "injector", 8443), None, "Fail"),
        ApiServerCall("APIService", "v1.", None, None),
        ApiServerCall("APIService", "v1.apps", None, None),
        ApiServerCall("APIService", "v1beta1.metrics.k8s.io", None,
                      ServiceRef("kube-system", "metrics-server", 443)),
        ApiServerCall("CustomResourceDefinition", "widgets.example.com", None,
                      ServiceRef("widgets", "converter", 9443)),
    )


def test_a_snapshot_without_the_declared_kinds_loads_with_a_warning(tmp_path: Path) -> None:
    objs = [o for o in k.base_cluster() if o["kind"] != "APIService"]
    result = load_snapshot([str(_write(tmp_path, objs))])
    assert result.inventory.api_server_calls == ()
    (warning,) = result.warnings
    assert warning.startswith("the snapshot has no ValidatingWebhookConfiguration, "
                              "MutatingWebhookConfiguration, APIService, "
                              "CustomResourceDefinition objects")
    assert "could not be checked" in warning and "apiservices" in warning


@pytest.mark.parametrize("mutate,message", [
    (lambda o: o["webhooks"][0]["clientConfig"].update(service="admission/policy"),
     "webhooks[0].clientConfig.service must be a mapping"),
    (lambda o: o["webhooks"][0]["clientConfig"]["service"].update(port=70000),
     "webhooks[0].clientConfig.service.port must be 1-65535"),
    (lambda o: o["webhooks"][0]["clientConfig"]["service"].pop("namespace"),
     "webhooks[0].clientConfig.service needs a namespace and a name"),
    (lambda o: o.update(webhooks={"name": "x"}), "webhooks must be a list"),
])
def test_malformed_webhook_configuration_is_refused_with_its_line(tmp_path: Path, mutate,
                                                                  message: str) -> None:
    bad = _declared_objects()[0]
    mutate(bad)
    path = _write(tmp_path, k.base_cluster() + [bad])
    with pytest.raises(SnapshotError) as info:
        load_snapshot([str(path)])
    text = str(info.value)
    assert "ValidatingWebhookConfiguration policy" in text and message in text
    assert re.match(rf"{re.escape(str(path))}:\d+: ", text)
