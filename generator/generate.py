"""`flowpol generate` as a function: the CLI only parses options and prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from generator.verify.check import check_policies, denied_lines, verification_dict
from generator.output.files import write_output
from generator.pipeline import ObserveRequest, collector_paused, observe_request
from generator.output.report import build_report, summary_lines
from generator.review.report import write_review
from generator.synthesize.synthesis import SynthesisOptions, synthesize
from generator.verify.evaluator import Evaluator
from generator.verify.policy import parse_policies
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


def run_generate(req: GenerateRequest) -> GenerateResult:
    with collector_paused():
        return _run_generate(req)


def _run_generate(req: GenerateRequest) -> GenerateResult:
    observed = observe_request(req, allow_unreadable=True)
    synth = synthesize(observed.edges, observed.index, req.synthesis)
    # The verification and the review's evidence ask the same evaluator: its caches
    # (pods, label sets, verdicts) are built once.
    policies = parse_policies([strip_comments(p.manifest) for p in synth.policies])
    evaluator = Evaluator.from_inventory(policies, observed.index.inventory)
    verification = None
    denied: tuple[str, ...] = ()
    if req.verify:
        result = check_policies(observed.resolved.connections, policies, observed.index,
                                evaluator)
        verification = verification_dict(result)
        denied = denied_lines(result)
    report = build_report(observed, synth, verification)
    files = write_output(req.out_dir, synth.policies, report)
    files += write_review(req.out_dir, observed, synth, verification, (policies, evaluator))
    return GenerateResult(tuple(summary_lines(observed, synth, verification, str(req.out_dir))),
                          denied, report, tuple(files), observed.read, observed.unreadable)
