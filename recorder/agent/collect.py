"""``flowpol collect --logs`` (the fallback): what every recorder pod printed, from its
container logs through the Kubernetes API (``pull.py`` fetches the segments instead).

The agent writes each closed window to stdout as flow-log lines, so a recorder pod's
log *is* its flow log, interleaved with the agent's own messages (stderr, plain text).
For every recorder pod (``app.kubernetes.io/name=flowpol-recorder`` in the namespace)
the log of the previous container (a restart) and of the current one are read, since a
time when given; flow-log lines are parsed with the flow-log line parser, the agent's
messages are counted and its warnings (lost connections, ...) passed on; a line that
looks like a record but does not parse is skipped and reported with ``pod:line``. The
records of all pods are merged into one deterministic flow log.

The kubelet rotates container logs (10 MiB by default): what rotated away is gone from
this path; the segments (``flowpol collect`` without ``--logs``) are not.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson

from recorder.aggregate import sorted_records
from recorder.errors import ClusterError
from recorder.flowlog import RecordError, check_header, json_error_detail, parse_record
from recorder.report import ReadReport
from recorder.schema import LogRecord

DEFAULT_NAMESPACE = "flowpol-system"
DEFAULT_SELECTOR = "app.kubernetes.io/name=flowpol-recorder"


@dataclass(frozen=True, slots=True)
class CollectResult:
    records: list[LogRecord]
    pods: tuple[str, ...]  # namespace/name of every recorder pod read
    report: ReadReport
    agent_warnings: tuple[str, ...]  # "pod: message" lines the agents logged
    warnings: tuple[str, ...]


def parse_log(text: bytes, source: str, report: ReadReport,
              agent_warnings: list[str]) -> list[LogRecord]:
    """One pod log -> its records."""
    records: list[LogRecord] = []
    kept = lines = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith(b"{"):
            report.ignore("agent-message")
            if line.startswith((b"warning:", b"error:")):
                agent_warnings.append(f"{source}: {line.decode('utf-8', 'replace')}")
            continue
        lines += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            report.skip(source, lineno, "invalid-json", json_error_detail(line, e))
            continue
        if not isinstance(obj, dict):
            report.skip(source, lineno, "not-an-object", "each line must be a JSON object")
            continue
        if obj.get("kind") == "header":
            check_header(obj, source, lineno)
            continue
        try:
            records.append(parse_record(obj))
            kept += 1
        except RecordError as e:
            report.skip(source, lineno, "bad-record", str(e))
    report.lines[source] += lines
    report.kept[source] += kept
    report.formats[source] = "recorder-log"
    return records


def collect(namespace: str = DEFAULT_NAMESPACE, selector: str = DEFAULT_SELECTOR,
            since: int | None = None, kubeconfig: str | None = None,
            context: str | None = None, strict: bool = False,
            clock: Callable[[], int] = time.time_ns) -> CollectResult:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    from recorder.kube import api_client, root_cause

    api, context_name = api_client(kubeconfig, context)
    server = api.configuration.host
    v1 = client.CoreV1Api(api)
    report = ReadReport(strict=strict)
    agent_warnings: list[str] = []
    warnings: list[str] = []
    records: list[LogRecord] = []
    try:
        try:
            listed = json.loads(v1.list_namespaced_pod(
                namespace, label_selector=selector, _preload_content=False,
                _request_timeout=(10, 60)).data)
        except ApiException as e:
            raise ClusterError(_api_error(e, f"list pods in namespace {namespace}", server,
                                          context_name)) from None
        pods = sorted((p.get("metadata") or {}).get("name", "") for p in listed.get("items") or [])
        if not pods:
            raise ClusterError(
                f"no recorder pods ({selector}) in namespace {namespace} of {server}; is "
                "the DaemonSet deployed (kubectl apply -k recorder/deploy)? Pick another "
                "namespace with --namespace")
        since_seconds = None
        if since is not None:
            since_seconds = max(1, -(-(clock() - since) // 1_000_000_000))
        for name in pods:
            for previous in (True, False):
                source = f"{namespace}/{name}" + (" (previous)" if previous else "")
                kwargs: dict[str, Any] = {"previous": previous, "_preload_content": False,
                                          "_request_timeout": (10, 600)}
                if since_seconds is not None:
                    kwargs["since_seconds"] = since_seconds
                try:
                    text = v1.read_namespaced_pod_log(name, namespace, **kwargs).data
                except ApiException as e:
                    if previous and e.status in (400, 404):
                        continue  # the container never restarted
                    if e.status == 404:
                        warnings.append(f"{source}: gone before its log could be read")
                        continue
                    raise ClusterError(_api_error(e, f"read the log of pod {name}", server,
                                                  context_name)) from None
                records.extend(parse_log(text, source, report, agent_warnings))
    except (Urllib3Error, OSError) as e:
        raise ClusterError(f"cannot reach the API server {server} of context "
                           f"{context_name!r} ({root_cause(e)})") from None
    finally:
        api.close()
    return CollectResult(sorted_records(records), tuple(f"{namespace}/{p}" for p in pods),
                         report, tuple(agent_warnings), tuple(warnings))


def _api_error(e: Any, what: str, server: str, context: str) -> str:
    try:
        message = json.loads(e.body).get("message", "") if e.body else ""
    except (ValueError, AttributeError):
        message = ""
    detail = f": {message}" if message else ""
    if e.status in (401, 403):
        return (f"not allowed to {what} on {server} (context {context!r}, {e.status}"
                f"{detail}); collect needs list on pods and get on pods/log in the "
                "recorder's namespace")
    return f"cannot {what} on {server}: {e.status} {e.reason}{detail}"
