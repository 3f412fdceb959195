"""`flowpol collect` of segments through the stand-in API server's pod proxy (a stand-in,
not a real API server: tests/standin_apiserver.py) and --direct, from the real agent
HTTP endpoint on loopback: resume, checksums, layout, hostile listings, the reader
token (requested for the collector ServiceAccount, or from --token-file) and --since."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import k8s_objects as k
import pytest
from reader_tokens import COLLECTOR, OTHER, collector_token, reader_accounts, segment_readers
from standin_apiserver import DEFAULT_TOKEN, StandInApiServer, review_token

from recorder.agent.metrics import MetricsSnapshot, registry
from recorder.agent.pull import pull_segments
from recorder.agent.segments import SegmentWriter
from recorder.agent.serve import AgentHttpServer
from recorder.agent.collect_token import FileToken, parse_service_account
from recorder.errors import ClusterError, UsageError
from recorder.schema import FlowLogHeader, FlowRecord

ROOT = Path(__file__).resolve().parents[3]
NS = "flowpol-system"
LABELS = {"app.kubernetes.io/name": "flowpol-recorder"}
T0 = 1_700_000_000 * 1_000_000_000


def _flows(n: int, t: int) -> list:
    return [FlowRecord(t + i, t + i, "TCP", "10.0.0.1", "10.0.9.9", 80, src_port=2000 + i)
            for i in range(n)]


def _agent(directory: Path, api: StandInApiServer) -> tuple[AgentHttpServer, SegmentWriter, int]:
    """The agent's HTTP endpoint; it reviews tokens with ``api``."""
    seg = SegmentWriter(directory, FlowLogHeader(node="node-1"))
    seg.open()
    srv = AgentHttpServer(("127.0.0.1", 0), seg,
                          segment_readers(api.kubeconfig_path(directory.parent, filename="agent")),
                          registry(MetricsSnapshot), lambda: True)
    srv.start()
    return srv, seg, int(srv.address.rsplit(":", 1)[1])


def _cluster(pods: dict[str, str]) -> list[dict]:
    return [k.namespace(NS)] + reader_accounts() + [
        k.pod(name, NS, labels=LABELS, node=node, host_network=True, ip="127.0.0.1")
        for name, node in pods.items()]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", "collect", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def test_pull_through_the_pod_proxy_resumes_and_verifies(tmp_path: Path) -> None:
    out = tmp_path / "collected"
    with StandInApiServer(_cluster({"flowpol-recorder-abcde": "node-1"})) as api:
        agent, seg, port = _agent(tmp_path / "node-segments", api)
        first = seg.write(_flows(3, T0), T0)
        try:
            kubeconfig = str(api.kubeconfig_path(tmp_path))
            res = _cli("--out", str(out), "--kubeconfig", kubeconfig, "--port", str(port))
            assert res.returncode == 0, res.stderr
            assert "collected 1 new segment(s)" in res.stdout and "0 already there" in res.stdout
            assert _tree(out) == {f"node-1/flowpol-recorder-abcde/{first.name}": first.read_bytes()}
            proxied = [r.path for r in api.requests if "/proxy/" in r.path]
            assert proxied == [
                f"/api/v1/namespaces/{NS}/pods/flowpol-recorder-abcde:{port}/proxy/segments",
                f"/api/v1/namespaces/{NS}/pods/flowpol-recorder-abcde:{port}/proxy/segments/"
                f"{first.name}"]
            # One TokenRequest for the collector, one review by the agent.
            assert [(r.method, r.path) for r in api.requests_for("serviceaccounts")] == [
                ("POST", f"/api/v1/namespaces/{NS}/serviceaccounts/{COLLECTOR}/token")]
            assert len(api.requests_for("tokenreviews")) == 1

            # Resume: only the new segment is fetched.
            second = seg.write(_flows(2, T0 + 60), T0 + 60)
            before = len(api.requests)
            res = _cli("--out", str(out), "--kubeconfig", kubeconfig, "--port", str(port))
            assert res.returncode == 0 and "collected 1 new segment(s)" in res.stdout
            assert "1 already there" in res.stdout
            fetched = [r.path for r in api.requests[before:] if "/proxy/segments/" in r.path]
            assert [p.rsplit("/", 1)[1] for p in fetched] == [second.name]

            # The recorder pod was replaced (same node, same hostPath): nothing again.
            api.push_event("DELETED", _cluster({"flowpol-recorder-abcde": "node-1"})[-1])
            api.push_event("ADDED", _cluster({"flowpol-recorder-fghij": "node-1"})[-1])
            res = _cli("--out", str(out), "--kubeconfig", kubeconfig, "--port", str(port))
            assert res.returncode == 0 and "collected 0 new segment(s)" in res.stdout, res.stderr

            # A local copy that does not match its checksum is fetched again, beside it.
            (out / "node-1/flowpol-recorder-abcde" / first.name).write_bytes(b"corrupt")
            result = pull_segments(out, kubeconfig=kubeconfig, port=port)
            assert [p.name for p in result.fetched] == [first.name] and not result.errors
            assert len(result.warnings) == 1 and "other content" in result.warnings[0]
            assert (out / "node-1/flowpol-recorder-fghij" / first.name).read_bytes() == \
                first.read_bytes()

            # The API server says who may use the proxy, and who may get a reader's token.
            api.forbid("pods/proxy")
            with pytest.raises(ClusterError, match="get on pods/proxy"):
                pull_segments(tmp_path / "other", kubeconfig=kubeconfig, port=port)
            api.allow("pods/proxy")
            api.forbid("serviceaccounts/token")
            res = _cli("--out", str(tmp_path / "other"), "--kubeconfig", kubeconfig,
                       "--port", str(port))
            assert res.returncode == 2 and "Traceback" not in res.stderr
            assert (f"not allowed to get a token of ServiceAccount {NS}/{COLLECTOR}"
                    in res.stderr and "create on serviceaccounts/token" in res.stderr), res.stderr
            assert not (tmp_path / "other" / "node-1").exists()
        finally:
            agent.stop()


def test_direct_reads_the_pod_address(tmp_path: Path) -> None:
    with StandInApiServer(_cluster({"rec-1": "node-1"})) as api:
        agent, seg, port = _agent(tmp_path / "node-segments", api)
        seg.write(_flows(2, T0), T0)
        try:
            out = tmp_path / "out"
            res = _cli("--out", str(out), "--direct", "--port", str(port),
                       "--kubeconfig", str(api.kubeconfig_path(tmp_path)))
            assert res.returncode == 0, res.stderr
            assert not [r for r in api.requests if "/proxy/" in r.path]  # not through the API
            assert [Path(p).name for p in _tree(out)] == [p.name for p in seg.segments()]
        finally:
            agent.stop()


def test_tokens_the_recorder_refuses_end_the_collect_with_what_to_do(tmp_path: Path) -> None:
    with StandInApiServer(_cluster({"rec-1": "node-1", "rec-2": "node-2"})) as api:
        agent, seg, port = _agent(tmp_path / "node-segments", api)
        seg.write(_flows(2, T0), T0)
        kubeconfig = str(api.kubeconfig_path(tmp_path))
        out = tmp_path / "out"
        token_file = tmp_path / "token"
        try:
            for direct in (False, True):
                for what, token, text in (
                        ("another ServiceAccount", collector_token(api, name=OTHER),
                         "--segment-readers"),
                        ("expired", collector_token(api, expires_in=-1), "has expired"),
                        ("for the API server", collector_token(api, audiences=("https://x",)),
                         "audience flowpol-recorder")):
                    token_file.write_text(token + "\n")
                    before = len(api.requests)
                    with pytest.raises(ClusterError) as info:
                        pull_segments(out, kubeconfig=kubeconfig, port=port, direct=direct,
                                      token_file=str(token_file))
                    assert f"refused the token in {token_file}" in str(info.value)
                    assert text in str(info.value), (what, str(info.value))
                    # The first refusal ends it: the other recorder is not asked.
                    assert len([r for r in api.requests[before:]
                                if r.path.endswith("/segments")]) == (0 if direct else 1)
            assert not out.exists() or not any(out.rglob("flows-*"))
            # The CLI: exit 2 with the message, no traceback.
            res = _cli("--out", str(out), "--kubeconfig", kubeconfig, "--port", str(port),
                       "--token-file", str(token_file))
            assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
            assert "flowpol: error: the recorder flowpol-system/rec-1 refused" in res.stderr
            # A valid token file: read, used, nothing requested.
            token_file.write_text(collector_token(api))
            result = pull_segments(out, kubeconfig=kubeconfig, port=port, direct=True,
                                   token_file=str(token_file))
            assert len(result.fetched) == 2 and not result.errors
            assert not api.requests_for("serviceaccounts")  # no TokenRequest at all
        finally:
            agent.stop()
    for bad in ("", "two tokens", "x" * 70000):
        token_file.write_text(bad)
        with pytest.raises(UsageError, match="does not hold one token"):
            FileToken(str(token_file)).token()
    with pytest.raises(UsageError, match="cannot read it"):
        FileToken(str(tmp_path / "missing")).token()
    for bad in ("nope", "a/b,c/d", "ns/Name"):
        with pytest.raises(UsageError, match="--service-account"):
            parse_service_account(bad)


def test_a_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    # As the kubelet renews a projected token: a new file renamed into place.
    path = tmp_path / "token"
    path.write_text("first")
    tokens = FileToken(str(path))
    assert tokens.token() == "first"
    new = tmp_path / "new"
    new.write_text("second")
    new.replace(path)
    assert tokens.token() == "second"


class _RecordingAgent(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers.items()))
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_the_recorder_sees_a_reader_token_never_the_user_s_credential(tmp_path: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingAgent)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with StandInApiServer(_cluster({"rec-1": "node-1"})) as api:
            kubeconfig = str(api.kubeconfig_path(tmp_path))
            for direct in ((), ("--direct",)):
                _RecordingAgent.seen = []
                res = _cli("--out", str(tmp_path / "out"), "--kubeconfig", kubeconfig,
                           "--port", str(httpd.server_address[1]), *direct)
                assert res.returncode == 0, res.stderr
                (headers,) = _RecordingAgent.seen
                assert DEFAULT_TOKEN not in json.dumps(headers)
                assert "Authorization" not in headers
                token = headers["X-Flowpol-Token"]
                status = review_token(api, token, ["flowpol-recorder"])
                assert status["user"]["username"] == f"system:serviceaccount:{NS}:{COLLECTOR}"
    finally:
        httpd.shutdown()


def test_since_fetches_only_segments_that_overlap_it(tmp_path: Path) -> None:
    hour = 3600 * 1_000_000_000
    with StandInApiServer(_cluster({"rec-1": "node-1"})) as api:
        agent, seg, port = _agent(tmp_path / "node-segments", api)
        old = seg.write(_flows(2, T0), T0)  # T0 .. T0+1 ns
        straddling = seg.write([FlowRecord(T0 + hour, T0 + 3 * hour, "TCP", "10.0.0.1",
                                           "10.0.9.9", 80)], T0 + hour)
        recent = seg.write(_flows(1, T0 + 4 * hour), T0 + 4 * hour)
        try:
            from recorder.timefmt import format_time

            res = _cli("--out", str(tmp_path / "out"), "--direct", "--port", str(port),
                       "--kubeconfig", str(api.kubeconfig_path(tmp_path)),
                       "--since", format_time(T0 + 2 * hour))
            assert res.returncode == 0, res.stderr
            assert "collected 2 new segment(s)" in res.stdout and "1 older than --since" in \
                res.stdout
            assert sorted(Path(p).name for p in _tree(tmp_path / "out")) == \
                sorted([straddling.name, recent.name])
            assert old.name not in [r.path.rsplit("/", 1)[-1] for r in api.requests]
        finally:
            agent.stop()


class _HostileAgent(BaseHTTPRequestHandler):
    listing: list = []
    bodies: dict[str, bytes] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/segments":
            body = json.dumps(self.listing).encode()
        elif self.path.startswith("/segments/") and self.path[10:] in self.bodies:
            body = self.bodies[self.path[10:]]
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_hostile_or_broken_listings_never_write_outside_or_keep_bad_bytes(
        tmp_path: Path) -> None:
    good = "flows-00000001-20231114T221320Z.jsonl.gz"
    tampered = "flows-00000002-20231114T221320Z.jsonl.gz"
    gone = "flows-00000003-20231114T221320Z.jsonl.gz"
    data = b"segment bytes"

    def entry(name: object, body: bytes = data, **kw: object) -> dict:
        return {"name": name, "size": len(body), "sha256": hashlib.sha256(body).hexdigest(), **kw}

    class Handler(_HostileAgent):
        listing = [entry("../../escape.jsonl.gz"), entry("/etc/flows-00000001-x.jsonl"),
                   entry(".flows-00000001-20231114T221320Z.jsonl.gz"), entry(good),
                   {**entry(tampered), "sha256": "0" * 64}, entry(gone),
                   {**entry(good), "size": -1}, "not an object"]
        bodies = {good: data, tampered: data}

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    objs = _cluster({"rec-1": "node-1"})
    objs.append(k.pod("rec-2", NS, labels=LABELS, node="../../evil", host_network=True,
                      ip="127.0.0.1"))
    # (This agent checks no token: it stands for a compromised or fake recorder.)
    try:
        with StandInApiServer(objs) as api:
            out = tmp_path / "deep" / "out"
            res = _cli("--out", str(out), "--port", str(port),
                       "--kubeconfig", str(api.kubeconfig_path(tmp_path)))
    finally:
        httpd.shutdown()
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert _tree(tmp_path / "deep") == {f"out/node-1/rec-1/{good}": data}
    assert not (tmp_path / "escape.jsonl.gz").exists()
    for text in ("entry 0 of its segment list is not a valid segment",
                 "entry 7 of its segment list", f"cannot fetch {tampered}",
                 "not kept (collect again)", "rec-2: not scheduled on a node (or an invalid",
                 f"{gone}: deleted on the node"):
        assert text in res.stderr, (text, res.stderr)
    assert "collected 1 new segment(s)" in res.stdout
