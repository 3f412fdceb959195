"""Who holds which pod IP on this node: a pod watch through the Kubernetes API.

The agent lists the pods of its node (``fieldSelector=spec.nodeName=$NODE_NAME``, the
node name from the downward API), then watches them from the list's resourceVersion
(relisting on 410 Gone or a broken stream). Every change of who holds an address becomes
an IP timeline record (recorder/schema.py ``IpTimelineRecord``):

* assigned: ``valid_to`` absent. ``valid_from`` is the earliest evidence that the pod
  has its network: the ``PodReadyToStartContainers`` condition (set when the sandbox and
  its IP exist), else ``status.startTime``, else ``creationTimestamp`` — but never
  before the moment this agent saw the address released by its previous holder, and
  never in the future. The API's times have one-second resolution; the release bound
  keeps a quick reuse from overlapping the previous holder.
* released: the same record with ``valid_to`` = when the agent saw the pod deleted, its
  phase become Succeeded/Failed (the kubelet tears the sandbox down), its IP change, or
  another pod take the address.

Labels that change make a new interval (close, open). hostNetwork pods are recorded
with ``host_network: true``: their address is the node's, shared by every such pod, so
they never displace each other or a pod-network pod.

Root owner, from ``ownerReferences`` alone (the agent reads nothing but pods): a
ReplicaSet whose name is ``<deployment>-<pod-template-hash label>`` is reported as that
Deployment; a Job named ``<cronjob>-<8+ digits>`` (the scheduled minute, as the CronJob
controller names them) as that CronJob; otherwise the controller itself (StatefulSet,
DaemonSet, Job, ReplicaSet, ...). A pod without a controller has no owner. The generator
checks all of it against the inventory.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from recorder.aggregate import RecentTable
from recorder.errors import ClusterError
from recorder.schema import IpTimelineRecord, Workload, labels_tuple
from recorder.timefmt import parse_time

WATCH_TIMEOUT_S = 300
PAGE_SIZE = 500
RELEASE_MEMORY = 65536  # addresses whose last release time is remembered
_CRONJOB_JOB = re.compile(r"^(.+)-\d{8,}$")
_TERMINAL = frozenset({"Succeeded", "Failed"})

Emit = Callable[[list], None]


@dataclass(frozen=True, slots=True)
class PodAddresses:
    """What the IP timeline needs of one pod."""

    key: str  # namespace/name: what IP timeline records identify a pod by
    namespace: str
    name: str
    ips: tuple[str, ...]  # empty when the pod holds no address (pending, finished)
    labels: tuple[tuple[str, str], ...]
    owner: Workload | None
    host_network: bool
    node: str | None
    network_since: int | None  # ns: earliest evidence the pod had its IP


def root_owner(meta: dict) -> Workload | None:
    refs = meta.get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not ref or not ref.get("kind") or not ref.get("name"):
        return None
    kind, name = str(ref["kind"]), str(ref["name"])
    if kind == "ReplicaSet":
        template_hash = (meta.get("labels") or {}).get("pod-template-hash")
        if template_hash and name.endswith("-" + template_hash):
            return Workload("Deployment", name[: -len(template_hash) - 1])
    elif kind == "Job":
        m = _CRONJOB_JOB.match(name)
        if m:
            return Workload("CronJob", m.group(1))
    return Workload(kind, name)


def _time(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def pod_addresses(obj: dict) -> PodAddresses:
    """A pod as the API serves it (camelCase JSON) -> PodAddresses."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ips: tuple[str, ...] = ()
    if status.get("phase") not in _TERMINAL:
        listed = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict)]
        if not listed and status.get("podIP"):
            listed = [status["podIP"]]
        ips = tuple(dict.fromkeys(ip for ip in listed if isinstance(ip, str) and ip))
    since = None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodReadyToStartContainers" and cond.get("status") == "True":
            since = _time(cond.get("lastTransitionTime"))
    if since is None:
        since = _time(status.get("startTime")) or _time(meta.get("creationTimestamp"))
    return PodAddresses(
        key=f"{meta.get('namespace') or ''}/{meta.get('name') or ''}",
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        ips=ips,
        labels=labels_tuple(meta.get("labels")),
        owner=root_owner(meta),
        host_network=bool(spec.get("hostNetwork")),
        node=spec.get("nodeName"),
        network_since=since,
    )


@dataclass(slots=True)
class _Holding:
    pod: PodAddresses
    ip: str
    valid_from: int

    def record(self, valid_to: int | None) -> IpTimelineRecord:
        p = self.pod
        return IpTimelineRecord(ip=self.ip, valid_from=self.valid_from, valid_to=valid_to,
                                namespace=p.namespace, pod=p.name, labels=p.labels,
                                owner=p.owner, node=p.node, host_network=p.host_network)


class IpLedger:
    """The addresses held on this node, and the records their changes make."""

    def __init__(self) -> None:
        # (ip, pod key for hostNetwork pods else "") -> holding
        self._held: dict[tuple[str, str], _Holding] = {}
        self._by_pod: dict[str, set[tuple[str, str]]] = {}
        self._released = RecentTable(RELEASE_MEMORY)  # ip -> last release time (ns)

    def __len__(self) -> int:
        return len(self._held)

    def _release(self, key: tuple[str, str], at: int, out: list) -> None:
        h = self._held[key]
        self._forget(key)
        at = max(at, h.valid_from)
        out.append(h.record(at))
        if not h.pod.host_network:
            self._released.put(h.ip, at)

    def update(self, pod: PodAddresses, now: int) -> list[IpTimelineRecord]:
        """The pod as it is now (ADDED, MODIFIED, or seen in a list)."""
        out: list[IpTimelineRecord] = []
        wanted = {(ip, pod.key if pod.host_network else "") for ip in pod.ips}
        for key in sorted(self._by_pod.get(pod.key, ())):
            h = self._held[key]
            if key not in wanted or h.pod.labels != pod.labels or h.pod.owner != pod.owner:
                self._release(key, now, out)
        for key in sorted(wanted):
            current = self._held.get(key)
            if current is not None and current.pod.key == pod.key:
                continue  # the same interval
            since = pod.network_since if pod.network_since is not None else now
            released = self._released.get(key[0]) if not pod.host_network else None
            if released is not None:
                since = max(since, released)
            if current is not None:  # taken over before we saw the release
                since = max(since, current.valid_from + 1)
                self._release(key, since, out)
            since = min(since, now)
            h = _Holding(pod, key[0], since)
            self._held[key] = h
            self._by_pod.setdefault(pod.key, set()).add(key)
            out.append(h.record(None))
        return out

    def remove(self, pod_key: str, now: int) -> list[IpTimelineRecord]:
        """The pod is gone (DELETED)."""
        out: list[IpTimelineRecord] = []
        for key in sorted(self._by_pod.get(pod_key, ())):
            self._release(key, now, out)
        return out

    def seed(self, records: Iterable[IpTimelineRecord]) -> int:
        """Restore the state a previous run left, from the IP records it wrote (in the
        order written): open intervals are held again with their original start, closed
        ones leave their release time. Returns how many intervals are held."""
        for r in records:
            pod = PodAddresses(f"{r.namespace}/{r.pod}", r.namespace, r.pod, (r.ip,),
                               r.labels, r.owner, r.host_network, r.node, r.valid_from)
            key = (r.ip, pod.key if r.host_network else "")
            current = self._held.get(key)
            if r.valid_to is None:
                if current is None or current.valid_from <= r.valid_from:
                    if current is not None:
                        self._forget(key)
                    self._held[key] = _Holding(pod, r.ip, r.valid_from)
                    self._by_pod.setdefault(pod.key, set()).add(key)
            else:
                if current is not None and current.pod.key == pod.key \
                        and current.valid_from == r.valid_from:
                    self._forget(key)
                if not r.host_network:
                    last = self._released.get(r.ip)
                    self._released.put(r.ip, max(r.valid_to, last or 0))
        return len(self._held)

    def _forget(self, key: tuple[str, str]) -> None:
        h = self._held.pop(key)
        keys = self._by_pod.get(h.pod.key)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_pod[h.pod.key]

    def open_records(self) -> list[IpTimelineRecord]:
        """Every interval held now, as open records (sorted)."""
        return [self._held[k].record(None) for k in sorted(self._held)]

    def resync(self, pods: Iterable[PodAddresses], now: int) -> list[IpTimelineRecord]:
        """A fresh list: pods no longer listed are gone, listed ones are updated."""
        out: list[IpTimelineRecord] = []
        pods = list(pods)
        listed = {p.key for p in pods}
        for pod_key in sorted(set(self._by_pod) - listed):
            out.extend(self.remove(pod_key, now))
        for p in pods:
            out.extend(self.update(p, now))
        return out


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class PodWatch:
    """Lists and watches this node's pods; emits IP timeline records."""

    name = "pods"

    def __init__(self, node: str, kubeconfig: str | None = None, context: str | None = None,
                 log: Callable[[str], None] = lambda _msg: None,
                 clock: Callable[[], int] = time.time_ns,
                 watch_timeout_s: int = WATCH_TIMEOUT_S,
                 seed: Iterable[IpTimelineRecord] = ()) -> None:
        if not node:
            raise ClusterError("the pod watch needs the node name: set NODE_NAME (the "
                               "DaemonSet passes spec.nodeName) or pass --node")
        self.node = node
        self.kubeconfig = kubeconfig
        self.context = context
        self.log = log
        self.clock = clock
        self.watch_timeout_s = watch_timeout_s
        self.ledger = IpLedger()
        self.seeded = self.ledger.seed(seed)
        self.events = 0
        self.lists = 0
        self.errors = 0
        self.synced = threading.Event()  # set after the first successful list
        self._api: Any = None
        self._server = ""

    def start(self) -> None:
        from kubernetes import client

        from recorder.kube import api_client

        api, context = api_client(self.kubeconfig, self.context)
        self._api = client.CoreV1Api(api)
        self._server = api.configuration.host
        self.log(f"pods: watching pods on node {self.node} through {self._server} "
                 f"(context {context}); {self.seeded} address(es) held at the last run")

    @property
    def _selector(self) -> str:
        return f"spec.nodeName={self.node}"

    def run(self, emit: Emit, stop: threading.Event) -> None:
        backoff = 1.0
        version: str | None = None
        while not stop.is_set():
            try:
                if version is None:
                    version = self._list(emit)
                version = self._watch(version, emit, stop)  # until the server times out
                backoff = 1.0
            except _Expired:
                version = None
            except Exception as e:  # noqa: BLE001 - the API may fail in any way; retry
                version = None
                if stop.is_set():
                    return
                self.errors += 1
                self.log(f"warning: pods: {self._describe(e)}; retrying in {backoff:.0f} s")
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _describe(self, e: Exception) -> str:
        from kubernetes.client.exceptions import ApiException

        from recorder.kube import root_cause

        if isinstance(e, ApiException):
            if e.status in (401, 403):
                return (f"the API server {self._server} refused to list/watch pods "
                        f"({e.status} {e.reason}); the recorder's ClusterRole needs get, "
                        "list and watch on pods")
            return f"API error {e.status} {e.reason}"
        return f"cannot reach the API server {self._server} ({root_cause(e)})"

    def _list(self, emit: Emit) -> str:
        pods: list[PodAddresses] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"field_selector": self._selector, "limit": PAGE_SIZE,
                                      "_preload_content": False, "_request_timeout": (10, 60)}
            if token:
                kwargs["_continue"] = token
            resp = self._api.list_pod_for_all_namespaces(**kwargs)
            body = json.loads(resp.data)
            pods.extend(pod_addresses(o) for o in body.get("items") or [])
            meta = body.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                break
        self.lists += 1
        records = self.ledger.resync(pods, self.clock())
        if self.lists == 1 and self.seeded:
            # Intervals a previous run opened and that still hold: written again (same
            # start), so every run's output stands on its own.
            fresh = set(records)
            records += [r for r in self.ledger.open_records() if r not in fresh]
        if records:
            emit(records)
        self.synced.set()
        return str(meta.get("resourceVersion") or "0")

    def _watch(self, version: str, emit: Emit, stop: threading.Event) -> str:
        """Follow events from ``version``; returns the last resourceVersion seen."""
        from kubernetes.watch.watch import iter_resp_lines

        resp = self._api.list_pod_for_all_namespaces(
            field_selector=self._selector, watch=True, resource_version=version,
            allow_watch_bookmarks=True, timeout_seconds=self.watch_timeout_s,
            _preload_content=False, _request_timeout=(10, self.watch_timeout_s + 30))
        try:
            for line in iter_resp_lines(resp):
                if stop.is_set():
                    return version
                if not line or not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired()
                    raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
                self.events += 1
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                now = self.clock()
                pod = pod_addresses(obj)
                if kind == "DELETED":
                    records = self.ledger.remove(pod.key, now)
                else:
                    records = self.ledger.update(pod, now)
                if records:
                    emit(records)
        finally:
            resp.close()
            resp.release_conn()
        return version

    def stop(self) -> None:
        pass  # a daemon thread: the agent does not wait for an idle watch

    def stats(self) -> dict[str, int]:
        return {"lists": self.lists, "events": self.events, "errors": self.errors,
                "addresses_held": len(self.ledger)}
