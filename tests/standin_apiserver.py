"""A stand-in for the Kubernetes API server, for tests. It is NOT a real API server.

It serves, over plain HTTP on 127.0.0.1 (random port, one thread per connection), the
small part of the API that flowpol's clients use, from fixture objects held in memory:

- LIST ``/api/v1/<resource>``, ``/apis/<group>/<version>/<resource>`` and the
  ``.../namespaces/<ns>/<resource>`` forms, answered like the real server: a typed list
  (``PodList``), items in key order without ``kind``/``apiVersion``, ``limit`` and
  ``continue`` pagination with ``remainingItemCount``, ``fieldSelector`` (e.g.
  ``spec.nodeName=node-1``; ``=``, ``==``, ``!=`` on any dotted field) and equality-based
  ``labelSelector``.
- GET of one object (``.../namespaces/<ns>/pods/<name>``, ``/api/v1/nodes/<name>``).
- WATCH (``?watch=true``): chunked, newline-delimited JSON events
  ``{"type": "ADDED|MODIFIED|DELETED", "object": {...}}``. Without ``resourceVersion``
  (or ``0``) it first sends the current objects as ADDED, as the real server does;
  with ``resourceVersion=N`` it replays the events after N. Then it streams what a test
  pushes with ``push_event`` until ``timeoutSeconds`` or shutdown.
- Pod logs (``.../pods/<name>/log``) and the pod proxy subresource
  (``.../pods/<name>[:<port>]/proxy/<path>``), both described at the end of this module.
- ServiceAccount tokens: TokenRequest (``POST .../serviceaccounts/<name>/token``) and
  TokenReview (``POST /apis/authentication.k8s.io/v1/tokenreviews``) with audiences and
  expiry, also described at the end.
- Bearer-token authentication (401 on a wrong token), 403 for resources a test forbids,
  410 Gone for expired ``continue`` tokens on request — each with a ``kind: Status``
  body shaped like the real one.

Not implemented: other writes, discovery beyond ``/version``, set-based label selectors,
bookmarks, TLS, admission, defaulting, validation. Objects are served as given.

    with StandInApiServer(objects) as srv:
        kubeconfig = srv.kubeconfig_path(tmp_path)
        ...                                   # kubernetes client / flowpol snapshot
        srv.push_event("MODIFIED", pod_obj)   # watchers receive it
        srv.requests_for("pods")              # what the clients asked for
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

DEFAULT_TOKEN = "standin-token"

# kind -> (resource, apiVersion, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("namespaces", "v1", False),
    "Node": ("nodes", "v1", False),
    "Pod": ("pods", "v1", True),
    "Service": ("services", "v1", True),
    "Endpoints": ("endpoints", "v1", True),
    "ConfigMap": ("configmaps", "v1", True),
    "ServiceAccount": ("serviceaccounts", "v1", True),
    "EndpointSlice": ("endpointslices", "discovery.k8s.io/v1", True),
    "ReplicaSet": ("replicasets", "apps/v1", True),
    "Deployment": ("deployments", "apps/v1", True),
    "StatefulSet": ("statefulsets", "apps/v1", True),
    "DaemonSet": ("daemonsets", "apps/v1", True),
    "Job": ("jobs", "batch/v1", True),
    "CronJob": ("cronjobs", "batch/v1", True),
    "NetworkPolicy": ("networkpolicies", "networking.k8s.io/v1", True),
    "ValidatingWebhookConfiguration": ("validatingwebhookconfigurations",
                                       "admissionregistration.k8s.io/v1", False),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations",
                                     "admissionregistration.k8s.io/v1", False),
    "APIService": ("apiservices", "apiregistration.k8s.io/v1", False),
    "CustomResourceDefinition": ("customresourcedefinitions", "apiextensions.k8s.io/v1", False),
}
_BY_RESOURCE = {(api, res): kind for kind, (res, api, _) in RESOURCES.items()}
EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]

    @property
    def is_watch(self) -> bool:
        return (self.query.get("watch") or "").lower() in ("true", "1")


@dataclass(frozen=True, slots=True)
class _Event:
    rv: int
    type: str
    kind: str
    obj: dict


class _HttpError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class StandInApiServer:
    """See the module docstring. Thread-safe; use as a context manager."""

    def __init__(self, objects: Iterable[dict] = (), *, token: str | None = DEFAULT_TOKEN):
        self.token = token
        self._lock = threading.Condition()
        self._rv = 100
        self._store: dict[tuple[str, str, str], dict] = {}  # (kind, ns, name) -> object
        self._log: list[_Event] = []
        self._forbidden: set[str] = set()
        self._expire_continue = 0
        self._closing = False
        self._requests: list[RequestRecord] = []
        self._connections: set[socket.socket] = set()
        for obj in objects:
            self._put(copy.deepcopy(obj))
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "StandInApiServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            standin = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Gone, as a stopped API server is: the listening socket closed and every open
        connection (keep-alive ones included) cut, so clients see it down at once."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
            connections = list(self._connections)
            self._connections.clear()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def kubeconfig_path(self, directory: Path | str, *, context: str = "standin",
                        token: str | None = None, filename: str = "kubeconfig") -> Path:
        """Write a kubeconfig whose current context points at this server; ``token``
        overrides the one it accepts (to test 401)."""
        path = Path(directory) / filename
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": f"{context}-user",
                       "user": {"token": token if token is not None else (self.token or "x")}}],
            "contexts": [{"name": context,
                          "context": {"cluster": context, "user": f"{context}-user"}}],
            "current-context": context,
        }, indent=2))  # JSON is YAML: the client reads it
        return path

    # -- what tests do ---------------------------------------------------------------------

    def push_event(self, type: str, obj: dict) -> int:
        """Apply an ADDED/MODIFIED/DELETED change and send it to every watcher of its
        kind. Returns the object's new resourceVersion."""
        if type not in EVENT_TYPES:
            raise ValueError(f"event type must be one of {EVENT_TYPES}, not {type!r}")
        obj = copy.deepcopy(obj)
        with self._lock:
            if type == "DELETED":
                key = _key(obj)
                current = self._store.pop(key, None)
                obj = current if current is not None else obj
                self._rv += 1
                obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
            else:
                self._put(obj)
            rv = int(obj["metadata"]["resourceVersion"])
            self._log.append(_Event(rv, type, obj["kind"], copy.deepcopy(obj)))
            self._lock.notify_all()
        return rv

    def forbid(self, resource: str) -> None:
        """Answer 403 to LIST/WATCH/GET of ``resource`` (e.g. "pods")."""
        self._forbidden.add(resource)

    def allow(self, resource: str) -> None:
        """Undo ``forbid``."""
        self._forbidden.discard(resource)

    def expire_continue_tokens(self, times: int = 1) -> None:
        """The next ``times`` requests with a continue token get 410 Gone."""
        self._expire_continue += times

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, resource: str, *, watch: bool | None = None) -> list[RequestRecord]:
        out = []
        for r in self.requests:
            parts = r.path.rstrip("/").split("/")
            if resource in parts and (watch is None or r.is_watch == watch):
                out.append(r)
        return out

    def objects(self, kind: str) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(o) for (k, _, _), o in sorted(self._store.items()) if k == kind]

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    # -- internals -------------------------------------------------------------------------

    def _put(self, obj: dict) -> None:
        kind = obj.get("kind")
        if kind not in RESOURCES:
            raise ValueError(f"the stand-in does not serve kind {kind!r}")
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        obj.setdefault("apiVersion", RESOURCES[kind][1])
        self._store[_key(obj)] = obj

    def _record(self, method: str, path: str, query: dict[str, str]) -> None:
        with self._lock:
            self._requests.append(RequestRecord(method, path, query))

    def _check(self, headers: Any, resource: str, verb: str) -> None:
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            raise _HttpError(401, "Unauthorized", "Unauthorized")
        if resource in self._forbidden:
            raise _HttpError(403, "Forbidden",
                             f'{resource} is forbidden: User "standin-user" cannot {verb} '
                             f'resource "{resource}" in API group "" at the cluster scope')

    def _list(self, kind: str, ns: str | None, query: dict[str, str]) -> dict:
        _, api_version, _ = RESOURCES[kind]
        with self._lock:
            rv = self._rv
            matching = [(key, o) for key, o in sorted(self._store.items())
                        if key[0] == kind and (ns is None or key[1] == ns)
                        and _selected(o, query)]
            token = query.get("continue")
            if token:
                if self._expire_continue > 0:
                    self._expire_continue -= 1
                    raise _HttpError(410, "Expired", "The provided continue parameter is too "
                                                     "old to display a consistent list result.")
                try:
                    after = tuple(json.loads(base64.urlsafe_b64decode(token))["after"])
                except (ValueError, KeyError, TypeError):
                    raise _HttpError(400, "BadRequest", "invalid continue token") from None
                matching = [(k, o) for k, o in matching if k > after]
        limit = int(query.get("limit") or 0)
        page = matching[:limit] if limit > 0 else matching
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        rest = len(matching) - len(page)
        if rest > 0:
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"after": list(page[-1][0])}).encode()).decode()
            meta["remainingItemCount"] = rest
        items = [{k: v for k, v in copy.deepcopy(o).items() if k not in ("kind", "apiVersion")}
                 for _, o in page]
        return {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta,
                "items": items}

    def _get(self, kind: str, ns: str | None, name: str) -> dict:
        with self._lock:
            obj = self._store.get((kind, ns or "", name))
        if obj is None:
            raise _HttpError(404, "NotFound",
                             f'{RESOURCES[kind][0]} "{name}" not found')
        return copy.deepcopy(obj)

    def _watch_events(self, kind: str, ns: str | None, query: dict[str, str],
                      since: int) -> tuple[list[dict], int]:
        """Events after ``since`` (caller holds the lock)."""
        out = []
        for e in self._log:
            if e.rv > since and e.kind == kind and (ns is None or _key(e.obj)[1] == ns) \
                    and _selected(e.obj, query):
                out.append({"type": e.type, "object": e.obj})
        last = max([since] + [e.rv for e in self._log])
        return out, last


def _key(obj: dict) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (obj["kind"], meta.get("namespace") or "", meta["name"])


def _field(obj: dict, dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _selected(obj: dict, query: dict[str, str]) -> bool:
    for term in filter(None, (query.get("fieldSelector") or "").split(",")):
        if "!=" in term:
            f, v = term.split("!=", 1)
            if _field(obj, f.strip()) == v.strip():
                return False
        else:
            f, v = term.replace("==", "=").split("=", 1)
            if _field(obj, f.strip()) != v.strip():
                return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (query.get("labelSelector") or "").split(",")):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _route(path: str) -> tuple[str, str | None, str | None]:
    """path -> (kind, namespace or None, object name or None)."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        api, rest = "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        api, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise _HttpError(404, "NotFound", f"the stand-in does not serve {path}")
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2 or (api, rest[0]) not in _BY_RESOURCE:
        raise _HttpError(404, "NotFound", f"the server could not find the requested "
                                          f"resource ({path})")
    return _BY_RESOURCE[(api, rest[0])], ns, rest[1] if len(rest) == 2 else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin: StandInApiServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, delayed ACKs add
        # ~40 ms to every request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.standin._lock:
            self.standin._connections.add(self.request)

    def finish(self) -> None:
        with self.standin._lock:
            self.standin._connections.discard(self.request)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.standin._record("GET", url.path, query)
        if url.path == "/version":
            self._send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-standin",
                                  "platform": "linux/amd64"})
            return
        if serve_pod_log(self, url.path, query):  # pod logs: see the end of this module
            return
        if serve_pod_proxy(self, self.path):  # the pod proxy: see the end of this module
            return
        try:
            kind, ns, name = _route(url.path)
            resource = RESOURCES[kind][0]
            watch = (query.get("watch") or "").lower() in ("true", "1")  # the client sends "True"
            verb = "watch" if watch else ("get" if name else "list")
            self.standin._check(self.headers, resource, verb)
            if watch:
                self._watch(kind, ns, query)
            elif name is not None:
                self._send_json(200, self.standin._get(kind, ns, name))
            else:
                self._send_json(200, self.standin._list(kind, ns, query))
        except _HttpError as e:
            self._send_json(e.code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                     "status": "Failure", "message": e.message,
                                     "reason": e.reason, "code": e.code})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        self.standin._record("POST", url.path, {})
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            if not serve_token_api(self, url.path, body):  # tokens: the end of this module
                raise _HttpError(405, "MethodNotAllowed",
                                 f"the stand-in does not implement POST {url.path}")
        except _HttpError as e:
            self._send_json(e.code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                     "status": "Failure", "message": e.message,
                                     "reason": e.reason, "code": e.code})

    def _send_json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, kind: str, ns: str | None, query: dict[str, str]) -> None:
        srv = self.standin
        try:
            timeout = float(query.get("timeoutSeconds") or 0) or None
            requested = str(int(query.get("resourceVersion") or "0"))
        except ValueError:
            raise _HttpError(400, "BadRequest", "resourceVersion and timeoutSeconds must be "
                                                "numbers") from None
        deadline = time.monotonic() + timeout if timeout else None
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with srv._lock:
            if requested == "0":
                since = srv._rv
                pending = [{"type": "ADDED", "object": copy.deepcopy(o)}
                           for (k, n, _), o in sorted(srv._store.items())
                           if k == kind and (ns is None or n == ns) and _selected(o, query)]
            else:
                pending, since = srv._watch_events(kind, ns, query, int(requested))
        try:
            while True:
                for event in pending:
                    self._chunk(json.dumps(event).encode() + b"\n")
                with srv._lock:
                    while True:
                        pending, last = srv._watch_events(kind, ns, query, since)
                        since = last
                        if pending or srv._closing:
                            break
                        if deadline is not None and time.monotonic() >= deadline:
                            break
                        srv._lock.wait(0.05)
                    if not pending and (srv._closing or (
                            deadline is not None and time.monotonic() >= deadline)):
                        break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


# -- pod logs (added for `flowpol collect`) -----------------------------------------------
#
# GET /api/v1/namespaces/<ns>/pods/<name>/log with ``previous``, ``sinceSeconds``,
# ``sinceTime`` and ``timestamps``, answered from lines a test sets with ``set_pod_log``.
# Each line carries the time the "kubelet" received it (default: when it was set), which
# is what the since* filters compare, as on a real node. 404 when the pod is unknown,
# 400 for ``previous=true`` without a previous container, as the real API server does.

_POD_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")


def set_pod_log(server: StandInApiServer, namespace: str, pod: str, text: str | bytes, *,
                previous: bool = False, at: float | None = None) -> None:
    """Serve ``text`` as the log of ``pod`` (its previous container's with ``previous``),
    every line stamped ``at`` (epoch seconds, default now)."""
    raw = text.encode() if isinstance(text, str) else text
    stamp = time.time() if at is None else at
    with server._lock:
        logs = server.__dict__.setdefault("_pod_logs", {})
        logs[(namespace, pod, previous)] = [(stamp, line) for line in raw.splitlines(True)]


def serve_pod_log(handler: "_Handler", path: str, query: dict[str, str]) -> bool:
    m = _POD_LOG.match(path)
    if m is None:
        return False
    srv = handler.standin
    namespace, pod = m.group(1), m.group(2)
    previous = (query.get("previous") or "").lower() in ("true", "1")
    try:
        srv._check(handler.headers, "pods/log", "get")
        if (("Pod", namespace, pod)) not in srv._store:
            raise _HttpError(404, "NotFound", f'pods "{pod}" not found')
        with srv._lock:
            lines = list(srv.__dict__.get("_pod_logs", {}).get((namespace, pod, previous), []))
        if previous and not lines:
            raise _HttpError(400, "BadRequest", f'previous terminated container "main" in '
                                                f'pod "{pod}" not found')
    except _HttpError as e:
        handler._send_json(e.code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                    "status": "Failure", "message": e.message,
                                    "reason": e.reason, "code": e.code})
        return True
    since = None
    if query.get("sinceSeconds"):
        since = time.time() - int(query["sinceSeconds"])
    elif query.get("sinceTime"):
        from datetime import datetime

        since = datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00")).timestamp()
    stamped = (query.get("timestamps") or "").lower() in ("true", "1")
    body = b"".join(
        (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)).encode() + b".000000000Z "
         if stamped else b"") + line
        for t, line in lines if since is None or t >= since)
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
    return True


# -- the pod proxy (added for `flowpol collect` of the recorder's segments) ----------------
#
# GET /api/v1/namespaces/<ns>/pods/<name>[:<port>]/proxy/<path>, as the real API server
# serves it (the pods/proxy subresource): authorized as ``get`` on ``pods/proxy`` (so a
# test can forbid it), 404 for an unknown pod, then a plain HTTP GET of <path> (query
# included) at the pod's status.podIP and port (80 without one) from where the stand-in
# runs, with the pod's status, headers and body passed back; 503 with a Status like the
# real one when the pod cannot be reached. Request headers are passed on as the real
# server passes them: without ``Authorization``, which its authentication filter deletes
# once the caller is authenticated (k8s.io/apiserver/pkg/endpoints/filters/
# authentication.go, WithAuthentication), without impersonation headers, and without
# the hop-by-hop headers Go's httputil.ReverseProxy drops (the proxy handler,
# k8s.io/apimachinery/pkg/util/proxy/upgradeaware.go, copies the rest with
# utilnet.CloneHeader and adds X-Forwarded-For). Hop-by-hop and CORS headers of the
# answer are dropped too (upgradeaware.go's corsRemovingTransport). Not implemented:
# other methods, https: and named ports, the service and node proxies.

_POD_PROXY = re.compile(r"^/api/v1/namespaces/([^/?]+)/pods/([^/:?]+)(?::(\d+))?/proxy(/[^?]*)?(\?.*)?$")
# net/http/httputil/reverseproxy.go, hopHeaders
_HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
    "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"))
_NOT_PROXIED = _HOP_BY_HOP | {"authorization", "host", "content-length"}
_CORS = frozenset(h.lower() for h in (
    "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
    "Access-Control-Allow-Methods", "Access-Control-Allow-Origin"))


def serve_pod_proxy(handler: "_Handler", raw_path: str) -> bool:
    import http.client

    m = _POD_PROXY.match(raw_path)
    if m is None:
        return False
    srv = handler.standin
    namespace, pod, port, rest, query = m.groups()
    target = (rest or "/") + (query or "")

    def status(code: int, reason: str, message: str) -> None:
        handler._send_json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Failure", "message": message, "reason": reason,
                                  "code": code})

    try:
        srv._check(handler.headers, "pods/proxy", "get")
    except _HttpError as e:
        status(e.code, e.reason, e.message)
        return True
    with srv._lock:
        obj = srv._store.get(("Pod", namespace, pod))
        ip = ((obj or {}).get("status") or {}).get("podIP")
    if obj is None:
        status(404, "NotFound", f'pods "{pod}" not found')
        return True
    if not ip:
        status(503, "ServiceUnavailable", f'pod "{pod}" has no address')
        return True
    headers = {k: v for k, v in handler.headers.items()
               if k.lower() not in _NOT_PROXIED and not k.lower().startswith("impersonate-")}
    headers["X-Forwarded-For"] = handler.client_address[0]
    conn = http.client.HTTPConnection(ip, int(port or 80), timeout=30)
    try:
        try:
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
        except OSError as e:
            status(503, "ServiceUnavailable", f"error trying to reach service: dial tcp "
                                              f"{ip}:{port or 80}: {e.strerror or e}")
            return True
        length = resp.getheader("Content-Length")
        handler.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP | _CORS | {"content-length", "server", "date"}:
                handler.send_header(k, v)
        body = None if length is not None else resp.read()
        handler.send_header("Content-Length", length if length is not None else str(len(body)))
        handler.end_headers()
        try:
            if body is not None:
                handler.wfile.write(body)
            else:
                while chunk := resp.read(65536):
                    handler.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
    finally:
        conn.close()
    return True


# -- ServiceAccount tokens (added for the recorder's token review) ------------------------
#
# POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token (TokenRequest): authorized as
# ``create`` on ``serviceaccounts/token``; 404 for an unknown ServiceAccount; 422 for an
# expirationSeconds below 600 or above 2^32 (the real validation); default 3600 s and the
# API audience. Answers 201 with ``status.token`` and ``status.expirationTimestamp``.
#
# POST /apis/authentication.k8s.io/v1/tokenreviews (TokenReview): authorized as
# ``create`` on ``tokenreviews``. A token is authenticated when it is one this stand-in
# signed, is not expired, its ServiceAccount still exists (with the same uid), and it is
# for one of ``spec.audiences`` (default: the API audience); ``status.audiences`` is the
# intersection, ``status.user`` the ServiceAccount's user. Otherwise ``status.error``
# says why and ``authenticated`` is absent (omitempty), as on the real server.
#
# The tokens are JWTs (HS256 with a key of this stand-in, where the real server signs
# with its service-account key), with the claims the real ones carry (iss, sub, aud,
# exp, iat, nbf, jti, kubernetes.io: namespace and serviceaccount).

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
_TOKEN_REQUEST = re.compile(r"^/api/v1/namespaces/([^/]+)/serviceaccounts/([^/]+)/token$")
_TOKEN_REVIEW = "/apis/authentication.k8s.io/v1/tokenreviews"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signing_key(server: StandInApiServer) -> bytes:
    with server._lock:
        return server.__dict__.setdefault("_token_key", os.urandom(32))


def issue_token(server: StandInApiServer, namespace: str, name: str,
                audiences: Iterable[str] = (API_AUDIENCE,), expires_in: float = 3600.0,
                uid: str | None = None) -> str:
    """A token of ServiceAccount ``namespace/name`` as TokenRequest would issue it; for
    tests, also expired ones (``expires_in`` <= 0) and ones of ServiceAccounts that do
    not exist. ``uid`` defaults to the stored ServiceAccount's."""
    import hmac
    import uuid

    if uid is None:
        with server._lock:
            sa = server._store.get(("ServiceAccount", namespace, name)) or {}
        uid = (sa.get("metadata") or {}).get("uid") or ""
    now = int(time.time())
    claims = {"aud": list(audiences), "exp": int(now + expires_in), "iat": now, "nbf": now,
              "iss": API_AUDIENCE, "jti": str(uuid.uuid4()),
              "sub": f"system:serviceaccount:{namespace}:{name}",
              "kubernetes.io": {"namespace": namespace,
                                "serviceaccount": {"name": name, "uid": uid}}}
    signing_input = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + \
        _b64(json.dumps(claims).encode())
    sig = hmac.new(_signing_key(server), signing_input.encode(), "sha256").digest()
    return signing_input + "." + _b64(sig)


def review_token(server: StandInApiServer, token: str, audiences: list[str]) -> dict:
    """The ``status`` of a TokenReview of ``token`` for ``audiences``."""
    import hmac

    audiences = audiences or [API_AUDIENCE]

    def invalid(why: str) -> dict:
        return {"user": {}, "error": f"[invalid bearer token, {why}]"}

    parts = token.split(".")
    if len(parts) != 3:
        return invalid("token is not a JWT")
    expected = hmac.new(_signing_key(server), f"{parts[0]}.{parts[1]}".encode(),
                        "sha256").digest()
    try:
        if not hmac.compare_digest(_unb64(parts[2]), expected):
            return invalid("square/go-jose: error in cryptographic primitive")
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        return invalid("token is malformed")
    now = time.time()
    if now >= claims["exp"]:
        return invalid("service account token has expired")
    if now < claims["nbf"] - 60:
        return invalid("service account token is not valid yet")
    matched = [a for a in audiences if a in claims["aud"]]
    if not matched:
        return invalid(f"token audiences {json.dumps(claims['aud'])} is invalid for the "
                       f"target audiences {json.dumps(audiences)}")
    ident = claims["kubernetes.io"]
    ns, name = ident["namespace"], ident["serviceaccount"]["name"]
    with server._lock:
        sa = server._store.get(("ServiceAccount", ns, name))
    if sa is None:
        return invalid(f'serviceaccounts "{name}" not found')
    if (sa.get("metadata") or {}).get("uid", "") != ident["serviceaccount"]["uid"]:
        return invalid(f"service account UID ({ident['serviceaccount']['uid']}) does not "
                       f"match claim ({sa['metadata'].get('uid')})")
    return {"authenticated": True, "audiences": matched,
            "user": {"username": f"system:serviceaccount:{ns}:{name}",
                     "uid": ident["serviceaccount"]["uid"],
                     "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                "system:authenticated"],
                     "extra": {"authentication.kubernetes.io/credential-id":
                               [f"JTI={claims['jti']}"]}}}


def serve_token_api(handler: "_Handler", path: str, raw: bytes) -> bool:
    srv = handler.standin
    m = _TOKEN_REQUEST.match(path)
    if m is None and path != _TOKEN_REVIEW:
        return False
    try:
        body = json.loads(raw or b"{}")
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise ValueError
    except ValueError:
        raise _HttpError(400, "BadRequest", "the request body is not a JSON object") from None
    if m is None:
        srv._check(handler.headers, "tokenreviews", "create")
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise _HttpError(422, "Invalid", 'TokenReview.authentication.k8s.io "" is invalid: '
                                             "spec.token: Required value")
        status = review_token(srv, token, list(spec.get("audiences") or []))
        handler._send_json(201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                                 "metadata": {"creationTimestamp": None}, "spec": spec,
                                 "status": status})
        return True
    namespace, name = m.group(1), m.group(2)
    srv._check(handler.headers, "serviceaccounts/token", "create")
    with srv._lock:
        known = ("ServiceAccount", namespace, name) in srv._store
    if not known:
        raise _HttpError(404, "NotFound", f'serviceaccounts "{name}" not found')
    seconds = spec.get("expirationSeconds", 3600)
    if not isinstance(seconds, int) or not 600 <= seconds <= 1 << 32:
        why = ("may not specify a duration less than 10 minutes"
               if isinstance(seconds, int) and seconds < 600 else "out of range")
        raise _HttpError(422, "Invalid", 'TokenRequest.authentication.k8s.io "" is invalid: '
                                         f"spec.expirationSeconds: Invalid value: {seconds}: "
                                         f"{why}")
    audiences = list(spec.get("audiences") or [API_AUDIENCE])
    token = issue_token(srv, namespace, name, audiences, seconds)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(time.time()) + seconds))
    handler._send_json(201, {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                             "metadata": {"name": name, "namespace": namespace,
                                          "creationTimestamp": None},
                             "spec": {**spec, "audiences": audiences,
                                      "expirationSeconds": seconds, "boundObjectRef": None},
                             "status": {"token": token, "expirationTimestamp": expires}})
    return True
