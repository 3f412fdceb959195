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


def test_token_request_and_review_answer_the_real_client(tmp_path: Path) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from standin_apiserver import API_AUDIENCE, issue_token

    objects = _objects() + [k.obj("ServiceAccount", "reader", "shop")]
    with StandInApiServer(objects, token=None) as srv:
        api = config.new_client_from_config(str(srv.kubeconfig_path(tmp_path)),
                                            persist_config=False)
        v1, authn = client.CoreV1Api(api), client.AuthenticationV1Api(api)
        issued = v1.create_namespaced_service_account_token(
            "reader", "shop", {"spec": {"audiences": ["svc"], "expirationSeconds": 600}})
        left = (issued.status.expiration_timestamp.timestamp() - time.time())
        assert 590 < left <= 600
        token = issued.status.token

        def review(tok: str, audiences: list[str] | None = None):  # noqa: ANN202
            return authn.create_token_review(
                {"spec": {"token": tok, **({"audiences": audiences} if audiences else {})}}).status

        ok = review(token, ["other", "svc"])
        assert ok.authenticated and ok.audiences == ["svc"]
        assert ok.user.username == "system:serviceaccount:shop:reader"
        assert "system:serviceaccounts:shop" in ok.user.groups
        # Without audiences: the API server's own, which this token is not for.
        wrong = review(token)
        assert not wrong.authenticated and "is invalid for the target audiences" in wrong.error
        assert review(issue_token(srv, "shop", "reader", ["svc"], -1), ["svc"]).error.endswith(
            "service account token has expired]")
        assert review(issue_token(srv, "shop", "reader"), [API_AUDIENCE]).authenticated
        assert not review(token[:-2] + "xx", ["svc"]).authenticated
        srv.push_event("DELETED", k.obj("ServiceAccount", "reader", "shop"))
        assert "not found" in review(token, ["svc"]).error
        recreated = k.obj("ServiceAccount", "reader", "shop")
        recreated["metadata"]["uid"] = "another-uid"  # deleted and made again
        srv.push_event("ADDED", recreated)
        assert "does not match" in review(token, ["svc"]).error
        for name, spec, status in (("reader", {"expirationSeconds": 599}, 422),
                                   ("nobody", {}, 404)):
            with pytest.raises(ApiException) as info:
                v1.create_namespaced_service_account_token(name, "shop", {"spec": spec})
            assert info.value.status == status
        assert "less than 10 minutes" in info.value.body or status == 404
        srv.forbid("serviceaccounts/token")
        with pytest.raises(ApiException) as info:
            v1.create_namespaced_service_account_token("reader", "shop", {"spec": {}})
        assert info.value.status == 403


def test_the_pod_proxy_passes_headers_on_as_the_real_one(tmp_path: Path) -> None:
    import json
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps(dict(self.headers.items())).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-From-Pod", "yes")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(body)

    pod = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=pod.serve_forever, daemon=True).start()
    try:
        with StandInApiServer([k.pod("p", "shop", ip="127.0.0.1")]) as srv:
            req = urllib.request.Request(
                f"{srv.url}/api/v1/namespaces/shop/pods/p:{pod.server_address[1]}/proxy/x",
                headers={"Authorization": f"Bearer {srv.token}", "X-Custom-Token": "abc",
                         "Impersonate-User": "admin", "Proxy-Authorization": "Basic eA=="})
            with urllib.request.urlopen(req) as r:
                seen, answer = json.loads(r.read()), dict(r.headers.items())
    finally:
        pod.shutdown()
    assert seen["X-Custom-Token"] == "abc" and seen["X-Forwarded-For"] == "127.0.0.1"
    assert not {"Authorization", "Impersonate-User", "Proxy-Authorization"} & set(seen)
    assert answer["X-From-Pod"] == "yes" and "Access-Control-Allow-Origin" not in answer
