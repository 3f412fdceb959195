"""Read the inventory from a live cluster with the ``kubernetes`` client.

Lists the snapshot kinds in all namespaces, page by page (``limit`` + ``continue``), and
builds the one ``kind: List`` document that ``kubectl get <kinds> -A -o json`` prints:
camelCase, every item with ``apiVersion`` and ``kind`` (the API leaves them off list
items), ``managedFields`` left out as kubectl does by default, items in a fixed order.

The client is asked for the raw JSON (``_preload_content=False``) instead of its model
objects: that is byte-for-byte what the API server sent, so fields newer than the
installed client survive, and no model validation can fail on what a newer server
returns. The result is the same camelCase JSON that ``sanitize_for_serialization`` of
the models would give, minus those losses.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from generator.inventory.kinds import (
    API_VERSION,
    CAPTURED_AT_ANNOTATION,
    DECLARED_KINDS,
    KINDS,
    REQUIRED_KINDS,
    RESOURCE,
)
from recorder.errors import ClusterError, UsageError
from recorder.kube import api_client as make_api_client, root_cause
from recorder.timefmt import format_time

DEFAULT_PAGE_SIZE = 500
REQUEST_TIMEOUT = (10, 120)  # connect, read (s)
CONTEXT_ANNOTATION = "flowpol/context"

# kind -> (client API class, list method over all namespaces)
_LIST_CALLS: dict[str, tuple[str, str]] = {
    "Namespace": ("CoreV1Api", "list_namespace"),
    "Node": ("CoreV1Api", "list_node"),
    "Pod": ("CoreV1Api", "list_pod_for_all_namespaces"),
    "Service": ("CoreV1Api", "list_service_for_all_namespaces"),
    "EndpointSlice": ("DiscoveryV1Api", "list_endpoint_slice_for_all_namespaces"),
    "ReplicaSet": ("AppsV1Api", "list_replica_set_for_all_namespaces"),
    "Deployment": ("AppsV1Api", "list_deployment_for_all_namespaces"),
    "StatefulSet": ("AppsV1Api", "list_stateful_set_for_all_namespaces"),
    "DaemonSet": ("AppsV1Api", "list_daemon_set_for_all_namespaces"),
    "Job": ("BatchV1Api", "list_job_for_all_namespaces"),
    "CronJob": ("BatchV1Api", "list_cron_job_for_all_namespaces"),
    "NetworkPolicy": ("NetworkingV1Api", "list_network_policy_for_all_namespaces"),
    "ValidatingWebhookConfiguration": ("AdmissionregistrationV1Api",
                                       "list_validating_webhook_configuration"),
    "MutatingWebhookConfiguration": ("AdmissionregistrationV1Api",
                                     "list_mutating_webhook_configuration"),
    "APIService": ("ApiregistrationV1Api", "list_api_service"),
    "CustomResourceDefinition": ("ApiextensionsV1Api", "list_custom_resource_definition"),
}
assert tuple(_LIST_CALLS) == KINDS


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    document: dict  # the kubectl-style List
    counts: dict[str, int]  # kind -> objects
    requests: int  # LIST requests made (pages)
    context: str  # the kubeconfig context used ("in-cluster" inside a pod)
    server: str
    warnings: tuple[str, ...] = ()


def read_cluster(kubeconfig: str | None = None, context: str | None = None,
                 page_size: int = DEFAULT_PAGE_SIZE,
                 clock: Callable[[], int] = time.time_ns) -> LiveSnapshot:
    """List every snapshot kind. Raises ClusterError with what to do on failure."""
    if page_size < 1:
        raise UsageError(f"--page-size must be at least 1, got {page_size}")
    api_client, context_name = make_api_client(kubeconfig, context)
    server = api_client.configuration.host
    started = clock()
    items: list[dict] = []
    counts: dict[str, int] = {}
    warnings: list[str] = []
    requests = 0
    try:
        for kind in KINDS:
            listed, n = _list_kind(api_client, kind, page_size, context_name, server, warnings)
            requests += n
            counts[kind] = len(listed)
            items.extend(listed)
    finally:
        api_client.close()
    items.sort(key=lambda o: (KINDS.index(o["kind"]), o["metadata"].get("namespace", ""),
                              o["metadata"].get("name", "")))
    document = {
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {
            "resourceVersion": "",
            # When the listing started: every object existed at or after this time.
            "annotations": {CAPTURED_AT_ANNOTATION: format_time(started),
                            CONTEXT_ANNOTATION: context_name},
        },
    }
    return LiveSnapshot(document, counts, requests, context_name, server, tuple(warnings))


def write_snapshot(document: dict, output: str) -> None:
    """JSON as kubectl prints it (4-space indent); gzip when the name ends in .gz;
    ``-`` = stdout. Written to a temporary file and renamed, so a failed run never leaves
    a half-written snapshot behind."""
    text = json.dumps(document, indent=4, ensure_ascii=False) + "\n"
    if output == "-":
        sys.stdout.write(text)
        return
    path = Path(output)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    data = text.encode()
    try:
        if path.name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"{output}: cannot write the snapshot: {e.strerror}") from None


# -- connecting --------------------------------------------------------------------------


# -- listing -----------------------------------------------------------------------------


def _list_kind(api_client: Any, kind: str, page_size: int, context: str, server: str,
               warnings: list[str]) -> tuple[list[dict], int]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    api_class, method = _LIST_CALLS[kind]
    list_call = getattr(getattr(client, api_class)(api_client), method)
    items: list[dict] = []
    token: str | None = None
    requests = restarts = 0
    while True:
        kwargs: dict[str, Any] = {"limit": page_size, "_preload_content": False,
                                  "_request_timeout": REQUEST_TIMEOUT}
        if token:
            kwargs["_continue"] = token
        requests += 1
        try:
            response = list_call(**kwargs)
            body = json.loads(response.data)
        except ApiException as e:
            if e.status == 410 and token and restarts < 3:
                # The continue token expired (the cluster compacted): list again.
                items, token, restarts = [], None, restarts + 1
                continue
            if e.status == 404 and kind not in REQUIRED_KINDS:
                warnings.append(f"the API server does not serve {API_VERSION[kind]} "
                                f"{RESOURCE[kind]}; the snapshot has none")
                return [], requests
            if e.status == 403 and kind in DECLARED_KINDS:
                # Optional: without them the snapshot still serves, and generate says
                # what it could not check.
                warnings.append(
                    f"forbidden to `list` {RESOURCE[kind]} (403), so the snapshot has none: "
                    "what the API server calls (webhooks, aggregated APIs, CRD conversion) "
                    f"cannot be checked; grant `list` on {RESOURCE[kind]} to include them")
                return [], requests
            raise _api_error(e, kind, context, server) from None
        except (Urllib3Error, OSError) as e:
            raise ClusterError(
                f"cannot reach the API server {server} of context {context!r} "
                f"({root_cause(e)}); check that the cluster is running and that "
                f"`kubectl --context {context} get nodes` works"
            ) from None
        except ValueError as e:
            raise ClusterError(f"listing {RESOURCE[kind]} from {server}: the answer is not "
                               f"JSON ({e}); is {server} a Kubernetes API server?") from None
        for obj in body.get("items") or []:
            obj.get("metadata", {}).pop("managedFields", None)
            if kind == "CustomResourceDefinition":
                _drop_schemas(obj)
            items.append({"apiVersion": API_VERSION[kind], "kind": kind,
                          **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}})
        token = (body.get("metadata") or {}).get("continue") or None
        if token is None:
            return items, requests


def _drop_schemas(crd: dict) -> None:
    """A CRD without its OpenAPI schemas (``spec.versions[].schema``): flowpol reads only
    its conversion webhook, and the schemas of a cluster's CRDs can be hundreds of MB."""
    spec = crd.get("spec")
    versions = spec.get("versions") if isinstance(spec, dict) else None
    for v in versions if isinstance(versions, list) else ():
        if isinstance(v, dict):
            v.pop("schema", None)


def _api_error(e: Any, kind: str, context: str, server: str) -> ClusterError:
    resource, version = RESOURCE[kind], API_VERSION[kind]
    group = version.split("/")[0] if "/" in version else ""
    try:
        message = json.loads(e.body).get("message", "") if e.body else ""
    except (ValueError, AttributeError):
        message = ""
    detail = f" ({message})" if message else ""
    if e.status == 401:
        return ClusterError(
            f"the API server {server} rejected the credentials of context {context!r} "
            f"(401 Unauthorized){detail}; log in again or renew the token or client "
            "certificate, then retry")
    if e.status == 403:
        return ClusterError(
            f"forbidden to `list` {resource} (API group {group or 'core'!r}) in all "
            f"namespaces (403){detail}. flowpol snapshot needs `list` on "
            f"{', '.join(RESOURCE[k] for k in KINDS)} cluster-wide: bind a ClusterRole, e.g. "
            f"`kubectl create clusterrole flowpol-reader --verb=list "
            f"--resource={','.join(RESOURCE[k] for k in KINDS)}` and "
            "`kubectl create clusterrolebinding flowpol-reader --clusterrole=flowpol-reader "
            "--user=<you>`")
    if e.status == 404:
        return ClusterError(f"the API server {server} does not serve {version} {resource} "
                            f"(404){detail}; flowpol needs Kubernetes 1.21 or newer")
    if e.status == 0:
        return ClusterError(f"talking to {server} failed: {e.reason}; check the server "
                            "address and its certificate in the kubeconfig")
    return ClusterError(f"listing {resource} from {server} failed: {e.status} {e.reason}"
                        f"{detail}")


# -- NetworkPolicies only (flowpol verify --cluster) -------------------------------------


@dataclass(frozen=True, slots=True)
class LivePolicies:
    items: list[dict]  # NetworkPolicy objects as kubectl prints them, sorted by namespace/name
    context: str
    server: str
    requests: int
    warnings: tuple[str, ...] = ()


def read_network_policies(kubeconfig: str | None = None, context: str | None = None,
                          page_size: int = DEFAULT_PAGE_SIZE) -> LivePolicies:
    """List only the NetworkPolicies of every namespace. Raises ClusterError on failure."""
    api_client, context_name = make_api_client(kubeconfig, context)
    server = api_client.configuration.host
    warnings: list[str] = []
    try:
        items, requests = _list_kind(api_client, "NetworkPolicy", page_size, context_name,
                                     server, warnings)
    finally:
        api_client.close()
    if warnings:  # a 404: without the API we cannot say what the cluster allows
        raise ClusterError(f"the API server {server} of context {context_name!r} does not "
                           f"serve {API_VERSION['NetworkPolicy']} networkpolicies (404), so "
                           "what it allows cannot be verified; check the context")
    items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"].get("name", "")))
    return LivePolicies(items, context_name, server, requests)
