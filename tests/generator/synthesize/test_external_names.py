"""External peers carry the DNS names their connections had: in the model (one peer per
set of names, so a dialect that admits names never admits an unnamed connection by
name), in the kubernetes rules' evidence, and in report.json / report.md. The truth is
the fixture generators' (each connection's names from the scenario's own lookups)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.generate import GenerateRequest, run_generate
from generator.pipeline import observe
from generator.resolve.names import EXPIRED, NEVER_RESOLVED
from generator.synthesize import model as m
from generator.synthesize.synthesis import SynthesisOptions, build_model
from recorder.sources import ReadOptions

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"
EXTERNAL = ROOT / "fixtures" / "scenarios" / "external"


def _inputs(d: Path) -> list[str]:
    return [str(d / "flows")] if (d / "flows").is_dir() else [str(d / "flows.jsonl")]


def _truth(d: Path) -> set[tuple]:
    edges = json.loads((d / "expected-edges.json").read_text())["edges"]
    return {(e["src"]["workload_name"], e["dst"]["ip"], e["port"], tuple(e.get("names", ())))
            for e in edges if e["dst"]["kind"] == "external" and e["src"]["kind"] == "workload"
            and e["src"]["namespace"] != "kube-system"}


@pytest.mark.parametrize("scenario", [DEMO, EXTERNAL], ids=lambda p: p.name)
def test_every_external_peer_has_the_names_of_its_connections(scenario: Path) -> None:
    observed = observe(_inputs(scenario), [str(scenario / "cluster.json")], ReadOptions())
    model = build_model(observed.edges, observed.index, SynthesisOptions()).model
    got = {(p.workload.name, r.peer.addresses[0], rp.port.port, r.peer.names)
           for p in model.workloads for r in p.egress if r.peer.kind == m.EXTERNAL
           for rp in r.ports}
    assert all(len(r.peer.addresses) == 1 for p in model.workloads for r in p.egress
               if r.peer.kind == m.EXTERNAL)
    assert got == _truth(scenario)


def test_the_demo_shows_each_kind_of_name(tmp_path: Path) -> None:
    truth = _truth(DEMO)
    assert ("ledger", "203.0.113.10", 443, ("api.payment-gw.example",)) in truth
    assert ("ledger", "203.0.113.11", 443, ("api.payment-gw.example",)) in truth  # one name, two
    assert ("api", "198.51.100.80", 443, ("images.cdn.example", "static.cdn.example")) in truth
    assert ("ledger", "198.51.100.25", 8443, ()) in truth  # never resolved
    assert {("event-bus", "203.0.113.40", 443, ()),  # cached past its TTL
            ("event-bus", "203.0.113.40", 443, ("telemetry.vendor.example",))} <= truth

    result = run_generate(GenerateRequest(inputs=_inputs(DEMO), snapshot=[str(DEMO / "cluster.json")],
                                          out_dir=tmp_path))
    ext = result.report["external_names"]
    by_name = {n["name"]: n for n in ext["names"]}
    assert by_name["api.payment-gw.example"]["addresses"] == ["203.0.113.10", "203.0.113.11"]
    assert by_name["api.payment-gw.example"]["clients"] == ["payments/Deployment/ledger"]
    assert by_name["static.cdn.example"]["addresses"] == ["198.51.100.80"]
    assert [(g["address"], g["names"]) for g in ext["several_names"]] == [
        ("198.51.100.80", ["images.cdn.example", "static.cdn.example"])]
    unnamed = {u["address"]: u["reason"] for u in ext["unnamed"]}
    assert unnamed["198.51.100.25"] == NEVER_RESOLVED
    assert unnamed["203.0.113.40"] == EXPIRED
    assert ext["grace_period_seconds"] == 30

    payments = (tmp_path / "payments.yaml").read_text()
    assert "# to external 203.0.113.11 (api.payment-gw.example)" in payments
    assert "# to external 198.51.100.25 (no DNS name)" in payments
    platform = (tmp_path / "platform.yaml").read_text()
    # one rule for the address, its evidence naming both the named and unnamed connections
    assert ("# to external 203.0.113.40 (no DNS name), external 203.0.113.40 "
            "(telemetry.vendor.example)") in platform
    assert platform.count("cidr: 203.0.113.40/32") == 1
    review = (tmp_path / "report.md").read_text()
    assert "## External peers by name" in review
    assert "| `api.payment-gw.example` | 203.0.113.10, 203.0.113.11 |" in review
    assert "several names for the address" in (tmp_path / "storefront.yaml").read_text()


def test_a_wider_prefix_still_keeps_named_peers_apart_in_the_model(tmp_path: Path) -> None:
    observed = observe(_inputs(EXTERNAL), [str(EXTERNAL / "cluster.json")], ReadOptions())
    model = build_model(observed.edges, observed.index, SynthesisOptions(cidr_prefix_v4=24)).model
    notifier = next(p for p in model.workloads if p.workload.name == "notifier")
    peers = sorted((r.peer.cidr, r.peer.names) for r in notifier.egress
                   if r.peer.kind == m.EXTERNAL)
    assert peers == [("203.0.113.0/24", ("api.mailer.example",)),
                     ("203.0.113.0/24", ("hooks.chat.example",))]
