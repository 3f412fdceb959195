"""The agent's HTTP endpoint: the segment catalog and bytes (read-only, no path out of
the segment directory) to segment readers only, Prometheus metrics, health. Tokens are
reviewed by the stand-in API server (tests/standin_apiserver.py, not a real one)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from reader_tokens import collector_token, reader_accounts, segment_readers
from standin_apiserver import StandInApiServer

from recorder.agent.metrics import MetricsSnapshot, registry
from recorder.agent.segments import SegmentWriter
from recorder.agent.serve import AgentHttpServer, parse_listen
from recorder.errors import UsageError
from recorder.schema import FlowLogHeader, FlowRecord, IpTimelineRecord

T0 = 1_700_000_000 * 1_000_000_000


def _flows(n: int, t: int = T0) -> list:
    return [FlowRecord(t + i, t + i + 5, "TCP", "10.0.0.1", "10.0.9.9", 80) for i in range(n)]


def _get(srv: AgentHttpServer, path: str, method: str = "GET",
         token: str | None = None) -> tuple[int, bytes, dict]:
    host, port = srv.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        conn.request(method, path, headers={"X-Flowpol-Token": token} if token else {})
        res = conn.getresponse()
        return res.status, res.read(), dict(res.getheaders())
    finally:
        conn.close()


class Served:
    def __init__(self, srv: AgentHttpServer, seg: SegmentWriter, token: str) -> None:
        self.srv, self.seg, self.token = srv, seg, token

    def get(self, path: str, method: str = "GET") -> tuple[int, bytes, dict]:
        return _get(self.srv, path, method, self.token)


@pytest.fixture
def api(tmp_path: Path):
    with StandInApiServer(reader_accounts()) as api:
        yield api


@pytest.fixture
def served(tmp_path: Path, api: StandInApiServer):
    seg = SegmentWriter(tmp_path / "segments", FlowLogHeader(node="n1"))
    seg.open()
    seg.write(_flows(3), T0)
    seg.write([IpTimelineRecord("10.0.0.1", T0 - 7, None, "shop", "web-1"), *_flows(2, T0 + 60)],
              T0 - 7)
    snap = MetricsSnapshot(observed={"capture": 7, "conntrack": 5},
                           recorded={"capture": 4, "conntrack": 1},
                           lost={"enobufs": 2, "key_overflow": 3}, segments_written=2,
                           last_write=1700000000.5)
    srv = AgentHttpServer(("127.0.0.1", 0), seg, segment_readers(api.kubeconfig_path(tmp_path)),
                          registry(lambda: snap), lambda: True)
    srv.start()
    try:
        yield Served(srv, seg, collector_token(api))
    finally:
        srv.stop()


def test_catalog_lists_closed_segments_with_checksums_and_times(served) -> None:
    seg = served.seg
    code, body, headers = served.get("/segments")
    assert code == 200 and headers["Content-Type"] == "application/json"
    listed = json.loads(body)
    files = sorted(p for p in seg.directory.iterdir() if not p.name.startswith("."))
    assert [e["name"] for e in listed] == [p.name for p in files]
    for entry, path in zip(listed, files):
        data = path.read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        code, fetched, _ = served.get(f"/segments/{path.name}")
        assert code == 200 and fetched == data
    assert listed[0]["first_time"] == "2023-11-14T22:13:20.000000000Z"
    assert listed[0]["last_time"] == "2023-11-14T22:13:20.000000007Z"
    assert listed[1]["first_time"] == "2023-11-14T22:13:19.999999993Z"  # the IP record


def test_only_segment_names_are_served(served, tmp_path: Path) -> None:
    seg = served.seg
    secret = tmp_path / "secret"
    secret.write_text("x")
    name = json.loads(served.get("/segments")[1])[0]["name"]
    # A link named like a segment is neither listed nor followed.
    link = "flows-00000099-20231114T221320Z.jsonl.gz"
    os.symlink(secret, seg.directory / link)
    (seg.directory / ".flows-00000100-20231114T221320Z.jsonl.gz.abc.tmp").write_text("half")
    for path in ("/segments/../secret", "/segments/..%2Fsecret", "/segments/%2e%2e/secret",
                 f"/segments/{link}", f"/segments/.{name}.meta", "/segments/",
                 "/segments/.flows-00000100-20231114T221320Z.jsonl.gz.abc.tmp",
                 f"/segments/{name}/x", f"/segments//{name}", "/etc/passwd", "/"):
        code, body, _ = served.get(path)
        assert code == 404 and b"x" not in body.replace(b"\n", b""), (path, code, body)
    assert link not in [e["name"] for e in json.loads(served.get("/segments")[1])]
    for method in ("POST", "PUT", "DELETE"):
        assert served.get(f"/segments/{name}", method)[0] == 405
    assert (seg.directory / name).exists()


def test_metrics_are_prometheus_text(served) -> None:
    srv = served.srv
    code, body, headers = _get(srv, "/metrics")  # no token: metrics are open
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}
    assert samples[("flowpol_recorder_observed_connections_total", (("source", "capture"),))] == 7
    assert samples[("flowpol_recorder_connections_total", (("source", "conntrack"),))] == 1
    assert samples[("flowpol_recorder_lost_total", (("reason", "enobufs"),))] == 2
    assert samples[("flowpol_recorder_lost_total", (("reason", "key_overflow"),))] == 3
    assert samples[("flowpol_recorder_lost_total", (("reason", "disk_full"),))] == 0
    assert samples[("flowpol_recorder_segments_written_total", ())] == 2
    assert samples[("flowpol_recorder_last_write_timestamp_seconds", ())] == 1700000000.5
    assert _get(srv, "/healthz")[:2] == (200, b"ok\n")


def test_a_restarted_writer_lists_the_same_catalog(served) -> None:
    seg = served.seg
    before = json.loads(served.get("/segments")[1])
    again = SegmentWriter(seg.directory, FlowLogHeader(node="n1"))
    again.open()
    assert [vars_of(i) for i in again.catalog()] == before
    # Without its sidecar a segment is read once and described the same way.
    for p in seg.directory.glob(".*.meta"):
        p.unlink()
    fresh = SegmentWriter(seg.directory, FlowLogHeader(node="n1"))
    fresh.open()
    assert [vars_of(i) for i in fresh.catalog()] == before
    assert len(list(seg.directory.glob(".*.meta"))) == 2


def vars_of(info) -> dict:
    return {k: getattr(info, k) for k in ("name", "size", "sha256", "first_time", "last_time")}


def test_listen_addresses() -> None:
    assert parse_listen("") is None and parse_listen("  ") is None
    assert parse_listen(":9401") == ("", 9401)
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:9401") == ("::1", 9401)
    for bad in ("9401", "localhost:9401", "1.2.3.4:99999", "1.2.3.4:x"):
        with pytest.raises(UsageError, match="--http-listen"):
            parse_listen(bad)


def test_a_busy_port_is_a_usage_error(served) -> None:
    srv, seg = served.srv, served.seg
    port = int(srv.address.rsplit(":", 1)[1])
    other = AgentHttpServer(("127.0.0.1", port), seg, srv.readers, registry(MetricsSnapshot),
                            lambda: True)
    with pytest.raises(UsageError, match="cannot listen"):
        other.start()


@pytest.mark.root
def test_the_agent_serves_where_told_and_not_when_told_not_to(tmp_path: Path) -> None:
    from agent_process import AgentProcess
    from netlab import NetLab

    with NetLab() as lab:
        runs = {}
        for name, env, args in (("default", {}, []),
                                ("env-empty", {"FLOWPOL_HTTP_LISTEN": ""}, []),
                                ("env", {"FLOWPOL_HTTP_LISTEN": "127.0.0.1:0"}, []),
                                ("flag-empty", {"FLOWPOL_HTTP_LISTEN": ":9401"},
                                 ["--http-listen", ""])):
            agent = AgentProcess(lab, ["--source", "conntrack", "--duration", "1s",
                                       "--segments", str(tmp_path / name), *args], env=env)
            assert agent.bg.proc.wait(60) == 0, agent.stderr
            agent.stop()  # joins its output readers
            runs[name] = [x for x in agent.stderr_lines if x.startswith("http: serving")]
    assert runs["default"] and runs["default"][0].endswith(("on [::]:9401", "on 0.0.0.0:9401"))
    assert runs["env"] and "on 127.0.0.1:" in runs["env"][0]
    assert runs["env-empty"] == [] and runs["flag-empty"] == []
