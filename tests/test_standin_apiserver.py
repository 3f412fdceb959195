"""The stand-in API server answers the real kubernetes client: LIST with field selectors
and pagination, GET, and WATCH streams that tests feed with push_event."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import k8s_objects as k
from standin_apiserver import StandInApiServer


def _objects() -> list[dict]:
    return [
        k.namespace("shop"),
        k.pod("a", "shop", ip="10.244.1.5", node="node-1", labels={"app": "a"}),
        k.pod("b", "shop", ip="10.244.2.5", node="node-2", labels={"app": "b"}),
        k.pod("c", "other", ip="10.244.2.6", node="node-2"),
    ]


def _core(srv: StandInApiServer, tmp_path: Path):  # noqa: ANN202
    from kubernetes import client, config

    # No token: the server runs with token=None, so client-side token handling (broken
    # in kubernetes 36.0.0) plays no part in these tests.
    api = config.new_client_from_config(str(srv.kubeconfig_path(tmp_path)),
                                        persist_config=False)
    return client.CoreV1Api(api)


def test_list_field_selector_and_get(tmp_path: Path) -> None:
    with StandInApiServer(_objects(), token=None) as srv:
        v1 = _core(srv, tmp_path)
        on_node2 = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-2")
        assert sorted(p.metadata.name for p in on_node2.items) == ["b", "c"]
        labelled = v1.list_namespaced_pod("shop", label_selector="app=a")
        assert [p.metadata.name for p in labelled.items] == ["a"]
        assert v1.read_namespaced_pod("b", "shop").status.pod_ip == "10.244.2.5"
        page = v1.list_pod_for_all_namespaces(limit=2)
        assert len(page.items) == 2 and page.metadata.remaining_item_count == 1
        rest = v1.list_pod_for_all_namespaces(limit=2, _continue=page.metadata._continue)
        assert [p.metadata.name for p in page.items + rest.items] == ["c", "a", "b"]
        from kubernetes.client.exceptions import ApiException

        with pytest.raises(ApiException) as info:
            v1.read_namespaced_pod("zzz", "shop")
        assert info.value.status == 404


def test_watch_replays_from_a_resource_version(tmp_path: Path) -> None:
    from kubernetes import watch

    with StandInApiServer(_objects(), token=None) as srv:
        v1 = _core(srv, tmp_path)
        start = srv.resource_version
        moved = k.pod("a", "shop", ip="10.244.1.9", node="node-1")
        srv.push_event("MODIFIED", moved)
        srv.push_event("ADDED", k.pod("d", "shop", ip="10.244.2.7", node="node-2"))
        srv.push_event("DELETED", moved)
        seen = []
        for e in watch.Watch().stream(v1.list_pod_for_all_namespaces,
                                      resource_version=str(start), timeout_seconds=5):
            seen.append((e["type"], e["object"].metadata.name, e["object"].status.pod_ip))
            if len(seen) == 3:
                break
        assert seen == [("MODIFIED", "a", "10.244.1.9"), ("ADDED", "d", "10.244.2.7"),
                        ("DELETED", "a", "10.244.1.9")]
        assert [p["metadata"]["name"] for p in srv.objects("Pod")] == ["c", "b", "d"]


def test_watch_streams_pushed_events_live(tmp_path: Path) -> None:
    from kubernetes import watch

    with StandInApiServer(_objects(), token=None) as srv:
        v1 = _core(srv, tmp_path)
        seen: list[tuple[str, str]] = []
        w = watch.Watch()

        def consume() -> None:
            for e in w.stream(v1.list_pod_for_all_namespaces,
                              field_selector="spec.nodeName=node-2", timeout_seconds=10):
                seen.append((e["type"], e["object"].metadata.name))
                if len(seen) == 4:
                    w.stop()

        t = threading.Thread(target=consume)
        t.start()
        deadline = time.monotonic() + 5
        while not srv.requests_for("pods", watch=True) and time.monotonic() < deadline:
            time.sleep(0.01)
        srv.push_event("ADDED", k.pod("e", "shop", ip="10.244.1.8", node="node-1"))  # filtered
        srv.push_event("ADDED", k.pod("f", "shop", ip="10.244.2.8", node="node-2"))
        srv.push_event("DELETED", k.pod("b", "shop", node="node-2"))
        t.join(10)
        assert not t.is_alive()
        # Without a resourceVersion the current objects come first, as ADDED.
        assert seen == [("ADDED", "c"), ("ADDED", "b"), ("ADDED", "f"), ("DELETED", "b")]


def test_authentication_and_forbidden(tmp_path: Path) -> None:
    import json
    import urllib.error
    import urllib.request

    with StandInApiServer(_objects()) as srv:
        srv.forbid("nodes")

        def get(path: str, token: str) -> tuple[int, dict]:
            req = urllib.request.Request(srv.url + path,
                                         headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        assert get("/api/v1/pods", "wrong")[0] == 401
        code, body = get("/api/v1/nodes", srv.token or "")
        assert code == 403 and body["kind"] == "Status" and "cannot list" in body["message"]
        code, body = get("/api/v1/pods", srv.token or "")
        assert code == 200 and body["kind"] == "PodList"
        assert all("kind" not in item for item in body["items"])  # as the real server
