"""Who may read segments: the recorder's token check (recorder/agent/readers.py) on its
real HTTP endpoint, with tokens issued and reviewed by the stand-in API server
(tests/standin_apiserver.py, a stand-in, not a real API server)."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import k8s_objects as k
import pytest
from prometheus_client.parser import text_string_to_metric_families
from reader_tokens import COLLECTOR, NS, OTHER, collector_token, reader_accounts, segment_readers
from standin_apiserver import API_AUDIENCE, StandInApiServer

from recorder.agent.metrics import MetricsSnapshot, registry
from recorder.agent.readers import (AUDIENCE, ApiTokenReview, SegmentReaders, jwt_expiry,
                                    parse_readers)
from recorder.agent.segments import SegmentWriter
from recorder.agent.serve import AgentHttpServer
from recorder.errors import UsageError
from recorder.schema import FlowLogHeader, FlowRecord

T0 = 1_700_000_000 * 1_000_000_000


def _request(srv: AgentHttpServer, path: str, headers: dict | list) -> tuple[int, dict, bytes]:
    host, port = srv.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("GET", path)
        for name, value in (headers.items() if isinstance(headers, dict) else headers):
            conn.putheader(name, value)
        conn.endheaders()
        res = conn.getresponse()
        return res.status, dict(res.getheaders()), res.read()
    finally:
        conn.close()


@pytest.fixture
def lab(tmp_path: Path):
    seg = SegmentWriter(tmp_path / "segments", FlowLogHeader(node="n1"))
    seg.open()
    name = seg.write([FlowRecord(T0, T0, "TCP", "10.0.0.1", "10.0.9.9", 80)], T0).name
    with StandInApiServer(reader_accounts()) as api:
        readers = segment_readers(api.kubeconfig_path(tmp_path))
        srv = AgentHttpServer(("127.0.0.1", 0), seg, readers,
                              registry(lambda: MetricsSnapshot(refused=dict(readers.refused))),
                              lambda: True)
        srv.start()
        try:
            yield api, srv, name
        finally:
            srv.stop()


def test_only_a_reader_s_token_for_the_recorder_reads_segments(lab) -> None:
    api, srv, name = lab
    good = collector_token(api)
    for path in ("/segments", f"/segments/{name}"):
        assert _request(srv, path, {"X-Flowpol-Token": good})[0] == 200
    refused = {
        "no token": ({}, 401, "no_token"),
        "empty": ({"X-Flowpol-Token": ""}, 401, "no_token"),
        "not a token": ({"X-Flowpol-Token": "a b;c"}, 401, "unauthenticated"),
        "too long": ({"X-Flowpol-Token": "a" * 20000}, 401, "unauthenticated"),
        "not signed by the API server": ({"X-Flowpol-Token": good[:-4] + "AAAA"}, 401,
                                         "unauthenticated"),
        "the API's audience": ({"X-Flowpol-Token": collector_token(api, audiences=(API_AUDIENCE,))},
                               401, "unauthenticated"),
        "another audience": ({"X-Flowpol-Token": collector_token(api, audiences=("vault",))},
                             401, "unauthenticated"),
        "expired": ({"X-Flowpol-Token": collector_token(api, expires_in=-1)}, 401,
                    "unauthenticated"),
        "another ServiceAccount": ({"X-Flowpol-Token": collector_token(api, name=OTHER)}, 403,
                                   "not_a_reader"),
        # The reader's token in the standard header is not looked at: through the pod
        # proxy that header holds the caller's own credential (and is not passed on).
        "Authorization": ({"Authorization": f"Bearer {good}"}, 401, "no_token"),
        "two tokens": ([("X-Flowpol-Token", good), ("X-Flowpol-Token", good)], 401,
                       "unauthenticated"),
    }
    for what, (headers, status, reason) in refused.items():
        for path in ("/segments", f"/segments/{name}", "/segments/no-such-name"):
            code, got, body = _request(srv, path, headers)
            assert (code, got.get("X-Flowpol-Refused")) == (status, reason), (what, path, body)
            assert body.startswith(b"flowpol-recorder: ") and b"flows-" not in body, (what, body)
        if status == 401:
            assert got["WWW-Authenticate"].startswith("X-Flowpol-Token")
    _, _, body = _request(srv, "/segments", {"X-Flowpol-Token": collector_token(api, name=OTHER)})
    assert f"system:serviceaccount:{NS}:{OTHER} may not read segments".encode() in body
    _, _, body = _request(srv, "/segments",
                          {"X-Flowpol-Token": collector_token(api, audiences=("vault",))})
    assert b"is invalid for the target audiences [\"flowpol-recorder\"]" in body
    # Metrics and health stay open, and the metrics count the refusals.
    code, _, metrics = _request(srv, "/metrics", {})
    assert code == 200 and _request(srv, "/healthz", {})[0] == 200
    samples = {s.labels.get("reason"): s.value for fam in
               text_string_to_metric_families(metrics.decode()) for s in fam.samples
               if s.name == "flowpol_recorder_segment_reads_refused_total"}
    assert samples == {"no_token": 9, "unauthenticated": 22, "not_a_reader": 4,
                       "review_unavailable": 0}


def test_a_deleted_service_account_s_token_is_refused(lab) -> None:
    api, srv, _ = lab
    token = collector_token(api)
    api.push_event("DELETED", k.obj("ServiceAccount", COLLECTOR, NS))
    code, headers, body = _request(srv, "/segments", {"X-Flowpol-Token": token})
    assert (code, headers["X-Flowpol-Refused"]) == (401, "unauthenticated")
    assert b'serviceaccounts "flowpol-collector" not found' in body


def test_reviews_are_cached_briefly_and_never_past_the_token_s_expiry(tmp_path: Path) -> None:
    now = [1_000.0]
    with StandInApiServer(reader_accounts()) as api:
        readers = segment_readers(api.kubeconfig_path(tmp_path), cache_s=10.0,
                                  clock=lambda: now[0])
        reviews = lambda: len(api.requests_for("tokenreviews"))  # noqa: E731
        token = collector_token(api)
        assert readers.decide(token).status == 200 and reviews() == 1
        now[0] += 9
        assert readers.decide(token).status == 200 and reviews() == 1  # cached
        now[0] += 2
        assert readers.decide(token).status == 200 and reviews() == 2  # reviewed again
        other = collector_token(api, name=OTHER)
        assert readers.decide(other).status == 403 and readers.decide(other).status == 403
        assert reviews() == 3  # refusals are cached too
        # A decision is not taken from the cache past the token's exp (the fake clock
        # decides the cache; the stand-in still sees the token as valid, so a second
        # review is what shows).
        short = collector_token(api, expires_in=120)
        now[0] = jwt_expiry(short) - 1
        assert readers.decide(short).status == 200 and reviews() == 4
        now[0] += 2
        assert readers.decide(short).status == 200 and reviews() == 5


def test_no_review_no_segments(tmp_path: Path) -> None:
    # Fail closed, with the reason: the API server unreachable, the recorder not allowed
    # to review, no API configured at all. None of it is cached.
    with StandInApiServer(reader_accounts()) as api:
        token = collector_token(api)
        readers = segment_readers(api.kubeconfig_path(tmp_path))
        api.forbid("tokenreviews")
        decision = readers.decide(token)
        assert (decision.status, decision.reason) == (503, "review_unavailable")
        assert "needs create on tokenreviews" in decision.message
        api.allow("tokenreviews")
        assert readers.decide(token).status == 200
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        down = tmp_path / "down"
        down.mkdir()
        kubeconfig = api.kubeconfig_path(down)
        kubeconfig.write_text(kubeconfig.read_text().replace(api.url, f"http://127.0.0.1:{closed}"))
        decision = segment_readers(kubeconfig).decide(token)
        assert (decision.status, decision.reason) == (503, "review_unavailable")
        assert "cannot reach the API server" in decision.message and "refused" in decision.message
    nowhere = SegmentReaders(parse_readers("a/b"), ApiTokenReview(str(tmp_path / "missing")))
    decision = nowhere.decide(token)
    assert decision.status == 503 and "no Kubernetes API to review tokens" in decision.message


def test_the_agent_answers_503_when_it_cannot_review(lab) -> None:
    api, srv, _ = lab
    api.forbid("tokenreviews")
    code, headers, body = _request(srv, "/segments", {"X-Flowpol-Token": collector_token(api)})
    assert (code, headers["X-Flowpol-Refused"], headers["Retry-After"]) == \
        (503, "review_unavailable", "10")
    assert b"cannot verify the token" in body


def test_readers_are_service_accounts() -> None:
    assert parse_readers("flowpol-system/flowpol-collector, ops/reader") == (
        "system:serviceaccount:flowpol-system:flowpol-collector",
        "system:serviceaccount:ops:reader")
    for bad in ("", "flowpol-collector", "a/b/c", "A/b", "ns/", "/x", "system:serviceaccount:a:b"):
        with pytest.raises(UsageError, match="--segment-readers"):
            parse_readers(bad)
    assert AUDIENCE == "flowpol-recorder"
