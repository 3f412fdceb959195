"""What the cluster declares that the API server calls: backends on their targetPorts,
the API server's addresses, and every declaration no rule can be written for."""

from __future__ import annotations

import json
from pathlib import Path

import k8s_objects as k
from generator.inventory.declared import OVERRIDE_ORIGIN, SLICE_ORIGIN
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.inventory.refs import WorkloadRef


def _index(tmp_path: Path, objs: list[dict], cidrs: tuple[str, ...] = ()) -> InventoryIndex:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(k.kube_list(objs)))
    return InventoryIndex(load_snapshot([str(path)]).inventory, cidrs)


def _webhook_backend() -> list[dict]:
    """policy-webhook: two revisions mid-rollout that name the port "webhook" 9443 and
    10443; its Service port 443 has targetPort "webhook"."""
    objs = k.deployment_with_pods("policy-webhook", "admission", {"app": "policy-webhook"},
                                  ["10.244.1.20"], ports=[k.container_port(9443, "webhook")])
    objs += k.deployment_with_pods("policy-webhook", "admission", {"app": "policy-webhook"},
                                   ["10.244.1.21"], ports=[k.container_port(10443, "webhook")],
                                   revision="2", with_deployment=False)
    svc = k.service("policy-webhook", "admission", selector={"app": "policy-webhook"},
                    cluster_ip="10.96.7.7", ports=[k.service_port(443, "webhook", name="https")])
    pods = [o for o in objs if o["kind"] == "Pod"]
    return objs + [svc] + k.endpointslices_for(svc, pods)


def test_webhook_backends_on_their_named_targetport_per_pod(tmp_path: Path) -> None:
    objs = k.base_cluster(namespaces=["admission"]) + _webhook_backend() + [
        k.webhook_configuration("ValidatingWebhookConfiguration", "policy", [
            k.webhook("validate.policy.example",
                      service=k.service_reference("admission", "policy-webhook"))])]
    declared = _index(tmp_path, objs).declared_calls()
    assert declared.checked and not declared.problems
    wl = WorkloadRef("admission", "Deployment", "policy-webhook")
    assert [(t.workload, t.port, t.protocol) for t in declared.targets] == [
        (wl, 9443, "TCP"), (wl, 10443, "TCP")]
    assert all(t.call.failure_policy == "Fail" and t.service == ("admission", "policy-webhook", 443)
               for t in declared.targets)
    # the local APIServices of base_cluster: served by the API server, nothing to allow
    assert [c.name for c in declared.local] == ["v1.", "v1.apps"]


def test_declarations_no_rule_can_be_written_for_are_problems(tmp_path: Path) -> None:
    objs = k.base_cluster(namespaces=["admission"]) + _webhook_backend()
    objs.append(k.service("outside", "admission", cluster_ip="10.96.7.8",
                          ports=[k.service_port(443, 8443)]))
    objs.append(k.endpointslice("outside-1", "admission", "outside",
                                [k.endpoint("172.16.0.9", node=None)],
                                [k.slice_port(8443)], managed=False))
    objs.append(k.service("idle", "admission", selector={"app": "nothing"},
                          cluster_ip="10.96.7.9", ports=[k.service_port(443, 8443)]))
    objs.append(k.webhook_configuration("ValidatingWebhookConfiguration", "broken", [
        k.webhook("missing-service", service=k.service_reference("admission", "gone")),
        k.webhook("missing-port", service=k.service_reference("admission", "policy-webhook", 8443),
                  failure_policy="Ignore"),
        k.webhook("by-url", url="https://hooks.example/validate"),
        k.webhook("not-a-pod", service=k.service_reference("admission", "outside")),
        k.webhook("no-backends", service=k.service_reference("admission", "idle")),
    ]))
    objs.append(k.api_service("v1beta1", "gone.example.com",
                              k.service_reference("admission", "gone")))
    declared = _index(tmp_path, objs).declared_calls()
    assert declared.targets == ()
    reasons = {(p.call.webhook or p.call.name): p.reason for p in declared.problems}
    assert reasons["missing-service"].startswith(
        "Service admission/gone is not in the snapshot: the API server's calls fail today "
        "(with failurePolicy Fail every API request it matches is rejected)")
    assert reasons["missing-port"].startswith(
        "Service admission/policy-webhook has no port 8443/TCP (it has 443/TCP)")
    assert "failurePolicy Ignore" in reasons["missing-port"]
    assert reasons["by-url"].startswith("calls the URL https://hooks.example/validate, outside")
    assert "172.16.0.9:8443, which is no pod of the snapshot" in reasons["not-a-pod"]
    assert "has no backend pod in the snapshot" in reasons["no-backends"]
    assert "its API group is unavailable" in reasons["v1beta1.gone.example.com"]


def test_apiserver_addresses_from_the_kubernetes_endpointslice(tmp_path: Path) -> None:
    api = _index(tmp_path, k.base_cluster()).apiserver()
    assert api.origin == SLICE_ORIGIN and not api.warnings
    (source,) = api.sources
    assert (source.cidr, source.addresses, source.node_names) == (
        "192.168.0.11/32", ("192.168.0.11",), ("node-1",))
    assert source.display() == "kube-apiserver 192.168.0.11 (node node-1)"
    assert api.source_of("192.168.0.11") is source and api.source_of("192.168.0.12") is None


def test_apiserver_cidr_overrides_the_endpointslice(tmp_path: Path) -> None:
    api = _index(tmp_path, k.base_cluster(), ("172.16.0.0/28", "fd00:cafe::1")).apiserver()
    assert api.origin == OVERRIDE_ORIGIN and api.overridden
    assert [s.cidr for s in api.sources] == ["172.16.0.0/28", "fd00:cafe::1/128"]
    assert api.source_of("172.16.0.5").cidr == "172.16.0.0/28"
    assert api.source_of("192.168.0.11") is None  # the EndpointSlice no longer counts


def test_no_kubernetes_endpointslice_is_a_warning(tmp_path: Path) -> None:
    objs = [o for o in k.base_cluster() if not (o["kind"] == "EndpointSlice"
                                                and o["metadata"]["name"] == "kubernetes")]
    api = _index(tmp_path, objs).apiserver()
    assert api.sources == () and "--apiserver-cidr" in api.warnings[0]
