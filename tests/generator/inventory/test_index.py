"""Inventory lookups: root owners, dead-pod hints, selectors, service backends, DNS."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

import k8s_objects as k
from generator.inventory.dns import NODE_LOCAL_DNS_IP
from generator.inventory.index import (
    Backend,
    InventoryIndex,
    VOLATILE_LABELS,
    WorkloadRef,
    selector_matches,
)
from generator.inventory.load import load_snapshot
from generator.inventory.model import Inventory, LabelSelector


def _index(tmp_path: Path, objs: list[dict], **base: object) -> InventoryIndex:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(k.kube_list(k.base_cluster(namespaces=["shop"], **base) + objs)))
    return InventoryIndex(load_snapshot([str(path)]).inventory)


def _pod(ix: InventoryIndex, ns: str, prefix: str):  # noqa: ANN202
    return next(p for p in ix.inventory.pods if p.namespace == ns and p.name.startswith(prefix))


def W(kind: str, name: str, ns: str = "shop") -> WorkloadRef:  # noqa: N802
    return WorkloadRef(ns, kind, name)


# -- root owners -----------------------------------------------------------------------------


def test_root_owners(tmp_path: Path) -> None:
    objs = (k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5", "10.244.1.6"])
            + k.statefulset_with_pods("db", "shop", {"app": "db"}, ["10.244.1.40"])
            + k.daemonset_with_pods("agent", "shop", {"app": "agent"}, {"node-1": "10.244.1.3"})
            + k.cronjob_with_pods("report", "shop", {"app": "report"}, ["10.244.1.30"])
            + [k.pod("debug", "shop", labels={"run": "debug"}, ip="10.244.1.77"),
               k.pod("kube-apiserver-node-1", "kube-system", ip="192.168.0.11",
                     host_network=True, owner=k.owner_ref("Node", "node-1"))])
    ix = _index(tmp_path, objs)
    assert ix.workload_of(_pod(ix, "shop", "web-")) == W("Deployment", "web")
    assert ix.workload_of(_pod(ix, "shop", "db-0")) == W("StatefulSet", "db")
    assert ix.workload_of(_pod(ix, "shop", "agent-")) == W("DaemonSet", "agent")
    assert ix.workload_of(_pod(ix, "shop", "report-")) == W("CronJob", "report")
    assert ix.workload_of(_pod(ix, "shop", "debug")) == W("Pod", "debug")
    mirror = _pod(ix, "kube-system", "kube-apiserver")
    assert ix.workload_of(mirror) == W("Pod", "kube-apiserver-node-1", "kube-system")
    assert [p.name for p in ix.pods_of(W("Deployment", "web"))] == sorted(
        p.name for p in ix.inventory.pods if p.name.startswith("web-"))
    assert ix.workloads() == sorted(ix.workloads())
    assert set(ix.workloads()) >= {W("Deployment", "web"), W("StatefulSet", "db"),
                                   W("DaemonSet", "agent"), W("CronJob", "report"),
                                   W("Pod", "debug"), W("Deployment", "coredns", "kube-system")}


def test_missing_intermediate_controllers_are_inferred_only_when_the_parent_exists(
        tmp_path: Path) -> None:
    objs = (k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5"],
                                   with_replicaset=False)
            + k.deployment_with_pods("orphan", "shop", {"app": "orphan"}, ["10.244.1.6"],
                                     with_replicaset=False, with_deployment=False)
            + k.cronjob_with_pods("report", "shop", {"app": "report"}, ["10.244.1.30"],
                                  with_jobs=False)
            + k.cronjob_with_pods("gone", "shop", {"app": "gone"}, ["10.244.1.31"],
                                  with_jobs=False, with_cronjob=False))
    ix = _index(tmp_path, objs)
    assert ix.workload_of(_pod(ix, "shop", "web-")) == W("Deployment", "web")
    orphan = _pod(ix, "shop", "orphan-")
    assert ix.workload_of(orphan) == W("ReplicaSet", orphan.owner.name)
    assert ix.workload_of(_pod(ix, "shop", "report-")) == W("CronJob", "report")
    gone = _pod(ix, "shop", "gone-")
    assert ix.workload_of(gone) == W("Job", gone.owner.name)
    # A workload with no pods left is still a workload.
    assert W("CronJob", "report") in ix.workloads()


def test_pod_template_hash_must_match_for_inference(tmp_path: Path) -> None:
    objs = [k.deployment("web", "shop", {"app": "web"}),
            k.pod("web-abc12-xyz12", "shop", labels={"app": "web", "pod-template-hash": "zzz99"},
                  ip="10.244.1.5", owner=k.owner_ref("ReplicaSet", "web-abc12"))]
    ix = _index(tmp_path, objs)
    assert ix.workload_of(_pod(ix, "shop", "web-")) == W("ReplicaSet", "web-abc12")


# -- dead pods known from hints ------------------------------------------------------------


def test_workload_for_hints(tmp_path: Path) -> None:
    objs = (k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5"])
            + k.statefulset_with_pods("db", "shop", {"app": "db"}, ["10.244.1.40"])
            + k.cronjob_with_pods("report", "shop", {"app": "report"}, [], with_jobs=False)
            + [k.deployment("api", "shop", {"app": "api", "tier": "be"}, selector={"app": "api"}),
               k.deployment("api-canary", "shop", {"app": "api", "track": "canary"},
                            selector={"app": "api", "track": "canary"})])
    ix = _index(tmp_path, objs)
    hints = ix.workload_for_hints
    # By the source's workload, mapped up to the root.
    assert hints("shop", (), ("Deployment", "web"), None) == W("Deployment", "web")
    assert hints("shop", {"pod-template-hash": "h4sh5"}, ("ReplicaSet", "web-h4sh5"),
                 None) == W("Deployment", "web")
    assert hints("shop", (), ("Job", "report-28600100"), None) == W("CronJob", "report")
    assert hints("shop", (), ("Job", "standalone"), None) == W("Job", "standalone")
    # By labels: exactly one controller selects them.
    assert hints("shop", (("app", "web"), ("pod-template-hash", "old")), None,
                 None) == W("Deployment", "web")
    assert hints("shop", {"app": "report", "job-name": "report-1"}, None,
                 None) == W("CronJob", "report")
    # Two controllers select {app: api, track: canary}: the pod name decides.
    labels = {"app": "api", "track": "canary"}
    assert hints("shop", labels, None, None) is None
    assert hints("shop", labels, None, "api-canary-5d4f8b7c9-qwert") == W("Deployment", "api-canary")
    # By name patterns, only when the controller exists.
    assert hints("shop", (), None, "db-7") == W("StatefulSet", "db")
    assert hints("shop", (), None, "web-7d4b9c-abcde") == W("Deployment", "web")
    assert hints("shop", (), None, "report-28600100-x2x4z") == W("CronJob", "report")
    assert hints("shop", (), None, "nothing-7d4b9c-abcde") is None
    assert hints("shop", (), None, "db") is None
    assert hints("shop", {"app": "unknown"}, None, None) is None


# -- selectors ---------------------------------------------------------------------------------


def test_spec_selector_is_preferred(tmp_path: Path) -> None:
    ix = _index(tmp_path, k.statefulset_with_pods("db", "shop", {"app": "db", "tier": "data"},
                                                  ["10.244.1.40", "10.244.1.41"]))
    choice = ix.selector_for(W("StatefulSet", "db"))
    assert choice.origin == "spec.selector"
    assert choice.match_labels == (("app", "db"), ("tier", "data"))
    assert choice.warnings == () and choice.also_selects == ()


def test_version_labels_in_spec_selector_are_dropped_only_when_they_separate_nothing(
        tmp_path: Path) -> None:
    objs = []
    for name, version in (("reviews-v1", "v1"), ("reviews-v2", "v2")):
        labels = {"app": "reviews", "version": version}
        objs += k.deployment_with_pods(name, "shop", labels, [f"10.244.1.{len(objs) + 50}"])
    chart = {"app.kubernetes.io/name": "api", "app.kubernetes.io/version": "1.8.0"}
    objs += k.deployment_with_pods("api", "shop", chart, ["10.244.1.60"])
    ix = _index(tmp_path, objs)
    api = ix.selector_for(W("Deployment", "api"))
    assert api.match_labels == (("app.kubernetes.io/name", "api"),) and api.origin == "derived"
    # Here the version is what tells the two Deployments apart: it stays.
    v1 = ix.selector_for(W("Deployment", "reviews-v1"))
    assert v1.match_labels == (("app", "reviews"), ("version", "v1"))
    assert v1.origin == "spec.selector" and v1.also_selects == ()


def test_volatile_labels_are_never_chosen(tmp_path: Path) -> None:
    # StatefulSet pods carry pod-name and pod-index labels, each unique: a selector built
    # from them would miss the replicas added by a scale-up.
    objs = k.statefulset_with_pods("db", "shop", {"app": "db"}, ["10.244.1.40", "10.244.1.41"],
                                   with_statefulset=False)
    objs += k.cronjob_with_pods("report", "shop", {"app": "report"}, ["10.244.1.30"])
    ix = _index(tmp_path, objs)
    for wl in ix.workloads():
        choice = ix.selector_for(wl)
        used = {key for key, _ in choice.match_labels}
        assert not used & VOLATILE_LABELS, (wl, choice)
    assert ix.selector_for(W("CronJob", "report")).match_labels == (("app", "report"),)
    assert ix.selector_for(W("CronJob", "report")).origin == "derived"


def test_job_selector_of_controller_uid_is_replaced(tmp_path: Path) -> None:
    ix = _index(tmp_path, [k.job("migrate", "shop", {"app": "migrate"}),
                           k.pod("migrate-x2x4z", "shop", ip="10.244.1.60",
                                 labels={"app": "migrate", "job-name": "migrate",
                                         "controller-uid": "u1"},
                                 owner=k.owner_ref("Job", "migrate", "shop"))])
    choice = ix.selector_for(W("Job", "migrate"))
    assert choice.origin == "derived" and choice.match_labels == (("app", "migrate"),)


def test_bare_pods_get_the_smallest_separating_stable_labels(tmp_path: Path) -> None:
    common = {"app.kubernetes.io/part-of": "shop", "team": "a"}
    objs = [
        k.pod("reviews-v1", "shop", ip="10.244.1.11",
              labels={**common, "app": "reviews", "version": "v1", "helm.sh/chart": "r-1"}),
        k.pod("reviews-v2", "shop", ip="10.244.1.12",
              labels={**common, "app": "reviews", "version": "v2", "helm.sh/chart": "r-1"}),
        k.pod("ratings", "shop", ip="10.244.1.13",
              labels={**common, "app": "ratings", "version": "v1", "helm.sh/chart": "r-1"}),
        k.pod("lonely", "shop", ip="10.244.1.14", labels={"pod-template-hash": "abc"}),
        k.pod("twin-a", "shop", ip="10.244.1.15", labels={"app": "twin"}),
        k.pod("twin-b", "shop", ip="10.244.1.16", labels={"app": "twin"}),
    ]
    ix = _index(tmp_path, objs)
    ratings = ix.selector_for(W("Pod", "ratings"))
    assert ratings.origin == "pod-labels" and ratings.match_labels == (("app", "ratings"),)
    # Only the version separates v1 from v2: it is added to the stable labels, never alone.
    v1 = ix.selector_for(W("Pod", "reviews-v1"))
    assert v1.match_labels == (("app", "reviews"), ("version", "v1"))
    assert v1.also_selects == ()
    lonely = ix.selector_for(W("Pod", "lonely"))
    assert lonely.is_empty() and "no stable label" in lonely.warnings[0]
    twin = ix.selector_for(W("Pod", "twin-a"))
    assert twin.match_labels == (("app", "twin"),)
    assert twin.also_selects == (W("Pod", "twin-b"),)
    assert "also selects pods of shop/Pod/twin-b" in twin.warnings[0]


def test_spec_selector_overlap_is_warned(tmp_path: Path) -> None:
    objs = (k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5"])
            + [k.pod("web-debug", "shop", labels={"app": "web", "debug": "1"}, ip="10.244.1.9")])
    ix = _index(tmp_path, objs)
    choice = ix.selector_for(W("Deployment", "web"))
    assert choice.origin == "spec.selector" and choice.also_selects == (W("Pod", "web-debug"),)
    assert "shop/Pod/web-debug" in choice.warnings[0]
    debug = ix.selector_for(W("Pod", "web-debug"))
    assert debug.match_labels == (("debug", "1"),) and debug.also_selects == ()


def test_derived_selectors_exclude_other_controllers_templates(tmp_path: Path) -> None:
    # The CronJob has no pods now; a selector for it must still not match the Deployment.
    objs = (k.deployment_with_pods("web", "shop", {"app": "web", "team": "x"}, ["10.244.1.5"])
            + k.cronjob_with_pods("clean", "shop", {"app": "web", "job": "clean", "team": "x"}, []))
    ix = _index(tmp_path, objs)
    assert ix.selector_for(W("CronJob", "clean")).match_labels == (("job", "clean"),)


def test_selector_matches_expressions() -> None:
    sel = LabelSelector((("app", "a"),), (("tier", "In", ("be", "fe")), ("canary", "DoesNotExist", ()),
                                          ("zone", "NotIn", ("x",)), ("team", "Exists", ())))
    assert selector_matches(sel, {"app": "a", "tier": "be", "team": "t"})
    assert not selector_matches(sel, {"app": "a", "tier": "db", "team": "t"})
    assert not selector_matches(sel, {"app": "a", "tier": "be", "team": "t", "canary": "1"})
    assert not selector_matches(sel, {"app": "a", "tier": "be", "team": "t", "zone": "x"})
    assert not selector_matches(sel, {"app": "a", "tier": "be"})


# -- services --------------------------------------------------------------------------------


def _named_port_cluster() -> list[dict]:
    new = k.deployment_with_pods("api", "shop", {"app": "api"}, ["10.244.1.20"],
                                 ports=[k.container_port(8080, "web")], revision="2")
    old = [o for o in k.deployment_with_pods("api", "shop", {"app": "api"}, ["10.244.1.21"],
                                             ports=[k.container_port(9090, "web")], revision="1")
           if o["kind"] != "Deployment"]
    broken = [k.pod("api-nameless", "shop", labels={"app": "api"}, ip="10.244.1.22",
                    ports=[k.container_port(7070, "other")])]
    return new + old + broken


def test_backends_named_target_port_by_selector_disagreeing_backends(tmp_path: Path) -> None:
    svc = k.service("api", "shop", selector={"app": "api"}, cluster_ip="10.96.1.1",
                    ports=[k.service_port(80, "web", name="http")])
    ix = _index(tmp_path, _named_port_cluster() + [svc])
    result = ix.backends(ix.service("shop", "api"), 80, "TCP")
    assert result.via == "selector"
    ports = {b.ip: b.target_port for b in result.backends}
    assert ports == {"10.244.1.20": 8080, "10.244.1.21": 9090}
    assert len(result.warnings) == 1 and "api-nameless" in result.warnings[0]
    assert ix.backends(ix.service("shop", "api"), 81, "TCP").warnings


def test_backends_from_endpointslices(tmp_path: Path) -> None:
    objs = _named_port_cluster()
    svc = k.service("api", "shop", selector={"app": "api"}, cluster_ip="10.96.1.1",
                    ports=[k.service_port(80, "web", name="http")])
    # EndpointSlices carry each backend's resolved number (the controller would have
    # written "web" -> 8080 and 9090 in two slices).
    slices = k.endpointslices_for(
        {**svc, "spec": {**svc["spec"], "ports": [k.service_port(80, "web", name="http")]}},
        [o for o in objs if o["kind"] == "Pod" and o["metadata"]["name"] != "api-nameless"])
    ix = _index(tmp_path, objs + [svc] + slices)
    result = ix.backends(ix.service("shop", "api"), 80, "TCP")
    assert result.via == "endpointslices" and result.warnings == ()
    assert {(b.ip, b.target_port) for b in result.backends} == {
        ("10.244.1.20", 8080), ("10.244.1.21", 9090)}
    assert all(b.pod_name for b in result.backends)
    assert result.target_ports == (8080, 9090)


def test_selectorless_service_with_manual_slice(tmp_path: Path) -> None:
    svc = k.service("legacy-db", "shop", selector=None, cluster_ip="10.96.1.2",
                    ports=[k.service_port(5432, 15432)])
    eps = k.endpointslice("legacy-db-1", "shop", "legacy-db",
                          [k.endpoint("172.16.9.9", node=None)], [k.slice_port(15432)],
                          managed=False)
    ix = _index(tmp_path, [svc, eps])
    result = ix.backends(ix.service_by_ip("10.96.1.2"), 5432, "TCP")
    assert result.backends == (Backend("shop", None, "172.16.9.9", 15432, True),)
    nothing = _index(tmp_path, [svc]).backends(ix.service("shop", "legacy-db"), 5432, "TCP")
    assert nothing.backends == () and "no selector" in nothing.warnings[0]


def test_headless_and_external_name(tmp_path: Path) -> None:
    objs = k.statefulset_with_pods("db", "shop", {"app": "db"}, ["10.244.1.40"],
                                   ports=[k.container_port(5432, "pg")])
    hl = k.service("db", "shop", selector={"app": "db"}, headless=True,
                   ports=[k.service_port(5432, "pg", name="pg")])
    bare = k.service("db-any", "shop", selector={"app": "db"}, headless=True, ports=[])
    ext = k.service("ext", "shop", type="ExternalName", external_name="api.example.com")
    ix = _index(tmp_path, objs + [hl, bare, ext])
    assert ix.backends(ix.service("shop", "db"), 5432, "TCP").backends == (
        Backend("shop", "db-0", "10.244.1.40", 5432, True),)
    assert ix.backends(ix.service("shop", "db-any"), 7000, "TCP").backends == (
        Backend("shop", "db-0", "10.244.1.40", 7000, True),)
    result = ix.backends(ix.service("shop", "ext"), 443, "TCP")
    assert result.backends == () and "ExternalName" in result.warnings[0]
    assert ix.service_by_ip("10.244.1.40") is None


def test_service_lookups(tmp_path: Path) -> None:
    objs = k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5"])
    objs += [k.service("web", "shop", selector={"app": "web"}, cluster_ip=["10.96.2.2", "fd00::2:2"],
                       type="LoadBalancer", external_ips=["198.51.100.7"],
                       load_balancer_ips=["203.0.113.50"], ports=[k.service_port(80, 8080)]),
             k.service("other", "shop", selector={"app": "other"}, cluster_ip="10.96.2.3")]
    ix = _index(tmp_path, objs)
    for ip in ("10.96.2.2", "fd00:0::2:2", "198.51.100.7", "203.0.113.50"):
        assert ix.service_by_ip(ip).name == "web", ip
    web_pod = _pod(ix, "shop", "web-")
    assert [s.name for s in ix.services_selecting(web_pod)] == ["web"]
    dns_pod = _pod(ix, "kube-system", "coredns-")
    assert [s.name for s in ix.services_selecting(dns_pod)] == ["kube-dns"]


# -- nodes, pods by IP, namespaces ---------------------------------------------------------------


def test_nodes_and_host_network(tmp_path: Path) -> None:
    objs = [k.node("node-2", ["192.168.0.12", "fd00::12"], pod_cidr=["10.244.2.0/24", "fd00:244:2::/64"]),
            k.pod("kube-proxy-x", "kube-system", host_network=True, ip="192.168.0.11"),
            k.pod("web-old", "shop", ip="10.244.1.5", phase="Succeeded"),
            k.pod("web-new", "shop", ip="10.244.1.5")]
    ix = _index(tmp_path, objs)
    assert ix.node_by_ip("192.168.0.12").name == "node-2"
    assert ix.node_by_ip("fd00:0:0::12").name == "node-2"
    assert ix.node_ips() == frozenset({"192.168.0.11", "192.168.0.12", "fd00::12"})
    assert ix.pod_cidrs() == (ipaddress.ip_network("10.244.1.0/24"),
                              ipaddress.ip_network("10.244.2.0/24"),
                              ipaddress.ip_network("fd00:244:2::/64"))
    assert ix.is_host_network_ip("192.168.0.11") and not ix.is_host_network_ip("10.244.1.5")
    assert [p.name for p in ix.pods_by_ip("192.168.0.11")] == ["kube-proxy-x"]
    assert sorted(p.name for p in ix.pods_by_ip("10.244.1.5")) == ["web-new", "web-old"]
    assert ix.namespace_labels("shop") == (("kubernetes.io/metadata.name", "shop"),)
    assert ix.namespace_labels("not-there") == (("kubernetes.io/metadata.name", "not-there"),)


def test_empty_inventory_gives_less_detail_not_a_crash() -> None:
    ix = InventoryIndex(Inventory())
    assert ix.pod("a", "b") is None and ix.pods_by_ip("10.0.0.1") == []
    assert ix.workloads() == [] and ix.node_ips() == frozenset() and ix.pod_cidrs() == ()
    assert ix.workload_for_hints("a", {"app": "x"}, None, "x-1") is None
    assert ix.workload_for_hints("a", (), ("Deployment", "x"), None) == WorkloadRef("a", "Deployment", "x")
    assert ix.selector_for(WorkloadRef("a", "Deployment", "x")).is_empty()
    dns = ix.dns_resolvers()
    assert dns.workloads == () and dns.node_local_ips == () and dns.warnings


# -- DNS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [53, 5353])
def test_dns_resolvers_use_the_real_target_ports(tmp_path: Path, target: int) -> None:
    ix = _index(tmp_path, [], dns_target_port=target, coredns_ips=("10.244.1.2", "10.244.1.3"))
    dns = ix.dns_resolvers()
    assert dns.service == ("kube-system", "kube-dns") and dns.cluster_ips == ("10.96.0.10",)
    assert dns.workloads == (W("Deployment", "coredns", "kube-system"),)
    assert dns.udp_ports == (target,) and dns.tcp_ports == (target,)
    assert len(dns.pods) == 2 and dns.node_local_ips == ()
    (wl, choice), = dns.selectors
    assert choice.match_labels == (("k8s-app", "kube-dns"),) and dns.namespaces == ("kube-system",)


def test_node_local_dns(tmp_path: Path) -> None:
    objs = k.daemonset_with_pods("node-local-dns", "kube-system", {"k8s-app": "node-local-dns"},
                                 {"node-1": "192.168.0.11"}, host_network=True)
    ix = _index(tmp_path, objs, dns_target_port=5353)
    dns = ix.dns_resolvers()
    assert dns.node_local_ips == (NODE_LOCAL_DNS_IP,)  # no args in this snapshot: assumed
    assert dns.node_local_source == "assumed (upstream default)" and dns.node_local_warnings
    assert dns.node_local_workloads == (W("DaemonSet", "node-local-dns", "kube-system"),)
    assert dns.udp_ports == (53, 5353) and dns.tcp_ports == (53, 5353)
    assert dns.workloads == (W("Deployment", "coredns", "kube-system"),)


# -- node-local-dns: where it listens ----------------------------------------------------------

UPSTREAM_ARGS = ["-localip", "169.254.20.10,10.96.0.10", "-conf", "/etc/Corefile",
                 "-upstreamsvc", "kube-dns-upstream", "-pidfile", "/tmp/node-cache.pid"]
KUBESPRAY_ARGS = ["-localip", "169.254.25.10", "-conf", "/etc/Corefile", "-upstreamsvc", "coredns"]


def _node_local(args: list[str] | None, *, name: str = "node-local-dns", with_ds: bool = True,
                pod_args: list[str] | None = None, command: list[str] | None = None) -> list[dict]:
    """A node-local-dns DaemonSet (hostNetwork) with a pod on each of two nodes; ``args``
    go to the pod template and the pods (``pod_args``: to the pods only)."""
    objs = k.daemonset_with_pods(name, "kube-system", {"k8s-app": "node-local-dns"},
                                 {"node-1": "192.168.0.11", "node-2": "192.168.0.12"},
                                 host_network=True)
    for o in objs:
        spec = o["spec"]["template"]["spec"] if o["kind"] == "DaemonSet" else o["spec"]
        given = pod_args if (o["kind"] == "Pod" and pod_args is not None) else args
        if given is not None:
            spec["containers"][0]["args"] = list(given)
        if command is not None:
            spec["containers"][0]["command"] = list(command)
    return [o for o in objs if with_ds or o["kind"] != "DaemonSet"]


@pytest.mark.parametrize("args,command,want", [
    (UPSTREAM_ARGS, None, ("169.254.20.10", "10.96.0.10")),
    (["-localip=169.254.20.10,10.96.0.10", "-conf", "/etc/Corefile"], None,
     ("169.254.20.10", "10.96.0.10")),
    (["--localip=169.254.25.10"], None, ("169.254.25.10",)),
    (["--localip", "fd00:0:0:0::a"], None, ("fd00::a",)),
    (["-conf", "/etc/Corefile"], ["/node-cache", "-localip", "169.254.25.10"], ("169.254.25.10",)),
    (None, ["/bin/sh", "-c", "exec /node-cache -localip 169.254.25.10 -conf /etc/Corefile"],
     ("169.254.25.10",)),
    # Go's flag package keeps the last value given
    (["-localip", "169.254.1.1", "-localip", "169.254.25.10"], None, ("169.254.25.10",)),
], ids=["upstream", "equals-form", "double-dash", "ipv6", "in-command", "shell", "last-wins"])
def test_node_local_dns_address_comes_from_the_daemonsets_args(
        tmp_path: Path, args: list[str] | None, command: list[str] | None,
        want: tuple[str, ...]) -> None:
    dns = _index(tmp_path, _node_local(args, command=command)).dns_resolvers()
    assert dns.node_local_ips == want
    assert dns.node_local_source == "-localip of DaemonSet kube-system/node-local-dns"
    assert dns.node_local_warnings == () and dns.warnings == ()


def test_kubespray_node_local_dns(tmp_path: Path) -> None:
    dns = _index(tmp_path, _node_local(KUBESPRAY_ARGS, name="nodelocaldns")).dns_resolvers()
    assert dns.node_local_ips == ("169.254.25.10",)
    assert dns.node_local_workloads == (W("DaemonSet", "nodelocaldns", "kube-system"),)
    assert dns.udp_ports == (53,) and dns.tcp_ports == (53,)


def test_kubespray_daemonset_without_pods_is_found_by_name(tmp_path: Path) -> None:
    objs = [o for o in _node_local(KUBESPRAY_ARGS, name="nodelocaldns") if o["kind"] != "Pod"]
    dns = _index(tmp_path, objs).dns_resolvers()
    assert dns.node_local_ips == ("169.254.25.10",) and dns.node_local_warnings == ()


def test_node_local_dns_pods_alone_carry_the_address(tmp_path: Path) -> None:
    dns = _index(tmp_path, _node_local(KUBESPRAY_ARGS, with_ds=False)).dns_resolvers()
    assert dns.node_local_ips == ("169.254.25.10",)
    assert dns.node_local_source.startswith("-localip of pod kube-system/node-local-dns-")
    assert dns.node_local_warnings == ()


def test_node_local_dns_without_args_is_assumed_with_a_warning(tmp_path: Path) -> None:
    dns = _index(tmp_path, _node_local(None)).dns_resolvers()
    assert dns.node_local_ips == (NODE_LOCAL_DNS_IP,) == ("169.254.20.10",)
    assert dns.node_local_source == "assumed (upstream default)"
    (warning,) = dns.node_local_warnings
    assert "assumed 169.254.20.10" in warning and "169.254.25.10" in warning
    assert "kubectl -n kube-system get daemonset" in warning
    assert warning in dns.warnings


def test_bad_localip_entries_are_ignored_with_a_warning(tmp_path: Path) -> None:
    dns = _index(tmp_path, _node_local(["-localip", "169.254.25.10,not-an-ip,"])).dns_resolvers()
    assert dns.node_local_ips == ("169.254.25.10",)
    assert len(dns.node_local_warnings) == 2  # the template's, not once more per pod
    assert any("'not-an-ip' is not an IP address" in w for w in dns.node_local_warnings)
    assert any("'' is not an IP address" in w for w in dns.node_local_warnings)
    assert all("DaemonSet kube-system/node-local-dns" in w for w in dns.node_local_warnings)


@pytest.mark.parametrize("args", [["-localip", "169.254.25.256"], ["-conf", "x", "-localip"]])
def test_no_valid_localip_falls_back_to_the_default(tmp_path: Path, args: list[str]) -> None:
    dns = _index(tmp_path, _node_local(args)).dns_resolvers()
    assert dns.node_local_ips == (NODE_LOCAL_DNS_IP,)
    assert len(dns.node_local_warnings) == 2
    assert "ignored" in dns.node_local_warnings[0] and "assumed" in dns.node_local_warnings[1]


def test_pods_still_on_an_old_address_are_allowed_too(tmp_path: Path) -> None:
    objs = _node_local(KUBESPRAY_ARGS, pod_args=["-localip", "169.254.20.10"])
    dns = _index(tmp_path, objs).dns_resolvers()
    assert dns.node_local_ips == ("169.254.25.10", "169.254.20.10")
    (warning,) = dns.node_local_warnings
    assert "listens on 169.254.20.10" in warning and "rollout" in warning


def test_the_dns_clusterip_in_localip_stays_a_listen_address(tmp_path: Path) -> None:
    # iptables mode: node-cache binds the kube-dns ClusterIP too and NOTRACKs it, so no
    # DNAT happens and the pods' DNS is to the ClusterIP itself (see generator.inventory.dns.find_dns).
    dns = _index(tmp_path, _node_local(UPSTREAM_ARGS)).dns_resolvers()
    assert dns.cluster_ips == ("10.96.0.10",) and "10.96.0.10" in dns.node_local_ips
    assert dns.workloads == (W("Deployment", "coredns", "kube-system"),)
