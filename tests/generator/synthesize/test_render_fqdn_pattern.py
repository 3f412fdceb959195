"""--fqdn-pattern: learned DNS names a Cilium matchPattern admits are written as that
pattern, the others as matchName; what is written validates against the CRD and the
Cilium evaluator judges it by Cilium's matchPattern rules (a star never crosses a dot)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from crd_schema import crd_problems
from generator.output.yamlout import strip_comments
from generator.pipeline import observe
from generator.synthesize import model as m
from generator.synthesize.render import RenderOptions, render_policies
from generator.synthesize.synthesis import SynthesisOptions, build_model
from generator.verify.combined import make_evaluator
from generator.verify.names import NameBinding, NameBindings
from generator.verify.policyset import parse_manifests
from recorder.sources import ReadOptions

DEMO = Path(__file__).resolve().parents[3] / "fixtures" / "demo"
NAMES = ("A.S3.Example.com.", "b.s3.example.com", "api.other.com")


@pytest.fixture(scope="module")
def demo():
    observed = observe([str(DEMO / "flows")], [str(DEMO / "cluster.json")], ReadOptions())
    model = build_model(observed.edges, observed.index, SynthesisOptions()).model
    # every external egress peer learned the three names (as DNS answers would bind them)
    workloads = tuple(dataclasses.replace(w, egress=tuple(
        dataclasses.replace(r, peer=dataclasses.replace(r.peer, names=NAMES))
        if r.peer.kind == m.EXTERNAL else r for r in w.egress)) for w in model.workloads)
    return observed, dataclasses.replace(model, workloads=workloads)


def _fqdn_rules(docs) -> list[list[dict]]:
    return [r["toFQDNs"] for d in docs for r in d["spec"].get("egress", []) if "toFQDNs" in r]


def test_names_a_pattern_admits_become_the_pattern(demo) -> None:
    observed, model = demo
    rendered = render_policies(model, "cilium", RenderOptions(
        fqdn_patterns=("*.s3.example.com", "*.unused.example", "*.example.com")))
    docs = [strip_comments(d.manifest) for d in rendered.policies]
    rules = _fqdn_rules(docs)
    assert rules and all(r == [{"matchName": "api.other.com"},
                               {"matchPattern": "*.s3.example.com"}] for r in rules)
    assert [w for w in rendered.warnings if "--fqdn-pattern" in w] == [
        "--fqdn-pattern *.unused.example admits no DNS name learned for an external peer; "
        "no rule uses it",
        "--fqdn-pattern *.example.com admits no DNS name learned for an external peer; "
        "no rule uses it"]  # the first pattern that admits a name wins
    assert all(crd_problems(d) == [] for d in docs)
    without = _fqdn_rules([strip_comments(d.manifest) for d in
                           render_policies(model, "cilium", RenderOptions()).policies])
    assert all(r == [{"matchName": "a.s3.example.com"}, {"matchName": "api.other.com"},
                     {"matchName": "b.s3.example.com"}] for r in without)


def test_the_pattern_is_judged_as_cilium_matches_it(demo) -> None:
    observed, model = demo
    docs = [strip_comments(d.manifest) for d in render_policies(
        model, "cilium", RenderOptions(fqdn_patterns=("*.s3.example.com",))).policies]
    kinds = parse_manifests(docs)
    c = next(c for c in observed.resolved.connections if c.dst.kind == "external" and c.src_pod
             and c.src.namespace in model.namespaces)

    def allowed(name: str) -> bool:
        """By the names resolution attributed to the connection, and, for a connection
        without any, by the bindings of its time: the two must agree."""
        ev = make_evaluator((), observed.index.inventory, kinds.cilium, ())
        named = dataclasses.replace(c, names=(name,))
        by_names = ev.check(c.src_pod, ev.named_destination(named), c.protocol, c.port).allowed
        bound = NameBindings([NameBinding(name, c.dst_ip, c.first_seen - 10, c.first_seen + 10)])
        ev = make_evaluator((), observed.index.inventory, kinds.cilium, (), bound)
        unnamed = dataclasses.replace(c, names=())
        by_bindings = ev.check(c.src_pod, ev.named_destination(unnamed), c.protocol,
                               c.port).allowed
        assert by_names == by_bindings, name
        return by_names

    assert allowed("c.s3.example.com")  # never seen, admitted by the pattern
    assert allowed("api.other.com")  # matchName
    assert not allowed("x.c.s3.example.com")  # a star never crosses a dot
    assert not allowed("s3.example.com")
    assert not allowed("www.other.com")
