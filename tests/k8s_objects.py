"""Build Kubernetes objects shaped exactly like ``kubectl get ... -o json`` prints them.

For test fixtures and demo data: every function returns a plain dict (camelCase, with
``apiVersion`` and ``kind``) that ``generator.inventory.load`` reads like real kubectl
output. The defaults are realistic: controllers add the labels the real controllers add
(``pod-template-hash``, ``controller-revision-hash``, ``statefulset.kubernetes.io/pod-name``,
``apps.kubernetes.io/pod-index``, ``job-name``/``controller-uid``), pods get an owner
reference with ``controller: true``, names follow the controllers' patterns.

Low level (one object each)::

    namespace("shop")
    node("node-1", "192.168.0.11", pod_cidr="10.244.1.0/24")
    pod("web-1", "shop", labels={"app": "web"}, ip="10.244.1.5", ports=[container_port(8080, "http")])
    deployment("web", "shop", labels={"app": "web"})
    service("web", "shop", selector={"app": "web"}, ports=[service_port(80, "http", name="http")])
    endpointslice("web-abc12", "shop", "web", [endpoint("10.244.1.5", pod="web-1")], [slice_port(8080, "http")])

High level (a controller with its intermediate objects and pods, names and labels as the
real controllers make them)::

    deployment_with_pods("web", "shop", {"app": "web"}, ["10.244.1.5", "10.244.2.7"])
    statefulset_with_pods("db", "shop", {"app": "db"}, ["10.244.1.9"])
    daemonset_with_pods("agent", "kube-system", {"app": "agent"}, {"node-1": "10.244.1.3"})
    cronjob_with_pods("report", "shop", {"app": "report"}, ["10.244.2.20"])
    endpointslices_for(svc, pods)   # what the EndpointSlice controller would write

    base_cluster()   # namespaces, a node, the kubernetes Service, CoreDNS: what every
                     # cluster has, so that a snapshot made of it loads
    kube_list(objs)  # the one `kind: List` kubectl prints
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Iterable, Sequence

Obj = dict[str, Any]

DEFAULT_TIME = "2024-05-01T10:00:00Z"
DEFAULT_NODE = "node-1"
_UID_NS = uuid.UUID("6f0c1c2e-0000-4000-8000-00000000f10f")

API_VERSIONS = {
    "Namespace": "v1", "Node": "v1", "Pod": "v1", "Service": "v1",
    "EndpointSlice": "discovery.k8s.io/v1", "ReplicaSet": "apps/v1", "Deployment": "apps/v1",
    "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1",
    "CronJob": "batch/v1", "NetworkPolicy": "networking.k8s.io/v1",
    "ValidatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
    "MutatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
    "APIService": "apiregistration.k8s.io/v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
}


def uid_for(kind: str, namespace: str | None, name: str) -> str:
    """A stable uid per object, so owner references agree across fixtures."""
    return str(uuid.uuid5(_UID_NS, f"{kind}/{namespace or ''}/{name}"))


def short_hash(*parts: str, length: int = 10) -> str:
    """A name suffix from the alphabet Kubernetes uses (no vowels, no 0/1/3)."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def _meta(kind: str, name: str, namespace: str | None, labels: dict | None,
          created: str | None, owner: Obj | None = None,
          annotations: dict | None = None, deleted: str | None = None) -> Obj:
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["uid"] = uid_for(kind, namespace, name)
    meta["resourceVersion"] = "1"
    if created is not None:
        meta["creationTimestamp"] = created
    if deleted is not None:
        meta["deletionTimestamp"] = deleted
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return meta


def obj(kind: str, name: str, namespace: str | None = None, *, labels: dict | None = None,
        created: str | None = DEFAULT_TIME, owner: Obj | None = None, **body: Any) -> Obj:
    """Any object: ``obj("ConfigMap", "x", "ns", data={...})``; apiVersion from the table
    (``v1`` when unknown, pass ``apiVersion=`` in body to override)."""
    out: Obj = {"apiVersion": body.pop("apiVersion", API_VERSIONS.get(kind, "v1")), "kind": kind,
                "metadata": _meta(kind, name, namespace, labels, created, owner)}
    out.update(body)
    return out


def owner_ref(kind: str, name: str, namespace: str | None = None, *,
              controller: bool = True) -> Obj:
    """An ownerReference; ``namespace`` only feeds the uid (owners share the namespace)."""
    return {"apiVersion": API_VERSIONS.get(kind, "v1"), "kind": kind, "name": name,
            "uid": uid_for(kind, namespace, name), "controller": controller,
            "blockOwnerDeletion": True}


# -- cluster-scoped ----------------------------------------------------------------------


def namespace(name: str, labels: dict | None = None, *, created: str = DEFAULT_TIME) -> Obj:
    """With ``kubernetes.io/metadata.name`` as the API server sets it."""
    all_labels = {"kubernetes.io/metadata.name": name, **(labels or {})}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta("Namespace", name, None, all_labels, created),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def node(name: str, internal_ip: str | Sequence[str], *, external_ip: str | None = None,
         pod_cidr: str | Sequence[str] | None = None, labels: dict | None = None,
         created: str = DEFAULT_TIME) -> Obj:
    internal = [internal_ip] if isinstance(internal_ip, str) else list(internal_ip)
    addresses = [{"address": ip, "type": "InternalIP"} for ip in internal]
    if external_ip:
        addresses.append({"address": external_ip, "type": "ExternalIP"})
    addresses.append({"address": name, "type": "Hostname"})
    spec: Obj = {}
    cidrs = [pod_cidr] if isinstance(pod_cidr, str) else list(pod_cidr or [])
    if cidrs:
        spec["podCIDR"] = cidrs[0]
        spec["podCIDRs"] = cidrs
    all_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": _meta("Node", name, None, all_labels, created),
            "spec": spec, "status": {"addresses": addresses}}


# -- pods --------------------------------------------------------------------------------


def container_port(port: int, name: str | None = None, protocol: str = "TCP") -> Obj:
    p: Obj = {"containerPort": port, "protocol": protocol}
    if name:
        p["name"] = name
    return p


def pod(name: str, namespace: str = "default", *, labels: dict | None = None,
        ip: str | None = None, ips: Sequence[str] | None = None, node: str | None = DEFAULT_NODE,
        host_network: bool = False, phase: str = "Running", owner: Obj | None = None,
        ports: Sequence[Obj] = (), sidecar_ports: Sequence[Obj] = (),
        init_ports: Sequence[Obj] = (), created: str = DEFAULT_TIME,
        deleted: str | None = None, host_ip: str | None = None) -> Obj:
    """A pod. ``ip`` or ``ips`` (dual stack) fill status.podIP(s); ``sidecar_ports`` go to
    an init container with ``restartPolicy: Always``, ``init_ports`` to a plain one."""
    all_ips = list(ips) if ips else ([ip] if ip else [])
    containers = [{"name": "main", "image": "registry.example/app:1", "ports": list(ports)}]
    if not ports:
        del containers[0]["ports"]
    spec: Obj = {"containers": containers, "restartPolicy": "Always",
                 "dnsPolicy": "ClusterFirst", "serviceAccountName": "default"}
    init = []
    if sidecar_ports:
        init.append({"name": "sidecar", "image": "registry.example/proxy:1",
                     "restartPolicy": "Always", "ports": list(sidecar_ports)})
    if init_ports:
        init.append({"name": "init", "image": "registry.example/init:1",
                     "ports": list(init_ports)})
    if init:
        spec["initContainers"] = init
    if node:
        spec["nodeName"] = node
    if host_network:
        spec["hostNetwork"] = True
    status: Obj = {"phase": phase}
    if host_ip or (host_network and all_ips):
        status["hostIP"] = host_ip or all_ips[0]
    if all_ips:
        status["podIP"] = all_ips[0]
        status["podIPs"] = [{"ip": i} for i in all_ips]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": _meta("Pod", name, namespace, labels, created, owner, deleted=deleted),
            "spec": spec, "status": status}


# -- controllers -------------------------------------------------------------------------


def _selector(match_labels: dict | None, match_expressions: Sequence[Obj] | None) -> Obj:
    sel: Obj = {}
    if match_labels:
        sel["matchLabels"] = dict(match_labels)
    if match_expressions:
        sel["matchExpressions"] = [dict(e) for e in match_expressions]
    return sel


def _template(labels: dict, ports: Sequence[Obj] = ()) -> Obj:
    container: Obj = {"name": "main", "image": "registry.example/app:1"}
    if ports:
        container["ports"] = list(ports)
    return {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container]}}


def deployment(name: str, namespace: str, labels: dict, *, selector: dict | None = None,
               match_expressions: Sequence[Obj] | None = None, replicas: int = 1,
               ports: Sequence[Obj] = (), created: str = DEFAULT_TIME,
               object_labels: dict | None = None) -> Obj:
    """``labels`` are the pod template's; ``selector`` defaults to them."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta("Deployment", name, namespace, object_labels, created),
            "spec": {"replicas": replicas,
                     "selector": _selector(labels if selector is None else selector,
                                           match_expressions),
                     "template": _template(labels, ports)}}


def replicaset(name: str, namespace: str, labels: dict, *, selector: dict | None = None,
               owner: Obj | None = None, replicas: int = 1, created: str = DEFAULT_TIME) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": _meta("ReplicaSet", name, namespace, labels, created, owner),
            "spec": {"replicas": replicas,
                     "selector": _selector(labels if selector is None else selector, None),
                     "template": _template(labels)}}


def statefulset(name: str, namespace: str, labels: dict, *, selector: dict | None = None,
                replicas: int = 1, service_name: str | None = None,
                created: str = DEFAULT_TIME) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": _meta("StatefulSet", name, namespace, None, created),
            "spec": {"replicas": replicas, "serviceName": service_name or name,
                     "selector": _selector(labels if selector is None else selector, None),
                     "template": _template(labels)}}


def daemonset(name: str, namespace: str, labels: dict, *, selector: dict | None = None,
              created: str = DEFAULT_TIME) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": _meta("DaemonSet", name, namespace, None, created),
            "spec": {"selector": _selector(labels if selector is None else selector, None),
                     "template": _template(labels)}}


def job(name: str, namespace: str, labels: dict, *, owner: Obj | None = None,
        created: str = DEFAULT_TIME) -> Obj:
    """Selector and template labels as the Job controller sets them (controller-uid)."""
    uid = uid_for("Job", namespace, name)
    template_labels = {**labels, "batch.kubernetes.io/controller-uid": uid,
                       "batch.kubernetes.io/job-name": name, "controller-uid": uid,
                       "job-name": name}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": _meta("Job", name, namespace, template_labels, created, owner),
            "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
                     "template": _template(template_labels)}}


def cronjob(name: str, namespace: str, labels: dict, *, schedule: str = "*/5 * * * *",
            job_selector: dict | None = None, created: str = DEFAULT_TIME) -> Obj:
    job_spec: Obj = {"template": _template(labels)}
    if job_selector:
        job_spec["selector"] = {"matchLabels": dict(job_selector)}
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": _meta("CronJob", name, namespace, None, created),
            "spec": {"schedule": schedule, "concurrencyPolicy": "Allow",
                     "jobTemplate": {"metadata": {}, "spec": job_spec}}}


def network_policy(name: str, namespace: str, spec: Obj) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta("NetworkPolicy", name, namespace, None, DEFAULT_TIME),
            "spec": spec}


# -- what the API server calls -------------------------------------------------------------


def service_reference(namespace: str, name: str, port: int | None = None,
                      path: str | None = None) -> Obj:
    """A webhook's / APIService's ``service``; ``port`` None leaves the 443 default."""
    ref: Obj = {"namespace": namespace, "name": name}
    if path is not None:
        ref["path"] = path
    if port is not None:
        ref["port"] = port
    return ref


def webhook(name: str, *, service: Obj | None = None, url: str | None = None,
            failure_policy: str | None = "Fail") -> Obj:
    """One entry of ``webhooks[]`` (rules for pods, as most admission webhooks have)."""
    config: Obj = {"caBundle": "LS0tLS1CRUdJTg=="}
    if service is not None:
        config["service"] = service
    if url is not None:
        config["url"] = url
    hook: Obj = {"name": name, "clientConfig": config, "admissionReviewVersions": ["v1"],
                 "sideEffects": "None", "timeoutSeconds": 10, "matchPolicy": "Equivalent",
                 "namespaceSelector": {}, "objectSelector": {},
                 "rules": [{"apiGroups": [""], "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"], "resources": ["pods"],
                            "scope": "*"}]}
    if failure_policy is not None:
        hook["failurePolicy"] = failure_policy
    return hook


def webhook_configuration(kind: str, name: str, webhooks: Sequence[Obj]) -> Obj:
    """``kind``: ValidatingWebhookConfiguration or MutatingWebhookConfiguration."""
    hooks = [dict(h, reinvocationPolicy="Never") if kind.startswith("Mutating") else h
             for h in webhooks]
    return obj(kind, name, webhooks=hooks)


def api_service(version: str, group: str, service: Obj | None = None) -> Obj:
    """``service`` None: a group version the API server serves itself (``v1.apps``)."""
    name = f"{version}.{group}"
    spec: Obj = {"group": group, "version": version, "groupPriorityMinimum": 17800,
                 "versionPriority": 15, "service": service}
    if service is not None:
        spec["insecureSkipTLSVerify"] = True
    return obj("APIService", name, spec=spec,
               status={"conditions": [{"type": "Available", "status": "True",
                                       "reason": "Local" if service is None else "Passed"}]})


def crd(plural: str, group: str, *, conversion_service: Obj | None = None,
        conversion_url: str | None = None) -> Obj:
    """A CustomResourceDefinition with versions v1 and v2 (and their schemas); a conversion
    webhook when a service or URL is given."""
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    spec: Obj = {"group": group, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": plural.rstrip("s"),
                           "kind": plural.rstrip("s").capitalize()},
                 "versions": [{"name": "v1", "served": True, "storage": False, "schema": schema},
                              {"name": "v2", "served": True, "storage": True, "schema": schema}],
                 "conversion": {"strategy": "None"}}
    if conversion_service is not None or conversion_url is not None:
        config: Obj = {"caBundle": "LS0tLS1CRUdJTg=="}
        if conversion_service is not None:
            config["service"] = conversion_service
        if conversion_url is not None:
            config["url"] = conversion_url
        spec["conversion"] = {"strategy": "Webhook", "webhook": {
            "clientConfig": config, "conversionReviewVersions": ["v1"]}}
    return obj("CustomResourceDefinition", f"{plural}.{group}", spec=spec)


# -- services ----------------------------------------------------------------------------


def service_port(port: int, target_port: int | str | None = None, *, name: str | None = None,
                 protocol: str = "TCP", node_port: int | None = None) -> Obj:
    """``target_port`` None = the same as ``port`` (the API server fills it in)."""
    p: Obj = {"port": port, "protocol": protocol,
              "targetPort": port if target_port is None else target_port}
    if name:
        p["name"] = name
    if node_port is not None:
        p["nodePort"] = node_port
    return p


def service(name: str, namespace: str, *, selector: dict | None = None,
            ports: Sequence[Obj] = (), cluster_ip: str | Sequence[str] | None = "10.96.0.100",
            headless: bool = False, type: str = "ClusterIP",
            external_traffic_policy: str | None = None, external_ips: Sequence[str] = (),
            load_balancer_ips: Sequence[str] = (), external_name: str | None = None,
            labels: dict | None = None, created: str = DEFAULT_TIME) -> Obj:
    """``selector`` None = a Service without selector (manual EndpointSlices)."""
    spec: Obj = {"type": type, "ports": list(ports)}
    if type == "ExternalName":
        spec["externalName"] = external_name or "example.com"
    elif headless:
        spec["clusterIP"] = "None"
        spec["clusterIPs"] = ["None"]
    elif cluster_ip:
        ips = [cluster_ip] if isinstance(cluster_ip, str) else list(cluster_ip)
        spec["clusterIP"] = ips[0]
        spec["clusterIPs"] = ips
    if selector is not None:
        spec["selector"] = dict(selector)
    if external_traffic_policy:
        spec["externalTrafficPolicy"] = external_traffic_policy
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    status: Obj = {"loadBalancer": {}}
    if load_balancer_ips:
        status["loadBalancer"] = {"ingress": [{"ip": ip} for ip in load_balancer_ips]}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta("Service", name, namespace, labels, created),
            "spec": spec, "status": status}


def endpoint(ip: str | Sequence[str], *, pod: str | None = None, namespace: str | None = None,
             node: str | None = DEFAULT_NODE, ready: bool | None = True) -> Obj:
    """One EndpointSlice endpoint; ``pod`` adds a Pod targetRef."""
    e: Obj = {"addresses": [ip] if isinstance(ip, str) else list(ip)}
    if ready is not None:
        e["conditions"] = {"ready": ready, "serving": ready, "terminating": False}
    if node:
        e["nodeName"] = node
    if pod:
        ref: Obj = {"kind": "Pod", "name": pod}
        if namespace:
            ref["namespace"] = namespace
        e["targetRef"] = ref
    return e


def slice_port(port: int | None, name: str | None = "", protocol: str = "TCP") -> Obj:
    p: Obj = {"name": name or "", "protocol": protocol}
    if port is not None:
        p["port"] = port
    return p


def endpointslice(name: str, namespace: str, service_name: str | None,
                  endpoints: Sequence[Obj], ports: Sequence[Obj], *,
                  address_type: str = "IPv4", managed: bool = True) -> Obj:
    labels: Obj = {}
    if service_name:
        labels["kubernetes.io/service-name"] = service_name
    if managed and service_name:
        labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
    owner = owner_ref("Service", service_name, namespace) if service_name and managed else None
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": _meta("EndpointSlice", name, namespace, labels, DEFAULT_TIME, owner),
            "addressType": address_type, "endpoints": list(endpoints), "ports": list(ports)}


def _named_port(p: Obj, name: str, protocol: str) -> int | None:
    for c in p["spec"]["containers"] + [
            i for i in p["spec"].get("initContainers", []) if i.get("restartPolicy") == "Always"]:
        for cp in c.get("ports", []):
            if cp.get("name") == name and cp.get("protocol", "TCP") == protocol:
                return cp["containerPort"]
    return None


def endpointslices_for(svc: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The EndpointSlices the EndpointSlice controller writes for ``svc`` and ``pods``
    (pass only the pods its selector matches). Pods that map a named targetPort to
    different numbers land in different slices, as the controller does."""
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    groups: dict[tuple, list[Obj]] = {}
    for p in pods:
        resolved = []
        for sp in svc["spec"].get("ports", []):
            tp, proto = sp.get("targetPort", sp["port"]), sp.get("protocol", "TCP")
            number = _named_port(p, tp, proto) if isinstance(tp, str) else tp
            if number is not None:
                resolved.append((sp.get("name", ""), number, proto))
        groups.setdefault(tuple(resolved), []).append(p)
    slices = []
    for ports, members in sorted(groups.items()):
        eps = [endpoint(m["status"]["podIPs"][0]["ip"], pod=m["metadata"]["name"], namespace=ns,
                        node=m["spec"].get("nodeName"),
                        ready=m["status"].get("phase") == "Running")
               for m in members if m["status"].get("podIPs")]
        slices.append(endpointslice(f"{name}-{short_hash(name, *map(str, ports), length=5)}",
                                    ns, name, eps,
                                    [slice_port(n, pn, pr) for pn, n, pr in ports]))
    return slices


# -- controllers with their pods ---------------------------------------------------------


def deployment_with_pods(name: str, namespace: str, labels: dict, ips: Sequence[str], *,
                         node: str = DEFAULT_NODE, ports: Sequence[Obj] = (),
                         with_replicaset: bool = True, with_deployment: bool = True,
                         selector: dict | None = None, created: str = DEFAULT_TIME,
                         revision: str = "1") -> list[Obj]:
    """A Deployment, its ReplicaSet ``<name>-<hash>`` and pods ``<rs>-<5 chars>`` with
    the ``pod-template-hash`` label. Leave out the ReplicaSet or Deployment objects to
    test inference."""
    rs_hash = short_hash("rs", namespace, name, revision)
    rs_name = f"{name}-{rs_hash}"
    pod_labels = {**labels, "pod-template-hash": rs_hash}
    rs_selector = {**(labels if selector is None else selector), "pod-template-hash": rs_hash}
    out: list[Obj] = []
    if with_deployment:
        out.append(deployment(name, namespace, labels, selector=selector, replicas=len(ips),
                              ports=ports, created=created))
    if with_replicaset:
        out.append(replicaset(rs_name, namespace, pod_labels, selector=rs_selector,
                              owner=owner_ref("Deployment", name, namespace),
                              replicas=len(ips), created=created))
    for i, ip in enumerate(ips):
        out.append(pod(f"{rs_name}-{short_hash(rs_name, str(i), length=5)}", namespace,
                       labels=pod_labels, ip=ip, node=node, ports=ports, created=created,
                       owner=owner_ref("ReplicaSet", rs_name, namespace)))
    return out


def statefulset_with_pods(name: str, namespace: str, labels: dict, ips: Sequence[str], *,
                          node: str = DEFAULT_NODE, ports: Sequence[Obj] = (),
                          with_statefulset: bool = True, created: str = DEFAULT_TIME) -> list[Obj]:
    """Pods ``<name>-<ordinal>`` with controller-revision-hash, pod-name and pod-index."""
    revision = f"{name}-{short_hash('sts', namespace, name)}"
    out: list[Obj] = []
    if with_statefulset:
        out.append(statefulset(name, namespace, labels, replicas=len(ips), created=created))
    for i, ip in enumerate(ips):
        pod_name = f"{name}-{i}"
        out.append(pod(pod_name, namespace, labels={
            **labels, "controller-revision-hash": revision,
            "statefulset.kubernetes.io/pod-name": pod_name, "apps.kubernetes.io/pod-index": str(i),
        }, ip=ip, node=node, ports=ports, created=created,
            owner=owner_ref("StatefulSet", name, namespace)))
    return out


def daemonset_with_pods(name: str, namespace: str, labels: dict, ips_by_node: dict[str, str], *,
                        host_network: bool = False, ports: Sequence[Obj] = (),
                        created: str = DEFAULT_TIME) -> list[Obj]:
    """One pod ``<name>-<5 chars>`` per node, with controller-revision-hash and
    pod-template-generation."""
    out: list[Obj] = [daemonset(name, namespace, labels, created=created)]
    revision = short_hash("ds", namespace, name)
    for node_name, ip in sorted(ips_by_node.items()):
        out.append(pod(f"{name}-{short_hash(name, node_name, length=5)}", namespace, labels={
            **labels, "controller-revision-hash": revision, "pod-template-generation": "1",
        }, ip=ip, node=node_name, host_network=host_network, ports=ports, created=created,
            owner=owner_ref("DaemonSet", name, namespace)))
    return out


def cronjob_with_pods(name: str, namespace: str, labels: dict, ips: Sequence[str], *,
                      node: str = DEFAULT_NODE, schedule: str = "*/5 * * * *",
                      with_jobs: bool = True, with_cronjob: bool = True,
                      first_run: int = 28600000, phase: str = "Succeeded",
                      created: str = DEFAULT_TIME) -> list[Obj]:
    """One Job ``<name>-<minutes since epoch>`` per IP, each with one pod
    ``<job>-<5 chars>`` carrying job-name and controller-uid labels."""
    out: list[Obj] = []
    if with_cronjob:
        out.append(cronjob(name, namespace, labels, schedule=schedule, created=created))
    for i, ip in enumerate(ips):
        job_name = f"{name}-{first_run + 5 * i}"
        j = job(job_name, namespace, labels, owner=owner_ref("CronJob", name, namespace),
                created=created)
        if with_jobs:
            out.append(j)
        out.append(pod(f"{job_name}-{short_hash(job_name, length=5)}", namespace,
                       labels=j["spec"]["template"]["metadata"]["labels"], ip=ip, node=node,
                       phase=phase, created=created, owner=owner_ref("Job", job_name, namespace)))
    return out


# -- whole snapshots ---------------------------------------------------------------------


def base_cluster(*, node_name: str = DEFAULT_NODE, node_ip: str = "192.168.0.11",
                 pod_cidr: str = "10.244.1.0/24", dns_target_port: int = 53,
                 coredns_ips: Sequence[str] = ("10.244.1.2",),
                 namespaces: Sequence[str] = ()) -> list[Obj]:
    """What every cluster has: namespaces default, kube-system (plus ``namespaces``), one
    node, the ``kubernetes`` Service with its EndpointSlice, CoreDNS (Deployment
    ``coredns`` behind Service ``kube-dns`` 10.96.0.10, UDP/TCP 53 -> ``dns_target_port``
    named ``dns``/``dns-tcp``), and the local APIServices of the core and apps groups."""
    objs: list[Obj] = [namespace(n) for n in ("default", "kube-system", *namespaces)]
    objs.append(node(node_name, node_ip, pod_cidr=pod_cidr))
    api = service("kubernetes", "default", ports=[service_port(443, 6443, name="https")],
                  cluster_ip="10.96.0.1", labels={"component": "apiserver",
                                                  "provider": "kubernetes"})
    objs.append(api)
    objs.append(endpointslice("kubernetes", "default", "kubernetes",
                              [endpoint(node_ip, node=None)], [slice_port(6443, "https")]))
    dns_ports = [container_port(dns_target_port, "dns", "UDP"),
                 container_port(dns_target_port, "dns-tcp", "TCP"),
                 container_port(9153, "metrics", "TCP")]
    coredns = deployment_with_pods("coredns", "kube-system", {"k8s-app": "kube-dns"},
                                   list(coredns_ips), node=node_name, ports=dns_ports)
    objs.extend(coredns)
    kube_dns = service("kube-dns", "kube-system", selector={"k8s-app": "kube-dns"},
                       cluster_ip="10.96.0.10",
                       labels={"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
                       ports=[service_port(53, "dns", name="dns", protocol="UDP"),
                              service_port(53, "dns-tcp", name="dns-tcp"),
                              service_port(9153, 9153, name="metrics")])
    objs.append(kube_dns)
    objs.extend(endpointslices_for(kube_dns, [o for o in coredns if o["kind"] == "Pod"]))
    objs += [api_service("v1", ""), api_service("v1", "apps")]
    return objs


def kube_list(objects: Iterable[Obj]) -> Obj:
    """The ``kind: List`` that ``kubectl get <kinds> -A -o json`` prints."""
    return {"apiVersion": "v1", "items": list(objects), "kind": "List",
            "metadata": {"resourceVersion": ""}}
