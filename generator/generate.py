"""`flowpol generate` as a function: the CLI only parses options and prints."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from generator.verify.check import check_policies, denied_lines, verification_dict
from generator.output.files import output_texts
from generator.output.outdir import writing
from generator.output.owned import compare_documents, write_owned
from generator.output.paths import policy_file
from generator.pipeline import ObserveRequest, collector_paused, observe_request
from generator.output.report import build_report, summary_lines
from generator.review.document import to_html, to_markdown
from generator.review.report import generate_review
from generator.synthesize.cni import cilium_evidence
from generator.synthesize.synthesis import SynthesisOptions, synthesize
from generator.verify.combined import make_evaluator
from generator.verify.policyset import parse_manifests
from generator.verify.union import UnionCheck, check_union
from generator.output.yamlout import strip_comments
from recorder.errors import InputError
from recorder.report import ReadReport


@dataclass(frozen=True, slots=True)
class GenerateRequest(ObserveRequest):
    synthesis: SynthesisOptions = SynthesisOptions()
    verify: bool = True


@dataclass(frozen=True, slots=True)
class GenerateResult:
    summary: tuple[str, ...]
    denied_lines: tuple[str, ...]
    report: dict
    files: tuple[Path, ...]
    read: ReadReport  # what was kept, skipped and ignored
    unreadable: tuple[InputError, ...] = ()
    # the CLI prints, then raises bad input (read.skipped, unreadable) as exit 2
    union: UnionCheck | None = None  # with the cluster's existing policies (None: --no-verify)
    effective_denied_lines: tuple[str, ...] = ()  # denied by generated + existing


def run_generate(req: GenerateRequest) -> GenerateResult:
    with collector_paused():
        return _run_generate(req)


def _run_generate(req: GenerateRequest) -> GenerateResult:
    observed = observe_request(req, allow_unreadable=True)
    options = req.synthesis
    if options.dialect == "kubernetes":
        options = replace(options, render=replace(options.render, cilium_evidence=cilium_evidence(
            observed.index.inventory, observed.read.formats, observed.snapshot_warnings)))
    synth = synthesize(observed.edges, observed.index, options)
    # The verification and the review's evidence ask the same evaluator: its caches
    # (pods, label sets, verdicts) are built once.
    kinds = parse_manifests([strip_comments(p.manifest) for p in synth.policies])
    policies = kinds.network
    evaluator = make_evaluator(policies, observed.index.inventory, kinds.cilium, kinds.cluster)
    verification = None
    union = None
    denied: tuple[str, ...] = ()
    effective_denied: tuple[str, ...] = ()
    if req.verify:
        result = check_policies(observed.resolved.connections,
                                kinds.network + kinds.cilium + kinds.cluster,  # type: ignore[arg-type]
                                observed.index, evaluator)  # type: ignore[arg-type]
        verification = verification_dict(result)
        denied = denied_lines(result)
        # what is in force after apply: these and the cluster's existing policies
        union = check_union(observed.resolved.connections, kinds, evaluator,
                            observed.index, synth.namespaces, synth.external_peers, result)
        if union.effective is not None:
            # connections only the existing policies deny (they isolate pods flowpol's
            # policies leave open); the generated set's own denials are listed already
            known = {(g.src, g.dst, g.protocol, g.port) for g in result.groups if not g.allowed}
            groups = [g for g in union.effective.groups if not g.allowed]
            effective_denied = tuple(
                line for g, line in zip(groups, denied_lines(union.effective))
                if (g.src, g.dst, g.protocol, g.port) not in known)
    report = build_report(observed, synth, verification, union)
    texts = output_texts(synth.policies, report)
    review = generate_review(observed, synth, verification, (policies, evaluator), union)
    texts["report.md"], texts["report.html"] = to_markdown(review), to_html(review)
    with writing(req.out_dir):
        files = write_owned(req.out_dir, "generate", texts)
        # the files as a cluster will read them are the policies that were checked
        compare_documents(req.out_dir, {
            policy_file(ns): [strip_comments(p.manifest) for p in synth.policies
                              if p.namespace == ns]
            for ns in {p.namespace for p in synth.policies}})
    return GenerateResult(
        tuple(summary_lines(observed, synth, verification, str(req.out_dir), union)),
        denied, report, tuple(files), observed.read, observed.unreadable, union,
        effective_denied)
