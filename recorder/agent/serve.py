"""The recorder's HTTP endpoint (``--http-listen``, default ``:9401``): closed segments,
read-only, and metrics.

    GET /segments          JSON list of closed segments, by name:
                           [{"name", "size", "sha256", "first_time", "last_time"}, ...]
    GET /segments/<name>   the bytes of one (names must match the segment pattern; no
                           paths, no hidden temporaries, no sidecars)
    GET /metrics           Prometheus text format (recorder/agent/metrics.py)
    GET /healthz           "ok" while the recording loop is healthy (the heartbeat), 503
                           when it stalled

The two /segments requests need the token of a segment reader in ``X-Flowpol-Token``
(recorder/agent/readers.py): 401, 403 or 503 otherwise, before anything about the
segments is looked at. /metrics and /healthz stay open: the kubelet probes /healthz
without credentials, Prometheus scrapes /metrics, and neither says more than counts.

Nothing else: every other method is refused, other paths are 404. Only closed segments
exist under their names (a segment is renamed into place complete and never changed),
so a listing never offers a file that is still being written. A segment is opened
without following symbolic links and must be a regular file.

The DaemonSet runs in the node's network namespace, so this port is on the node's
addresses, reachable by whatever reaches the node; hence the token, which works the same
directly and through the API server's pod proxy (recorder/deploy/README.md, Collect).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from recorder.agent.readers import REFUSED_HEADER, TOKEN_HEADER, SegmentReaders
from recorder.agent.segments import SEGMENT, SegmentWriter
from recorder.errors import UsageError

DEFAULT_PORT = 9401
DEFAULT_LISTEN = f":{DEFAULT_PORT}"
_CHUNK = 1 << 16


def parse_listen(text: str) -> tuple[str, int] | None:
    """``ADDR:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (every address) -> (host, port);
    empty -> None (no server)."""
    text = text.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--http-listen {text!r}: give ADDR:PORT, [IPv6]:PORT or :PORT "
                         f"(e.g. :{DEFAULT_PORT}), or an empty value to serve nothing")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"--http-listen {text!r}: {host!r} is not an IP address") from None
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, handler: type) -> None:
        self.dual_stack = False
        if not host:  # every address: IPv6 and IPv4 on one socket when the node has IPv6
            if socket.has_ipv6 and _ipv6_works():
                host, self.dual_stack = "::", True
            else:
                host = "0.0.0.0"
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler, bind_and_activate=False)
        try:
            if self.dual_stack:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise


def _ipv6_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
        return True
    except OSError:
        return False


class AgentHttpServer:
    def __init__(self, listen: tuple[str, int], segments: SegmentWriter | None,
                 readers: SegmentReaders, metrics: Any, healthy: Callable[[], bool],
                 log: Callable[[str], None] = lambda _msg: None) -> None:
        self.listen = listen
        self.segments = segments
        self.readers = readers
        self.metrics = metrics  # a prometheus_client CollectorRegistry
        self.healthy = healthy
        self.log = log
        self._warned: dict[str, float] = {}
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        owner = self

        class Handler(_Handler):
            agent = owner

        host, port = self.listen
        try:
            self._httpd = _Server(host, port, Handler)
        except OSError as e:
            shown = f"[{host}]" if ":" in host else host
            raise UsageError(f"--http-listen {shown}:{port}: cannot listen ({e.strerror}); "
                             "choose a free port, or --http-listen '' to serve nothing"
                             ) from None
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.2}, daemon=True,
                                        name="http")
        self._thread.start()
        self.log(f"http: serving /segments (to tokens of {self.readers.shown}), /metrics "
                 f"and /healthz on {self.address}")

    def warn_once_a_minute(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(key, -120.0) >= 60.0:
            self._warned[key] = now
            self.log(f"warning: http: {message}")

    @property
    def address(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


class _Handler(BaseHTTPRequestHandler):
    agent: AgentHttpServer
    protocol_version = "HTTP/1.1"
    server_version = "flowpol-recorder"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # stderr is the agent's log
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/segments" or path.startswith("/segments/"):
            if not self._authorized():
                return
            if path == "/segments":
                self._list()
            else:
                self._fetch(path[len("/segments/"):])
        elif path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            self._send(200, generate_latest(self.agent.metrics), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok = self.agent.healthy()
            self._send(200 if ok else 503, b"ok\n" if ok else b"stalled\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _authorized(self) -> bool:
        decision = self.agent.readers.decide_header(self.headers.get_all(TOKEN_HEADER) or [])
        if decision.status == 200:
            return True
        extra = {REFUSED_HEADER: decision.reason}
        if decision.status == 401:
            extra["WWW-Authenticate"] = f'{TOKEN_HEADER} realm="flowpol-recorder"'
        elif decision.status == 503:
            extra["Retry-After"] = "10"
            self.agent.warn_once_a_minute(decision.reason, f"segment reads refused: "
                                                           f"{decision.message}")
        self._send(decision.status, f"flowpol-recorder: {decision.message}\n".encode(),
                   "text/plain", **extra)
        return False

    def _refuse(self) -> None:
        self._send(405, b"read-only: GET only\n", "text/plain", allow="GET")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse

    def _list(self) -> None:
        seg = self.agent.segments
        infos = seg.catalog() if seg is not None else []
        body = json.dumps([{"name": i.name, "size": i.size, "sha256": i.sha256,
                            "first_time": i.first_time, "last_time": i.last_time}
                           for i in infos], indent=1).encode() + b"\n"
        self._send(200, body, "application/json")

    def _fetch(self, name: str) -> None:
        seg = self.agent.segments
        # The name is checked against the pattern before it touches the filesystem: no
        # separators, no "..", no hidden files can match it.
        if seg is None or not SEGMENT.match(name):
            self._send(404, b"no such segment\n", "text/plain")
            return
        try:
            fd = os.open(seg.directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            code = 404 if e.errno in (errno.ENOENT, errno.ELOOP) else 500
            self._send(code, b"no such segment\n" if code == 404 else b"cannot read it\n",
                       "text/plain")
            return
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                self._send(404, b"no such segment\n", "text/plain")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
            self.end_headers()
            left = st.st_size  # a closed segment does not change; never send more
            try:
                while left > 0:
                    chunk = f.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def _send(self, code: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers.items():
            self.send_header(k if "-" in k else k.capitalize(), v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def heartbeat_check(last_tick: Callable[[], float], stale_after_s: float = 30.0
                    ) -> Callable[[], bool]:
    return lambda: time.monotonic() - last_tick() < stale_after_s
