"""`flowpol collect` against the stand-in API server (pod list + pod logs), through the
real kubernetes client and the CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import k8s_objects as k
import pytest
from standin_apiserver import StandInApiServer, set_pod_log

from recorder.agent.collect import collect
from recorder.errors import ClusterError
from recorder.flowlog import header_to_json, record_to_json
from recorder.report import ReadReport
from recorder.schema import FlowLogHeader, FlowRecord, IpTimelineRecord
from recorder.sources import read_inputs

ROOT = Path(__file__).resolve().parents[3]
NS = "flowpol-system"
LABELS = {"app.kubernetes.io/name": "flowpol-recorder"}
T0 = 1_700_000_000 * 1_000_000_000


def _agent_log(node: str, records: list, extra: list[bytes] = ()) -> bytes:
    lines = [b"capture: listening on veth1", header_to_json(FlowLogHeader(node=node))]
    lines += [record_to_json(r) for r in records]
    lines += list(extra)
    return b"\n".join(lines) + b"\n"


def _flow(src: str, port: int, t: int = T0) -> FlowRecord:
    return FlowRecord(t, t, "TCP", src, "10.96.0.10", 80, xlated_ip="10.244.1.9",
                      xlated_port=port, count=2, node="node-1", source_format="capture",
                      input="capture:veth1")


def _cluster() -> list[dict]:
    return [k.namespace(NS),
            k.pod("recorder-aaaaa", NS, labels=LABELS, node="node-1", host_network=True,
                  ip="192.168.0.11"),
            k.pod("recorder-bbbbb", NS, labels=LABELS, node="node-2", host_network=True,
                  ip="192.168.0.12"),
            k.pod("unrelated", NS, labels={"app": "x"})]


def test_collect_merges_every_pod_and_the_previous_container(tmp_path: Path) -> None:
    ip = IpTimelineRecord("10.244.1.5", T0 - 10, None, "shop", "web-1")
    with StandInApiServer(_cluster()) as srv:
        set_pod_log(srv, NS, "recorder-aaaaa", _agent_log("node-1", [ip, _flow("10.244.1.5", 8080)]),
                    previous=True)
        set_pod_log(srv, NS, "recorder-aaaaa", _agent_log(
            "node-1", [_flow("10.244.1.5", 8080, T0 + 60)],
            [b"warning: 12 connection(s) not recorded: the window already held --max-keys 5",
             b'{"kind": "flow", "protocol": "TCP"']))  # cut off by a crash
        set_pod_log(srv, NS, "recorder-bbbbb", _agent_log("node-2", [_flow("10.244.2.7", 9090)]))
        kubeconfig = srv.kubeconfig_path(tmp_path)
        result = collect(kubeconfig=str(kubeconfig))
        assert result.pods == (f"{NS}/recorder-aaaaa", f"{NS}/recorder-bbbbb")
        flows = [r for r in result.records if isinstance(r, FlowRecord)]
        assert sorted((f.src_ip, f.first_seen) for f in flows) == [
            ("10.244.1.5", T0), ("10.244.1.5", T0 + 60), ("10.244.2.7", T0)]
        assert [r for r in result.records if isinstance(r, IpTimelineRecord)] == [ip]
        assert result.report.skipped == {"invalid-json": 1}
        assert str(result.report.examples[0]).startswith(f"{NS}/recorder-aaaaa:5: invalid-json")
        assert len(result.agent_warnings) == 1 and "max-keys" in result.agent_warnings[0]
        assert srv.requests_for("pods")[0].query["labelSelector"] == \
            "app.kubernetes.io/name=flowpol-recorder"

        # The CLI writes one flow log that every reader takes.
        out = tmp_path / "collected.jsonl"
        res = subprocess.run([sys.executable, "-m", "generator.cli.main", "collect", "--logs",
                              "--out", str(out),
                              "--kubeconfig", str(kubeconfig)], cwd=ROOT, capture_output=True,
                             text=True)
        assert res.returncode == 0, res.stderr
        assert "from 2 recorder pod(s)" in res.stdout and "max-keys" in res.stderr
        report = ReadReport(strict=True)
        assert sorted(r.first_seen for r in read_inputs([str(out)], report)
                      if isinstance(r, FlowRecord)) == [T0, T0, T0 + 60]


def test_since_filters_by_log_time(tmp_path: Path) -> None:
    with StandInApiServer(_cluster()) as srv:
        old = time.time() - 3 * 3600
        set_pod_log(srv, NS, "recorder-aaaaa", _agent_log("node-1", [_flow("10.244.1.5", 1)]),
                    previous=True, at=old)
        set_pod_log(srv, NS, "recorder-aaaaa", _agent_log("node-1", [_flow("10.244.1.6", 2)]))
        now = time.time_ns()
        result = collect(since=now - 3600 * 1_000_000_000, clock=lambda: now,
                         kubeconfig=str(srv.kubeconfig_path(tmp_path)))
        assert [r.src_ip for r in result.records] == ["10.244.1.6"]
        log_requests = [r for r in srv.requests if r.path.endswith("/log")]
        assert all(r.query["sinceSeconds"] == "3600" for r in log_requests)


def test_no_recorder_pods_and_forbidden_are_clear_errors(tmp_path: Path) -> None:
    with StandInApiServer([k.namespace(NS)]) as srv:
        with pytest.raises(ClusterError, match="is the DaemonSet deployed"):
            collect(kubeconfig=str(srv.kubeconfig_path(tmp_path)))
    with StandInApiServer(_cluster()) as srv:
        srv.forbid("pods/log")
        with pytest.raises(ClusterError, match="get on pods/log"):
            collect(kubeconfig=str(srv.kubeconfig_path(tmp_path)))
        res = subprocess.run([sys.executable, "-m", "generator.cli.main", "collect", "--logs", "--out",
                              str(tmp_path / "x.jsonl"), "--kubeconfig",
                              str(srv.kubeconfig_path(tmp_path))], cwd=ROOT,
                             capture_output=True, text=True)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert "get on pods/log" in res.stderr
