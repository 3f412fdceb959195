"""The pod watch: pods -> IP timeline records, against the stand-in API server through
the real kubernetes client (bearer token included)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import k8s_objects as k
from standin_apiserver import StandInApiServer

from recorder.agent.podwatch import IpLedger, PodWatch, pod_addresses, root_owner
from recorder.schema import IpTimelineRecord, Workload
from recorder.timefmt import format_time, parse_time

S = 1_000_000_000
T0 = parse_time("2026-01-01T10:00:00Z")


def _pod(name: str, ip: str | None, *, created: str = "2026-01-01T09:00:00Z",
         node: str = "node-1", **kw) -> dict:
    return k.pod(name, "shop", ip=ip, node=node, created=created, labels={"app": name}, **kw)


def test_root_owner_from_owner_references_alone() -> None:
    web = k.deployment_with_pods("web", "shop", {"app": "web"}, ["10.0.0.5"])[-1]
    assert root_owner(web["metadata"]) == Workload("Deployment", "web")
    cron = k.cronjob_with_pods("report", "shop", {"app": "r"}, ["10.0.0.6"])[-1]
    assert root_owner(cron["metadata"]) == Workload("CronJob", "report")
    db = k.statefulset_with_pods("db", "shop", {"app": "db"}, ["10.0.0.7"])[-1]
    assert root_owner(db["metadata"]) == Workload("StatefulSet", "db")
    # A ReplicaSet whose name does not end in the pod's template hash stays a ReplicaSet.
    odd = k.pod("x", "shop", owner=k.owner_ref("ReplicaSet", "standalone"))
    assert root_owner(odd["metadata"]) == Workload("ReplicaSet", "standalone")
    assert root_owner(k.pod("bare", "shop")["metadata"]) is None


def test_network_since_prefers_the_sandbox_condition() -> None:
    p = _pod("a", "10.0.0.5")
    p["status"]["startTime"] = "2026-01-01T09:00:05Z"
    assert pod_addresses(p).network_since == parse_time("2026-01-01T09:00:05Z")
    p["status"]["conditions"] = [{"type": "PodReadyToStartContainers", "status": "True",
                                  "lastTransitionTime": "2026-01-01T09:00:07Z"}]
    assert pod_addresses(p).network_since == parse_time("2026-01-01T09:00:07Z")
    assert pod_addresses(_pod("b", "10.0.0.6", phase="Succeeded")).ips == ()
    dual = k.pod("c", "shop", ips=["10.0.0.8", "fd00::8"])
    assert pod_addresses(dual).ips == ("10.0.0.8", "fd00::8")


def test_ip_reuse_closes_the_old_holder_and_never_overlaps() -> None:
    ledger = IpLedger()
    a = pod_addresses(_pod("a", "10.0.0.5"))
    opened = ledger.update(a, T0)
    assert [(r.pod, r.valid_from, r.valid_to) for r in opened] == [
        ("a", parse_time("2026-01-01T09:00:00Z"), None)]
    assert ledger.update(a, T0 + S) == []  # nothing changed
    closed = ledger.remove(a.key, T0 + 10 * S)
    assert [(r.pod, r.valid_to) for r in closed] == [("a", T0 + 10 * S)]
    # The new pod was created before the old one was gone (it waited for the IP): its
    # interval starts when the address was seen released, not at its creation.
    b = pod_addresses(_pod("b", "10.0.0.5", created="2026-01-01T10:00:05Z"))
    (rec,) = ledger.update(b, T0 + 11 * S)
    assert (rec.pod, rec.valid_from, rec.valid_to) == ("b", T0 + 10 * S, None)


def test_takeover_before_release_and_label_change_and_host_network() -> None:
    ledger = IpLedger()
    a = pod_addresses(_pod("a", "10.0.0.5"))
    ledger.update(a, T0)
    b = pod_addresses(_pod("b", "10.0.0.5", created="2026-01-01T10:00:03Z"))
    out = ledger.update(b, T0 + 5 * S)  # DELETED of a never arrived
    assert [(r.pod, r.valid_to) for r in out] == [("a", T0 + 3 * S), ("b", None)]
    assert out[1].valid_from == T0 + 3 * S
    relabelled = pod_addresses({**_pod("b", "10.0.0.5"), "metadata": {
        **_pod("b", "10.0.0.5")["metadata"], "labels": {"app": "b", "tier": "x"}}})
    out = ledger.update(relabelled, T0 + 20 * S)
    assert [(r.valid_from, r.valid_to, dict(r.labels).get("tier")) for r in out] == [
        (T0 + 3 * S, T0 + 20 * S, None), (T0 + 20 * S, None, "x")]
    h1 = pod_addresses(k.pod("agent-1", "kube-system", ip="192.168.0.11", host_network=True))
    h2 = pod_addresses(k.pod("agent-2", "kube-system", ip="192.168.0.11", host_network=True))
    assert [r.host_network for r in ledger.update(h1, T0) + ledger.update(h2, T0)] == [True, True]
    assert ledger.remove(h1.key, T0 + S)[0].pod == "agent-1" and len(ledger) == 2


def test_resync_releases_pods_that_vanished_while_disconnected() -> None:
    ledger = IpLedger()
    a, b = pod_addresses(_pod("a", "10.0.0.5")), pod_addresses(_pod("b", "10.0.0.6"))
    ledger.resync([a, b], T0)
    out = ledger.resync([b], T0 + 60 * S)
    assert [(r.pod, r.valid_to) for r in out] == [("a", T0 + 60 * S)]


def _wait(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_watch_through_the_real_client_with_a_bearer_token(tmp_path: Path) -> None:
    objs = [k.namespace("shop"), _pod("a", "10.0.0.5"),
            _pod("elsewhere", "10.0.1.5", node="node-2"),  # another node: not ours
            _pod("pending", None)]
    with StandInApiServer(objs) as srv:
        got: list[IpTimelineRecord] = []
        stop = threading.Event()
        watch = PodWatch("node-1", str(srv.kubeconfig_path(tmp_path)), clock=time.time_ns)
        watch.start()
        t = threading.Thread(target=watch.run, args=(got.extend, stop), daemon=True)
        t.start()
        _wait(lambda: watch.synced.is_set() and srv.requests_for("pods", watch=True))
        assert [(r.pod, r.ip, r.valid_to) for r in got] == [("a", "10.0.0.5", None)]
        before_delete = time.time_ns()
        srv.push_event("DELETED", _pod("a", "10.0.0.5"))
        srv.push_event("ADDED", _pod("reuse", "10.0.0.5", created=format_time(time.time_ns())))
        srv.push_event("MODIFIED", _pod("pending", "10.0.0.7"))
        _wait(lambda: len(got) == 4)
        stop.set()
        closed_a, opened_reuse, opened_pending = got[1], got[2], got[3]
        assert (closed_a.pod, closed_a.ip) == ("a", "10.0.0.5")
        assert closed_a.valid_to is not None and closed_a.valid_to >= before_delete
        assert opened_reuse.pod == "reuse" and opened_reuse.valid_from >= closed_a.valid_to
        assert opened_pending.pod == "pending" and opened_pending.ip == "10.0.0.7"
        watches = srv.requests_for("pods", watch=True)
        assert watches[0].query["fieldSelector"] == "spec.nodeName=node-1"
        assert watches[0].query["resourceVersion"] not in ("", "0")  # from the list


def test_forbidden_is_retried_and_reported_not_fatal(tmp_path: Path) -> None:
    with StandInApiServer([_pod("a", "10.0.0.5")]) as srv:
        srv.forbid("pods")
        messages: list[str] = []
        stop = threading.Event()
        watch = PodWatch("node-1", str(srv.kubeconfig_path(tmp_path)), log=messages.append)
        watch.start()
        t = threading.Thread(target=watch.run, args=(lambda _r: None, stop), daemon=True)
        t.start()
        _wait(lambda: watch.errors >= 1)
        stop.set()
        assert any("needs get, list and watch on pods" in m for m in messages)


def test_a_restart_resumes_from_the_records_it_wrote() -> None:
    first = IpLedger()
    a = pod_addresses(_pod("a", "10.0.0.5"))
    b = pod_addresses(_pod("b", "10.0.0.6"))
    written = first.resync([a, b], T0) + first.remove(b.key, T0 + 5 * S)
    second = IpLedger()
    assert second.seed(written) == 1
    # The same pods listed again: nothing new; the open interval keeps its start.
    assert second.resync([a], T0 + 60 * S) == []
    assert [(r.pod, r.valid_from) for r in second.open_records()] == [("a", a.network_since)]
    # b's address reused by a pod created in the same second b was seen released:
    # ordered after the release the first run saw, not at its creation time.
    c = pod_addresses(_pod("c", "10.0.0.6", created=format_time(T0 + 5 * S - S // 2)))
    (rec,) = second.update(c, T0 + 61 * S)
    assert rec.valid_from == T0 + 5 * S
