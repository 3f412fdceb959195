"""`flowpol diff` as a function: observe, compare, propose, write. The CLI only parses
options and prints ``summary_lines``.

Written to ``--out DIR``:
- ``proposed/``: every file of the existing set, edited (unchanged ones copied), plus
  ``flowpol-added-<ns>.yaml`` when a namespace needs a new policy and has no YAML file;
- ``proposed.diff``: the unified diff of the changed files against the existing ones;
- ``report.md`` / ``report.html``: (a) denied, (b) unused, (c) the change list per
  policy and the diff, then the review of the proposed set (graph, evidence per rule,
  verification);
- ``diff.json``: all of it for machines.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from generator.verify.check import (
    CheckResult, check_policies, denied_lines, group_detail_dict, verification_dict,
    verification_text,
)
from generator.output.outdir import writing
from generator.output.owned import ReadBackError, write_owned
from generator.output.report import connection_counts
from generator.pipeline import ObserveRequest, ObservedTraffic, observe_request
from generator.review.document import (
    Block, Code, Document, Heading, Paragraph, SideBySide, Table, to_html, to_markdown,
)
from generator.review.evidence import Thresholds, duration_text, when
from generator.review.report import (
    ReviewedPolicy, graph_blocks, policy_blocks, policy_evidence, skipped_blocks, summary_block,
    verification_blocks,
)
from generator.tighten.existing import ExistingSet, Locator
from generator.tighten.propose import (
    NOT_ENOUGH_EVIDENCE, REMOVED, Proposal, PolicyProposal, propose,
)
from generator.tighten.yamledit import Edit, edit_file
from generator.output.yamlout import dump, dump_all

JSON_VERSION = 1
ADDED_HEADER = "New NetworkPolicies proposed by flowpol diff. Review before applying."
MAX_LISTED = 50


@dataclass(frozen=True, slots=True)
class DiffRequest(ObserveRequest):
    thresholds: Thresholds = Thresholds()
    window_ns: int | None = None


@dataclass(frozen=True, slots=True)
class ProposedFile:
    name: str
    old: str | None  # None: a new file
    new: str
    method: str  # "unchanged", "edited", "rewritten", "new"

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True, slots=True)
class DiffResult:
    existing: ExistingSet
    observed: ObservedTraffic
    proposal: Proposal
    verification: CheckResult  # the proposed set against every observed connection
    files: tuple[ProposedFile, ...]
    unified_diff: str
    written: tuple[Path, ...]
    out_dir: Path | None = None

    @property
    def exit_code(self) -> int:
        """2 after bad input (``raise_for_bad_input``), else 1 when something needs
        review: denied connections or proposed changes."""
        if self.observed.bad_input:
            return 2
        return 1 if self.proposal.denied.denied or any(p.changed for p in self.proposal.policies) \
            else 0


# ---------------------------------------------------------------- files


def proposed_files(existing: ExistingSet, proposal: Proposal) -> tuple[ProposedFile, ...]:
    changed: dict[str, dict[Locator, tuple[dict, tuple[Edit, ...]]]] = {}
    added: dict[str, list[dict]] = {}
    for p in proposal.policies:
        if p.existing is None:
            added.setdefault(p.file, []).append(p.proposed)
        elif p.edits:
            changed.setdefault(p.file, {})[p.existing.locator] = (p.proposed, p.edits)
    out = []
    for f in existing.files:
        if f.name in changed or f.name in added:
            text, method = edit_file(f, changed.get(f.name, {}), added.pop(f.name, []))
            out.append(ProposedFile(f.name, f.text, text, method))
        else:
            out.append(ProposedFile(f.name, f.text, f.text, "unchanged"))
    for name, objs in sorted(added.items()):
        out.append(ProposedFile(name, None, dump_all(objs, (ADDED_HEADER,)), "new"))
    return tuple(out)


def _diff_path(prefix: str, name: str) -> str:
    """A file name on a ``---``/``+++`` line, which must stay one line whatever the name
    (an input's file name could otherwise add lines to the patch): quoted with escapes
    when it holds anything but printable ASCII, as git quotes such paths."""
    path = prefix + name
    if path.isascii() and path.isprintable() and '"' not in path and "\\" not in path:
        return path
    return json.dumps(path)  # "...", with \n, \", \\ and \uXXXX escapes


def unified_diff(files: tuple[ProposedFile, ...]) -> str:
    parts = []
    for f in files:
        if not f.changed:
            continue
        old = f.old.splitlines(keepends=True) if f.old is not None else []
        parts += difflib.unified_diff(old, f.new.splitlines(keepends=True),
                                      "/dev/null" if f.old is None else _diff_path("a/", f.name),
                                      _diff_path("b/", f.name))
    return "".join(p if p.endswith("\n") else p + "\n\\ No newline at end of file\n"
                   for p in parts)


# ---------------------------------------------------------------- JSON


def _policy_dict(p: PolicyProposal) -> dict:
    return {"policy": p.id, "file": p.file, "new": p.existing is None, "changed": p.changed,
            "evidence_connections": p.evidence_connections,
            "evidence_problem": p.evidence_problem,
            "changes": [{"action": c.action, "ref": c.ref, "what": c.what, "why": c.why}
                        for c in p.changes],
            "narrowed": [{"ref": n.ref, "status": _narrow_status(p, n), "removes": list(n.removes),
                          "evidence": n.evidence, "problem": n.problem,
                          "before": n.before, "after": list(n.after)} for n in p.narrowings]}


NARROWED = "narrowed"
CANNOT_NARROW = "cannot narrow"


def _isolation_status(iso) -> str:
    if iso.applied:
        return f"new policy {iso.namespace}/{iso.name}"
    if iso.policy is not None:
        return f"would add {iso.namespace}/{iso.name}; {NOT_ENOUGH_EVIDENCE}: {iso.problem}"
    return f"not proposed: {iso.problem}"


def isolation_blocks(pr: Proposal) -> list[Block]:
    blocks: list[Block] = [Heading(1, "Not isolated: open sides with observed traffic")]
    if not pr.isolations:
        blocks.append(Paragraph("None: every workload side with observed traffic in the "
                                "namespaces of the existing set is isolated.", "ok"))
        return blocks
    blocks.append(Paragraph(
        "Pods no policy isolates for a direction accept (or send) anything that way. Each "
        "such side with observed traffic gets a policy of its own for that side: the observed "
        "peers and ports (and DNS), as `flowpol generate` writes them; the same evidence rules "
        "as for removal apply."))
    blocks.append(Table(("Workload", "Direction", "Connections", "Observed peers", "Proposed"),
                        tuple((iso.workload, iso.direction, f"{iso.connections:,}",
                               ", ".join(iso.peers), _isolation_status(iso))
                              for iso in pr.isolations), numeric=(2,), wrap=(3, 4)))
    for iso in pr.isolations:
        if iso.policy is not None and not iso.applied:
            blocks.append(Heading(2, f"{iso.namespace}/{iso.name} (not added)"))
            blocks.append(Code(dump(iso.policy), "yaml"))
    return blocks


def _narrow_status(p: PolicyProposal, n) -> str:
    if n.problem is not None:
        return CANNOT_NARROW
    return NARROWED if p.evidence_problem is None else NOT_ENOUGH_EVIDENCE


def narrowed_blocks(pr: Proposal) -> list[Block]:
    """Each used rule broader than its use: what it removes, its evidence, and the
    rule as written beside what it becomes."""
    found = [(p, n) for p in pr.policies for n in p.narrowings]
    blocks: list[Block] = [Heading(1, "Narrowed: used rules broader than their use")]
    if not found:
        blocks.append(Paragraph("None: every used rule admits only what was observed.", "ok"))
        return blocks
    blocks.append(Paragraph(
        "A used rule that admits more peers or ports than went through it becomes the "
        "observed peers (workload selectors as `flowpol generate` writes them, addresses as "
        "/32, the DNS resolver pods) and ports, one rule per set of ports, in its place; each "
        "is a subset of what it replaces. The same evidence rules as for removal apply."))
    for p, n in found:
        status = _narrow_status(p, n)
        blocks.append(Heading(2, f"{p.id} {n.ref}: {status}"))
        if n.problem is not None:
            blocks.append(Paragraph(f"Broader than its use, but {n.problem}; kept.", "warn"))
            continue
        lines = list(n.removes) + [f"evidence: {n.evidence}"]
        if status == NOT_ENOUGH_EVIDENCE:
            lines.append(f"would narrow to the rule(s) on the right; {NOT_ENOUGH_EVIDENCE}: "
                         f"{p.evidence_problem}")
        blocks.append(Paragraph("\n".join(lines), "warn" if status != NARROWED else None))
        blocks.append(SideBySide(
            f"{n.ref} as written", dump([n.before]),
            "proposed" if status == NARROWED else "would become (not applied)",
            dump(list(n.after))))
    return blocks


def diff_dict(r: DiffResult) -> dict:
    pr = r.proposal
    return {
        "flowpol_diff": JSON_VERSION,
        "exit_code": r.exit_code,
        "existing": {"origin": r.existing.origin, "context": r.existing.context,
                     "files": [f.path for f in r.existing.files],
                     "policies": [p.policy.id for p in r.existing.policies],
                     "skipped": [str(s) for s in r.existing.skipped],
                     "warnings": list(r.existing.warnings)},
        "inputs": r.observed.read.to_dict(),
        "recording": {"start": when(pr.span.start) if pr.span else None,
                      "end": when(pr.span.end) if pr.span else None,
                      "window_start": when(pr.window_start) if pr.window_start else None,
                      "coverage_seconds": pr.coverage // 1_000_000_000},
        "thresholds": {"min_observation_seconds": pr.thresholds.min_observation_ns // 1_000_000_000,
                       "min_flows": pr.thresholds.min_flows},
        "denied": [group_detail_dict(g) for g in pr.denied.groups if not g.allowed],
        "unused": [{"policy": u.policy, "ref": u.ref, "scope": u.scope, "what": u.what,
                    "last_seen": when(u.last_seen) if u.last_seen is not None else None,
                    "status": u.status, "reason": u.reason} for u in pr.unused],
        "additions": [{"workload": a.workload, "direction": a.direction,
                       "connections": a.connections, "rules": len(a.rules), "policy": a.host,
                       "problem": a.problem} for a in pr.additions],
        "policies": [_policy_dict(p) for p in pr.policies],
        "not_isolated": [{"workload": i.workload, "direction": i.direction,
                          "connections": i.connections, "peers": list(i.peers),
                          "policy": f"{i.namespace}/{i.name}" if i.name else None,
                          "applied": i.applied, "problem": i.problem} for i in pr.isolations],
        "files": [{"name": f.name, "method": f.method, "changed": f.changed} for f in r.files],
        "proposed_verification": verification_dict(r.verification),
    }


# ---------------------------------------------------------------- report


def _evidence_text(pr: Proposal) -> str:
    t = pr.thresholds
    where = (f"the window from {when(pr.window_start)}" if pr.window_start is not None
             else "the recording")
    return (f"Use is counted over {where} ({duration_text(pr.coverage)}). Unused items are "
            f"proposed for removal only when that covers at least --min-observation "
            f"{duration_text(t.min_observation_ns)} and the policy's pods were seen in at least "
            f"--min-flows {t.min_flows} connection(s); otherwise they are kept and marked "
            f"\"{NOT_ENOUGH_EVIDENCE}\".")


def diff_document(r: DiffResult) -> Document:
    pr = r.proposal
    changed = [p for p in pr.policies if p.changed]
    blocks: list[Block] = [
        summary_block(r.observed),
        Paragraph(f"Existing set: {len(r.existing.policies)} NetworkPolicies from "
                  + (f"{len(r.existing.files)} file(s)" if r.existing.origin == "files"
                     else f"the cluster (context {r.existing.context})") + "."),
        Heading(1, "Denied: observed connections the existing policies deny"),
    ]
    denied = [g for g in pr.denied.groups if not g.allowed]
    if denied:
        blocks.append(Paragraph(
            f"{pr.denied.denied_count:,} observed connection(s) in {len(denied)} group(s) would be "
            "denied: broken now, or about to break when these policies are applied.", "bad"))
        blocks.append(Table(("Client", "Server", "Port", "Connections", "Last seen", "Why"), tuple(
            (g.src.display(), g.dst.display(), f"{g.protocol}/{g.port}", f"{g.count:,}",
             when(g.last_seen), g.reason + (f" Hint: {g.hint}" if g.hint else ""))
            for g in denied), numeric=(3,), wrap=(5,)))
        blocks.append(Paragraph("The proposal adds rules for exactly these workloads and ports:"))
        blocks.append(Table(("Workload", "Direction", "Connections", "Added to", "Note"), tuple(
            (a.workload, a.direction, f"{a.connections:,}", f"`{a.host}`" if a.host else "—",
             a.problem or f"{len(a.rules)} rule(s)") for a in pr.additions), numeric=(2,)))
    else:
        blocks.append(Paragraph("None: the existing policies allow every observed connection.",
                                "ok"))
    blocks.append(Heading(1, "Unused in the window"))
    if pr.unused:
        blocks.append(Paragraph(_evidence_text(pr)))
        blocks.append(Table(("Policy", "Item", "What", "Last seen", "Proposed", "Why"), tuple(
            (u.policy, f"`{u.ref}`", u.what, when(u.last_seen), u.status, u.reason)
            for u in pr.unused), wrap=(2, 5)))
    else:
        blocks.append(Paragraph("Nothing: every rule, peer and port was used in the window.", "ok"))
    blocks.append(Heading(1, "Proposed changes"))
    if not changed:
        blocks.append(Paragraph("None: the existing policies are exactly what the traffic needs "
                                "(or there is not enough evidence to remove anything).", "ok"))
    for p in pr.policies:
        if not p.changes:
            continue
        blocks.append(Heading(2, p.id + (" (new)" if p.existing is None else "")))
        blocks.append(Paragraph(f"file `{p.file}`" + (
            f"; not enough evidence to remove anything: {p.evidence_problem}"
            if p.evidence_problem else "")))
        blocks.append(Table(("Action", "Where", "What", "Why"), tuple(
            (c.action, f"`{c.ref}`" if c.ref else "", c.what, c.why) for c in p.changes),
            wrap=(2, 3)))
    blocks += narrowed_blocks(pr)
    blocks += isolation_blocks(pr)
    unchanged = [p.id for p in pr.policies if not p.changes]
    if unchanged:
        blocks.append(Paragraph("Unchanged: " + ", ".join(f"`{x}`" for x in unchanged) + "."))
    if r.unified_diff:
        blocks.append(Heading(1, "Unified diff"))
        blocks.append(Code(r.unified_diff, "diff"))
    blocks += graph_blocks(r.observed)
    blocks.append(Heading(1, "The proposed set"))
    blocks += verification_blocks(verification_dict(r.verification))[1:]
    proposed = pr.parsed()
    notes = {p.id: p for p in pr.policies}
    reviewed = [ReviewedPolicy(pol, notes[pol.id].file, None,
                               "; ".join(f"{c.action} {c.ref}".strip() for c in notes[pol.id].changes
                                         if c.action != "keep") or None)
                for pol in proposed]
    blocks += policy_blocks(reviewed, policy_evidence(r.observed, proposed))
    blocks += skipped_blocks(r.observed, warnings=list(r.existing.warnings)
                             + list(r.observed.warnings))
    return Document("flowpol diff: existing policies against observed traffic", tuple(blocks))


# ---------------------------------------------------------------- run


def run_diff(req: DiffRequest, existing: ExistingSet) -> DiffResult:
    observed = observe_request(req)
    proposal = propose(existing, observed, req.thresholds, req.window_ns)
    verification = check_policies(observed.resolved.connections, proposal.parsed(),
                                  observed.index)
    files = proposed_files(existing, proposal)
    udiff = unified_diff(files)
    out = req.out_dir
    result = DiffResult(existing, observed, proposal, verification, files, udiff, ())
    texts = {f"proposed/{f.name}": f.new for f in files}
    texts["proposed.diff"] = udiff
    texts["diff.json"] = json.dumps(diff_dict(result), indent=2, sort_keys=True,
                                    ensure_ascii=False) + "\n"
    doc = diff_document(result)
    texts["report.md"], texts["report.html"] = to_markdown(doc), to_html(doc)
    with writing(out):
        written = write_owned(out, "diff", texts)
        _read_back_proposal(out / "proposed", proposal)
    return DiffResult(existing, observed, proposal, verification, files, udiff, tuple(written),
                      out)


def _read_back_proposal(proposed_dir: Path, proposal: Proposal) -> None:
    """The proposed/ files, read as `flowpol verify --policies` reads them, hold the
    policies that were verified; else an internal error (exit 2) naming the policy."""
    from generator.verify.policy import NetworkPolicy
    from generator.verify.run import policies_from_files

    def plain(p: NetworkPolicy) -> NetworkPolicy:
        return replace(p, path=None, line=None)

    expected = {p.id: plain(p) for p in proposal.parsed()}
    if not expected:
        return
    read = {p.id: plain(p) for p in policies_from_files([str(proposed_dir)]).policies}
    for pid in sorted(set(expected) | set(read)):
        if expected.get(pid) != read.get(pid):
            raise ReadBackError(f"internal error: policy {pid} as read back from "
                                f"{proposed_dir} differs from the proposal flowpol verified; "
                                "do not apply it, and report a bug")


def summary_lines(r: DiffResult) -> list[str]:
    pr = r.proposal
    ex = r.existing
    source = (f"{len(ex.files)} file(s)" if ex.origin == "files"
              else f"the cluster (context {ex.context})")
    read = r.observed.read
    c = connection_counts(r.observed)
    lines = [f"existing: {len(ex.policies)} NetworkPolicies from {source}",
             f"flows: {read.total_kept:,} flow record(s) kept, {read.total_skipped:,} skipped; "
             f"{c['connections']:,} connection(s), {c['unattributed']:,} with an endpoint not "
             "attributed"]
    lines += [f"  warning: {w}" for w in list(ex.warnings) + list(r.observed.read.warnings)]
    if pr.span:
        lines.append(f"recording: {when(pr.span.start)} .. {when(pr.span.end)} "
                     f"({duration_text(pr.span.duration)}); counted as use: "
                     + (f"from {when(pr.window_start)}" if pr.window_start else "all of it")
                     + f"; removal needs --min-observation "
                       f"{duration_text(pr.thresholds.min_observation_ns)} and --min-flows "
                       f"{pr.thresholds.min_flows}")
    denied = denied_lines(pr.denied)
    if denied:
        lines.append(f"(a) DENIED: {pr.denied.denied_count:,} observed connection(s) the existing "
                     "policies deny:")
        lines += [f"  {d}" for d in denied[:MAX_LISTED]]
    else:
        lines.append("(a) denied: none; the existing policies allow every observed connection")
    if pr.unused:
        lines.append(f"(b) UNUSED in the window: {len(pr.unused)} rule(s), peer(s), port(s) or "
                     "combination(s):")
        for u in pr.unused[:MAX_LISTED]:
            status = u.status if u.status == REMOVED else f"{u.status}: {u.reason}"
            lines.append(f"  {u.policy} {u.ref}: {u.what}; {_last_seen(u.last_seen)} [{status}]")
        if len(pr.unused) > MAX_LISTED:
            lines.append(f"  ... {len(pr.unused) - MAX_LISTED} more in report.md")
    else:
        lines.append("(b) unused: none; every rule, peer and port was used in the window")
    narrowed = [(p, n) for p in pr.policies for n in p.narrowings]
    if narrowed:
        lines.append(f"(b) BROADER than their use: {len(narrowed)} used rule(s):")
        for p, n in narrowed[:MAX_LISTED]:
            status = _narrow_status(p, n)
            lines.append(f"  {p.id} {n.ref}: " + (n.problem or n.summary) + f" [{status}"
                         + (f": {p.evidence_problem}" if status == NOT_ENOUGH_EVIDENCE else "")
                         + "]")
        if len(narrowed) > MAX_LISTED:
            lines.append(f"  ... {len(narrowed) - MAX_LISTED} more in report.md")
    if pr.isolations:
        lines.append(f"(b) NOT ISOLATED: {len(pr.isolations)} workload side(s) with observed "
                     "traffic that no policy isolates:")
        for iso in pr.isolations[:MAX_LISTED]:
            lines.append(f"  {iso.workload} {iso.direction}: {iso.connections:,} connection(s) "
                         f"{'to' if iso.direction == 'egress' else 'from'} "
                         f"{', '.join(iso.peers)} [{_isolation_status(iso)}]")
    changed = [p for p in pr.policies if p.changed]
    counts: dict[str, int] = {}
    for p in pr.policies:
        for c in p.changes:
            counts[c.action] = counts.get(c.action, 0) + 1
    what = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()) if a != "keep")
    lines.append(f"(c) proposed: {len(changed)} of {len(pr.policies)} policies change"
                 + (f" ({what})" if what else ""))
    lines.append("proposed set verified: " + verification_text(verification_dict(r.verification)))
    if r.out_dir is not None:
        lines.append(f"wrote {r.out_dir}/proposed/ ({len(r.files)} file(s), "
                     f"{sum(f.changed for f in r.files)} changed), proposed.diff, report.md, "
                     "report.html, diff.json")
    return lines


def _last_seen(ns: int | None) -> str:
    return f"last seen {when(ns)}" if ns is not None else "never seen"
