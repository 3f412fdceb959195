"""The object kinds a cluster snapshot holds, shared by the loader and the live reader."""

from __future__ import annotations

# (kind, apiVersion, namespaced, kubectl resource name) in the order snapshots list them.
KIND_TABLE: tuple[tuple[str, str, bool, str], ...] = (
    ("Namespace", "v1", False, "namespaces"),
    ("Node", "v1", False, "nodes"),
    ("Pod", "v1", True, "pods"),
    ("Service", "v1", True, "services"),
    ("EndpointSlice", "discovery.k8s.io/v1", True, "endpointslices"),
    ("ReplicaSet", "apps/v1", True, "replicasets"),
    ("Deployment", "apps/v1", True, "deployments"),
    ("StatefulSet", "apps/v1", True, "statefulsets"),
    ("DaemonSet", "apps/v1", True, "daemonsets"),
    ("Job", "batch/v1", True, "jobs"),
    ("CronJob", "batch/v1", True, "cronjobs"),
    ("NetworkPolicy", "networking.k8s.io/v1", True, "networkpolicies"),
    # What the API server calls (see DECLARED_KINDS).
    ("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1", False,
     "validatingwebhookconfigurations"),
    ("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1", False,
     "mutatingwebhookconfigurations"),
    ("APIService", "apiregistration.k8s.io/v1", False, "apiservices"),
    ("CustomResourceDefinition", "apiextensions.k8s.io/v1", False,
     "customresourcedefinitions"),
)

KINDS: tuple[str, ...] = tuple(k for k, _, _, _ in KIND_TABLE)
API_VERSION: dict[str, str] = {k: v for k, v, _, _ in KIND_TABLE}
NAMESPACED: frozenset[str] = frozenset(k for k, _, ns, _ in KIND_TABLE if ns)
RESOURCE: dict[str, str] = {k: r for k, _, _, r in KIND_TABLE}

# Every real cluster has objects of these kinds (the default namespace, nodes, the
# `kubernetes` Service and its EndpointSlice, kube-system pods): a snapshot without one
# of them was captured incompletely.
REQUIRED_KINDS: tuple[str, ...] = ("Namespace", "Node", "Pod", "Service", "EndpointSlice")

# Objects whose Services the API server itself calls: admission webhooks, aggregated
# APIs, CRD conversion webhooks. A snapshot without them still works, but what they
# need cannot be checked (generator.inventory.declared). Every cluster has APIServices
# (kube-aggregator registers one per built-in group version, served locally), so a
# snapshot without any was captured without these kinds.
DECLARED_KINDS: tuple[str, ...] = (
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
    "CustomResourceDefinition",
)

CONTROLLER_KINDS: tuple[str, ...] = (
    "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob",
)

KUBECTL_COMMAND = (
    "kubectl get pods,services,endpointslices,namespaces,nodes,replicasets,deployments,"
    "statefulsets,daemonsets,jobs,cronjobs,networkpolicies,validatingwebhookconfigurations,"
    "mutatingwebhookconfigurations,apiservices,customresourcedefinitions -A -o json > cluster.json"
)

# flowpol snapshot records when it read the cluster in the List's metadata.
CAPTURED_AT_ANNOTATION = "flowpol/captured-at"
