"""``flowpol collect``: the closed segments of every recorder pod, into one directory.

For every recorder pod (``app.kubernetes.io/name=flowpol-recorder`` in the namespace),
the agent's segment list (``GET /segments``, recorder/agent/serve.py) is read and each
segment the output directory does not have yet is fetched:

* through the API server's pod proxy,
  ``/api/v1/namespaces/NS/pods/POD:PORT/proxy/segments`` (the caller needs ``get`` on
  ``pods/proxy`` in the recorder's namespace; the API server authorizes it), or
* ``direct``: from the pod's address (from inside the cluster; no API server in the
  data path, only the pod list).

Either way every request carries a segment reader's token in ``X-Flowpol-Token``
(recorder/agent/collect_token.py; the recorder checks it, recorder/agent/readers.py).
A recorder that refuses the token (401/403) ends the run: every recorder checks the same
way, so the others would refuse it too. A recorder that cannot verify it (503: its API
server unreachable) is reported like an unreachable pod.

Files go to ``OUT/<node>/<pod>/<segment>``. A segment is identified by its node and
name (the segments live on the node, so a replaced recorder pod lists its predecessor's
too): one already present under any pod directory of that node with the listed sha256
is not fetched again. A fetched segment is checked against the listed size and sha256
before it is renamed into place (temporary file, fsync, rename); a mismatch is an error
and nothing is kept of it. A name already present with other content (a node whose
segment directory was wiped numbers from 0 again) is kept, and the new segment is
written beside it with its checksum in the name. Container logs are never read here
(``collect --logs`` is the fallback that does).

Every name that comes from the cluster or from an agent (node, pod, segment) is
validated before it becomes part of a path: DNS-1123 for nodes and pods, the segment
pattern for segments.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from recorder.agent.collect import DEFAULT_NAMESPACE, DEFAULT_SELECTOR, _api_error
from recorder.agent.collect_token import DEFAULT_SERVICE_ACCOUNT, TokenSource, token_source
from recorder.agent.readers import AUDIENCE, REFUSED_HEADER, TOKEN_HEADER
from recorder.agent.segments import SEGMENT
from recorder.agent.serve import DEFAULT_PORT
from recorder.errors import ClusterError, UsageError
from recorder.timefmt import parse_time

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 16
MAX_LISTING_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    size: int
    sha256: str
    last_time: int | None  # ns; None when the agent did not say


@dataclass
class PullResult:
    pods: list[str] = field(default_factory=list)  # namespace/name of every pod listed
    fetched: list[Path] = field(default_factory=list)
    fetched_bytes: int = 0
    present: int = 0  # listed and already in the output directory
    older: int = 0  # listed, but all of it before ``since``
    gone: list[str] = field(default_factory=list)  # listed, deleted on the node before the fetch
    errors: list[str] = field(default_factory=list)  # pods or segments that failed
    warnings: list[str] = field(default_factory=list)


class _Transport:
    """GET a path of a recorder pod's HTTP endpoint, streamed, with the reader token."""

    tokens: TokenSource

    def open(self, pod: dict, path: str) -> Any:  # an urllib3 response
        raise NotImplementedError


class _ProxyTransport(_Transport):
    def __init__(self, api: Any, namespace: str, port: int, tokens: TokenSource) -> None:
        self.api = api
        self.namespace = namespace
        self.port = port
        self.tokens = tokens

    def open(self, pod: dict, path: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        name = pod["metadata"]["name"]
        # Built here, not as a path parameter: the client would escape the ":" of
        # "name:port" (the proxy subresource's form for a port).
        resource = f"/api/v1/namespaces/{self.namespace}/pods/{name}:{self.port}/proxy/{path}"
        # The client's own credential goes in Authorization, which the API server
        # consumes; the reader token in a header it passes on (recorder/agent/readers.py).
        headers = {TOKEN_HEADER: self.tokens.token()}
        try:
            resp, _, _ = self.api.call_api(resource, "GET", header_params=headers,
                                           auth_settings=["BearerToken"],
                                           _preload_content=False, _request_timeout=(10, 600))
        except ApiException as e:
            reason = (e.headers or {}).get(REFUSED_HEADER)
            if reason:
                raise _Refused(e.status, reason, _text(e.body)) from None
            raise
        return resp


class _DirectTransport(_Transport):
    def __init__(self, port: int, tokens: TokenSource) -> None:
        import urllib3

        self.port = port
        self.tokens = tokens
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=600),
                                        retries=False)

    def open(self, pod: dict, path: str) -> Any:
        ip = (pod.get("status") or {}).get("podIP")
        if not isinstance(ip, str) or not ip:
            raise _PodError("has no address yet")
        import ipaddress

        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise _PodError(f"has an invalid address {ip!r}") from None
        host = f"[{addr}]" if addr.version == 6 else str(addr)
        resp = self.http.request("GET", f"http://{host}:{self.port}/{path}",
                                 headers={TOKEN_HEADER: self.tokens.token()},
                                 preload_content=False)
        if not 200 <= resp.status <= 299:
            reason = resp.headers.get(REFUSED_HEADER)
            body = resp.read(4096) if reason else b""
            resp.release_conn()
            if reason:
                raise _Refused(resp.status, reason, _text(body))
            raise _HttpStatus(resp.status, resp.reason or "")
        return resp


def _text(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = " ".join(str(body or "").split())[:500]
    return text.removeprefix("flowpol-recorder: ")


class _PodError(Exception):
    pass


class _Refused(Exception):
    """The recorder itself refused the request (its X-Flowpol-Refused header)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message or f"{status} {reason}")
        self.status = status
        self.reason = reason


class _HttpStatus(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status


def _listing(raw: bytes, pod: str) -> tuple[list[Segment], list[str]]:
    """The agent's list -> valid segments; entries that are not are reported, never
    used (a name becomes part of a path)."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise _PodError("its segment list is not JSON") from None
    if not isinstance(data, list):
        raise _PodError("its segment list is not a JSON list")
    out: list[Segment] = []
    bad: list[str] = []
    for i, e in enumerate(data):
        name = e.get("name") if isinstance(e, dict) else None
        size = e.get("size") if isinstance(e, dict) else None
        digest = e.get("sha256") if isinstance(e, dict) else None
        if not (isinstance(name, str) and SEGMENT.match(name) and type(size) is int
                and size >= 0 and isinstance(digest, str) and _SHA256.match(digest)):
            bad.append(f"{pod}: entry {i} of its segment list is not a valid segment "
                       f"({json.dumps(e)[:120]})")
            continue
        last = e.get("last_time")
        try:
            last_ns = parse_time(last) if isinstance(last, str) else None
        except ValueError:
            last_ns = None
        out.append(Segment(name, size, digest, last_ns))
    return out, bad


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class _NodeIndex:
    """What the output directory holds for one node: name -> checksums, across pods."""

    def __init__(self, node_dir: Path) -> None:
        self.node_dir = node_dir
        self._by_name: dict[str, set[str]] | None = None
        self._cache: dict[Path, str] = {}

    def has(self, seg: Segment) -> bool:
        if self._by_name is None:
            self._by_name = {}
            if self.node_dir.is_dir():
                for pod_dir in sorted(self.node_dir.iterdir()):
                    if not pod_dir.is_dir() or pod_dir.is_symlink():
                        continue
                    for f in pod_dir.iterdir():
                        if f.name.startswith(".") or not f.is_file() or f.is_symlink():
                            continue
                        self._by_name.setdefault(_listed_name(f.name), set()).add(str(f))
        return any(digest == seg.sha256 for _, digest in self._copies(seg))

    def others(self, seg: Segment) -> list[Path]:
        """Local files listed under this name whose content is not this segment's."""
        return [p for p, digest in self._copies(seg) if digest != seg.sha256]

    def _copies(self, seg: Segment) -> list[tuple[Path, str]]:
        out = []
        for path in sorted((self._by_name or {}).get(seg.name, ())):
            p = Path(path)
            if p not in self._cache:
                try:
                    self._cache[p] = _sha256_of(p)
                except OSError:
                    continue
            out.append((p, self._cache[p]))
        return out

    def add(self, seg: Segment, path: Path) -> None:
        if self._by_name is not None:
            self._by_name.setdefault(seg.name, set()).add(str(path))
        self._cache[path] = seg.sha256


_RENAMED = re.compile(r"^(flows-\d{8,}-[0-9TZ]+)-[0-9a-f]{12}(\.jsonl(?:\.gz)?)$")


def _listed_name(local: str) -> str:
    m = _RENAMED.match(local)
    return m.group(1) + m.group(2) if m else local


def _target(pod_dir: Path, seg: Segment) -> Path:
    path = pod_dir / seg.name
    if path.exists() or path.is_symlink():  # same name, other content: keep both
        m = SEGMENT.match(seg.name)
        assert m is not None
        stem = seg.name[: -len(".jsonl.gz")] if seg.name.endswith(".gz") else seg.name[: -len(".jsonl")]
        path = pod_dir / f"{stem}-{seg.sha256[:12]}{seg.name[len(stem):]}"
    return path


def _fetch(transport: _Transport, pod: dict, seg: Segment, target: Path) -> int:
    """Stream one segment into ``target`` atomically, checking size and checksum."""
    resp = transport.open(pod, f"segments/{seg.name}")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    h = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in resp.stream(_CHUNK):
                size += len(chunk)
                if size > seg.size:
                    break
                h.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if size != seg.size or h.hexdigest() != seg.sha256:
            raise _PodError(f"segment {seg.name}: got {size} byte(s) with sha256 "
                            f"{h.hexdigest()[:12]}..., the list said {seg.size} with "
                            f"{seg.sha256[:12]}...; not kept (collect again)")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        resp.release_conn()
    _fsync_dir(target.parent)
    return size


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_all(resp: Any, limit: int) -> bytes:
    data = bytearray()
    try:
        for chunk in resp.stream(_CHUNK):
            data += chunk
            if len(data) > limit:
                raise _PodError(f"its segment list is larger than {limit} bytes")
    finally:
        resp.release_conn()
    return bytes(data)


def pull_segments(out: str | Path, namespace: str = DEFAULT_NAMESPACE,
                  selector: str = DEFAULT_SELECTOR, kubeconfig: str | None = None,
                  context: str | None = None, direct: bool = False,
                  port: int = DEFAULT_PORT, since: int | None = None,
                  progress: Callable[[str], None] = lambda _msg: None,
                  token_file: str | None = None,
                  service_account: str = DEFAULT_SERVICE_ACCOUNT) -> PullResult:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    from recorder.kube import api_client, root_cause

    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory; collect writes "
                         "a directory (OUT/<node>/<pod>/<segment>)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create the directory ({e.strerror})") from None
    api, context_name = api_client(kubeconfig, context)
    server = api.configuration.host
    result = PullResult()
    try:
        tokens = token_source(token_file, service_account, api, server, context_name)
        try:
            listed = json.loads(client.CoreV1Api(api).list_namespaced_pod(
                namespace, label_selector=selector, _preload_content=False,
                _request_timeout=(10, 60)).data)
        except ApiException as e:
            raise ClusterError(_api_error(e, f"list pods in namespace {namespace}", server,
                                          context_name).replace(
                "get on pods/log", "get on pods/proxy (the flowpol-collect Role)")) from None
        pods = sorted((p for p in listed.get("items") or [] if isinstance(p, dict)),
                      key=lambda p: str((p.get("metadata") or {}).get("name")))
        if not pods:
            raise ClusterError(
                f"no recorder pods ({selector}) in namespace {namespace} of {server}; is "
                "the DaemonSet deployed? Pick another namespace with --namespace")
        transport: _Transport = (_DirectTransport(port, tokens) if direct
                                 else _ProxyTransport(api, namespace, port, tokens))
        indexes: dict[str, _NodeIndex] = {}
        for pod in pods:
            _pull_pod(pod, namespace, transport, out_dir, indexes, result, progress,
                      ApiException, direct, server, context_name, since)
    except (Urllib3Error, OSError) as e:
        if isinstance(e, OSError) and e.filename is not None:
            raise UsageError(f"--out {out}: cannot write ({e.strerror}: {e.filename})") from None
        raise ClusterError(f"cannot reach the API server {server} of context "
                           f"{context_name!r} ({root_cause(e)})") from None
    finally:
        api.close()
    return result


def _pull_pod(pod: dict, namespace: str, transport: _Transport, out_dir: Path,
              indexes: dict[str, _NodeIndex], result: PullResult,
              progress: Callable[[str], None], api_exception: type, direct: bool,
              server: str, context_name: str, since: int | None) -> None:
    from urllib3.exceptions import HTTPError as Urllib3Error

    meta = pod.get("metadata") or {}
    name, node = meta.get("name"), (pod.get("spec") or {}).get("nodeName")
    shown = f"{namespace}/{name}"
    if not (isinstance(name, str) and _DNS1123.match(name)):
        result.errors.append(f"a recorder pod with an invalid name {str(name)[:80]!r}: skipped")
        return
    result.pods.append(shown)
    if not (isinstance(node, str) and _DNS1123.match(node)):
        result.errors.append(f"{shown}: not scheduled on a node (or an invalid node name); "
                             "nothing to collect from it yet")
        return

    def failed(e: BaseException, what: str) -> None:
        if isinstance(e, _Refused):
            if e.status in (401, 403):
                raise ClusterError(_refusal(e, shown, transport.tokens)) from None
            result.errors.append(f"{shown} (node {node}): cannot {what}: the recorder "
                                 f"refused ({e.status}): {e}")
            return
        if isinstance(e, api_exception):
            if e.status in (401, 403):
                raise ClusterError(_api_error(e, f"{what} through the pod proxy", server,
                                              context_name).replace(
                    "list on pods and get on pods/log", "list on pods and get on pods/proxy"))
            try:
                message = json.loads(e.body).get("message", "") if e.body else ""
            except (ValueError, AttributeError):
                message = ""
            why = f"{e.status} {e.reason}" + (f": {message}" if message else "")
        else:
            why = str(e) if isinstance(e, (_PodError, _HttpStatus)) else f"{type(e).__name__}: {e}"
        result.errors.append(f"{shown} (node {node}): cannot {what}: {why}")

    try:
        raw = _read_all(transport.open(pod, "segments"), MAX_LISTING_BYTES)
        segments, bad = _listing(raw, shown)
    except (api_exception, _PodError, _HttpStatus, _Refused, Urllib3Error, OSError) as e:
        if isinstance(e, OSError) and getattr(e, "filename", None) is not None:
            raise
        failed(e, "list its segments" + (" directly" if direct else ""))
        return
    result.errors.extend(bad)
    index = indexes.setdefault(node, _NodeIndex(out_dir / node))
    pod_dir = out_dir / node / name
    for seg in segments:
        if since is not None and seg.last_time is not None and seg.last_time < since:
            result.older += 1
            continue
        if index.has(seg):
            result.present += 1
            continue
        others = index.others(seg)
        pod_dir.mkdir(parents=True, exist_ok=True)
        target = _target(pod_dir, seg)
        try:
            size = _fetch(transport, pod, seg, target)
        except (api_exception, _HttpStatus) as e:
            if getattr(e, "status", None) == 404:
                result.gone.append(f"{shown}: {seg.name}")
                continue
            failed(e, f"fetch {seg.name}")
            continue
        except (_PodError, _Refused, Urllib3Error) as e:
            failed(e, f"fetch {seg.name}")
            continue
        index.add(seg, target)
        for other in others:
            result.warnings.append(
                f"{other} has the name of {shown}'s segment {seg.name} but other content (an "
                f"older segment of a node whose segment directory was emptied, or a damaged "
                f"copy): kept; the recorder's is {target}")
        result.fetched.append(target)
        result.fetched_bytes += size
        progress(f"{node}/{name}/{target.name}")


def _refusal(e: _Refused, pod: str, tokens: TokenSource) -> str:
    if e.reason == "not_a_reader":
        hint = ("the recorders serve segments only to the ServiceAccounts of their "
                "--segment-readers (FLOWPOL_SEGMENT_READERS on the DaemonSet): collect with "
                "--service-account one of them, or add this one there")
    else:
        hint = (f"a token for audience {AUDIENCE} that the API server accepts is needed "
                "(not expired, its ServiceAccount not deleted)")
    return (f"the recorder {pod} refused {tokens.describe()} ({e.status}: {e}); {hint}. "
            "Segments fetched before are in place")
