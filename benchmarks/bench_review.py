"""The stages after resolution that `generate` (report.md/html), `diff` and `migrate` add.

    python benchmarks/make_synthetic.py /tmp/syn --lines 200000
    python benchmarks/bench_review.py /tmp/syn

Reads the synthetic cluster and flows once (not timed), then times, single-threaded:
the review report of the generated policies (evidence per rule, graph layout, Markdown
and HTML), `diff` against the generated set written to files (exactly right: every rule
used) and against the same set widened by an unused rule per policy, and the migration
plan. Prints one JSON line: seconds per stage, sizes, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator.verify.check import check_connections, verification_dict  # noqa: E402
from generator.migrate.plan import MigrateRequest, plan_migration  # noqa: E402
from generator.output.files import write_output  # noqa: E402
from generator.pipeline import observe  # noqa: E402
from generator.output.report import build_report  # noqa: E402
from generator.review.document import to_html, to_markdown  # noqa: E402
from generator.review.evidence import Thresholds  # noqa: E402
from generator.review.report import generate_review  # noqa: E402
from generator.synthesize.synthesis import synthesize  # noqa: E402
from generator.tighten.existing import existing_from_files  # noqa: E402
from generator.tighten.propose import propose  # noqa: E402
from generator.tighten.run import proposed_files  # noqa: E402
from generator.output.yamlout import strip_comments  # noqa: E402
from recorder.sources import ReadOptions  # noqa: E402


def _widen(directory: Path) -> None:
    """Give every workload policy an extra ingress rule nothing uses (ssh from anywhere)."""
    for path in directory.glob("*.yaml"):
        if path.name == "kustomization.yaml":
            continue
        text = path.read_text()
        path.write_text(text.replace("  policyTypes:\n  - Ingress\n  - Egress\n",
                                     "  policyTypes:\n  - Ingress\n  - Egress\n  ingress:\n"
                                     "  - ports:\n    - port: 22\n").replace(
            "  ingress:\n  - ports:\n    - port: 22\n  ingress:\n", "  ingress:\n"
            "  - ports:\n    - port: 22\n"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path, help="directory written by make_synthetic.py")
    args = ap.parse_args()
    observed = observe([str(args.data / "flows.jsonl")], [str(args.data / "cluster.json")],
                       ReadOptions())
    synth = synthesize(observed.edges, observed.index)
    verification = verification_dict(check_connections(
        observed.resolved.connections, [strip_comments(p.manifest) for p in synth.policies],
        observed.index))
    out: dict = {"connections": len(observed.resolved.connections), "edges": len(observed.edges),
                 "policies": len(synth.policies)}

    t = time.perf_counter()
    doc = generate_review(observed, synth, verification)
    md, page = to_markdown(doc), to_html(doc)
    out["review_seconds"] = round(time.perf_counter() - t, 3)
    out["report_md_bytes"], out["report_html_bytes"] = len(md), len(page)

    with tempfile.TemporaryDirectory() as tmp:
        exact = Path(tmp) / "exact"
        write_output(exact, synth.policies, build_report(observed, synth, verification))
        enough = Thresholds(min_observation_ns=60 * 1_000_000_000, min_flows=1)
        for name, directory in (("diff_exact", exact), ("diff_widened", None)):
            if directory is None:
                directory = Path(tmp) / "widened"
                write_output(directory, synth.policies, {})
                _widen(directory)
            t = time.perf_counter()
            existing = existing_from_files([str(directory)])
            proposal = propose(existing, observed, enough)
            files = proposed_files(existing, proposal)
            out[f"{name}_seconds"] = round(time.perf_counter() - t, 3)
            out[f"{name}_changed_policies"] = sum(p.changed for p in proposal.policies)
            out[f"{name}_edited_files"] = sum(f.method == "edited" for f in files)

    t = time.perf_counter()
    plan = plan_migration(observed, MigrateRequest([], [], Path("."), thresholds=Thresholds(
        min_observation_ns=60 * 1_000_000_000)))
    out["migrate_seconds"] = round(time.perf_counter() - t, 3)
    out["migrate_namespaces_ready"] = sum(ns.ready for ns in plan.namespaces)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
