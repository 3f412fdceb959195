"""The recorder's segment readers for tests: their ServiceAccounts in the stand-in API
server (tests/standin_apiserver.py, a stand-in, not a real API server), tokens the
stand-in issues for them, and the recorder's token check against it."""

from __future__ import annotations

from pathlib import Path

import k8s_objects as k
from standin_apiserver import StandInApiServer, issue_token

from recorder.agent.readers import (AUDIENCE, DEFAULT_READERS, ApiTokenReview, SegmentReaders,
                                    parse_readers)

NS = "flowpol-system"
COLLECTOR = "flowpol-collector"
OTHER = "someone-else"


def reader_accounts() -> list[dict]:
    return [k.obj("ServiceAccount", COLLECTOR, NS), k.obj("ServiceAccount", OTHER, NS)]


def collector_token(api: StandInApiServer, expires_in: float = 600.0,
                    audiences: tuple[str, ...] = (AUDIENCE,), name: str = COLLECTOR) -> str:
    return issue_token(api, NS, name, audiences, expires_in)


def segment_readers(kubeconfig: Path | str, readers: str = DEFAULT_READERS,
                    **kwargs: float) -> SegmentReaders:
    return SegmentReaders(parse_readers(readers), ApiTokenReview(str(kubeconfig)), **kwargs)
