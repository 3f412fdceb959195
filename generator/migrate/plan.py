"""`flowpol migrate`: a plan per namespace from open to default-deny without an outage.

Step 1 applies the allow policy of each workload judged ready (see ``readiness``). Each
policy isolates the pods it selects and carries its own DNS rule, so only ready
workloads are touched. Step 2 says what to watch and for how long. Step 3 applies
default-deny plus allow-dns to the whole namespace - only when every workload in it is
ready and the replay of the observed traffic against existing + step 1 + step 3 policies
denies nothing; otherwise the plan says why and step 3 waits. Every step has a rollback
manifest under ``rollback/<ns>/`` (the same objects, for ``kubectl delete -f``) and, when
a step replaces policies that already exist in the cluster, a restore manifest with
their old version.

``--dialect`` writes the steps in the dialect the cluster enforces, from the same model
as ``flowpol generate``: step 1 the workloads' policies (CiliumNetworkPolicies under
``cilium``; NetworkPolicies under ``cluster-network-policy``, whose Baseline never applies
to a pod a NetworkPolicy selects), step 3 the namespace's baseline (``cilium``: its
``flowpol-default-deny`` and ``flowpol-allow-dns`` CiliumNetworkPolicies;
``cluster-network-policy``: a Baseline ClusterNetworkPolicy whose subject is that
namespace alone, named ``flowpol-baseline-<namespace>`` so that each namespace's step 3
is applied and rolled back on its own). The replays use the dialect's evaluator.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from generator.verify.check import (
    CheckResult, check_policies, denied_lines, verification_dict, verification_text,
)
from generator.resolve.edges import Connection
from generator.inventory.index import InventoryIndex, WorkloadRef
from generator.inventory.cron import CronError, longest_gap, parse
from generator.migrate.readiness import (
    NOT_AFFECTED, Readiness, dns_only_workloads, judge_all,
)
from generator.output.outdir import writing
from generator.output.owned import compare_documents, write_owned
from generator.output.paths import checked_namespace
from generator.review.document import to_html, to_markdown
from generator.output.report import skipped_edges
from generator.pipeline import ObserveRequest, ObservedTraffic, observe_request
from generator.review.document import Block, Bullets, Code, Document, Heading, Paragraph, Table
from generator.review.evidence import (
    NS_PER_S, Span, Thresholds, duration_text, is_dns_traffic, recording_span, when,
    workload_ref,
)
from generator.review.report import graph_blocks, skipped_blocks, summary_block
from generator.synthesize import model as m
from generator.synthesize.render import RenderOptions, render_policies
from generator.synthesize.synthesis import SYSTEM_NAMESPACES, PolicyDoc, SynthesisOptions, synthesize
from generator.verify.combined import make_evaluator
from generator.verify.policy import NetworkPolicy, parse_policies
from generator.verify.policyset import parse_manifests
from generator.output.yamlout import dump_all, strip_comments
from generator.version import __version__

JSON_VERSION = 1
DIALECT_TEXT = {
    "cilium": "step 1 writes each ready workload's CiliumNetworkPolicy, step 3 the namespace's "
              "`flowpol-default-deny` and `flowpol-allow-dns` CiliumNetworkPolicies.",
    "cluster-network-policy": "step 1 writes each ready workload's NetworkPolicy (with its own "
                              "DNS rule), step 3 a Baseline ClusterNetworkPolicy "
                              "`flowpol-baseline-<namespace>` whose subject is the namespace; "
                              "it applies to the pods no NetworkPolicy selects.",
}
MIN_WATCH_NS = 3600 * NS_PER_S


@dataclass(frozen=True, slots=True)
class MigrateRequest(ObserveRequest):
    thresholds: Thresholds = Thresholds()
    namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()
    dialect: str = "kubernetes"  # a key of generator.synthesize.render.DIALECTS
    fqdn_patterns: tuple[str, ...] = ()  # the cilium dialect's --fqdn-pattern


@dataclass(frozen=True, slots=True)
class StepFiles:
    apply: str | None  # relative to the output directory
    rollback: str | None
    restore: str | None = None


@dataclass(frozen=True, slots=True)
class NamespacePlan:
    namespace: str
    workloads: tuple[Readiness, ...]
    step1: tuple[PolicyDoc, ...]
    watch_ns: int
    watch: tuple[str, ...]
    step3: tuple[PolicyDoc, ...]  # empty when the namespace is not ready
    not_ready: tuple[str, ...]  # why step 3 waits
    existing: tuple[str, ...]  # NetworkPolicies the namespace already has
    replaced: tuple[dict, ...]  # existing objects a step overwrites (same name)
    files1: StepFiles = StepFiles(None, None)
    files3: StepFiles = StepFiles(None, None)

    @property
    def ready(self) -> bool:
        return not self.not_ready


@dataclass(frozen=True, slots=True)
class MigrationPlan:
    namespaces: tuple[NamespacePlan, ...]
    span: Span | None
    thresholds: Thresholds
    after_step1: CheckResult  # existing + every step 1, replayed
    after_step3: CheckResult  # existing + every step 1 + the step 3s of ready namespaces
    warnings: tuple[str, ...]
    skipped_edges: tuple[tuple[str, str], ...]
    bad_input: bool = False  # an input line was skipped as bad: the plan lacks its flow
    dialect: str = "kubernetes"

    @property
    def exit_code(self) -> int:
        """2 after bad input (``raise_for_bad_input``), else 1 when a workload or
        namespace is held back (the plan is partial)."""
        if self.bad_input:
            return 2
        held = any(not ns.ready or any(not w.ready and w.verdict != NOT_AFFECTED
                                       for w in ns.workloads) for ns in self.namespaces)
        return 1 if held or self.after_step3.denied else 0


def _step_scopes(plan: MigrationPlan) -> tuple[list[str], list[str]]:
    """The namespaces whose step 1 applies policies, and those whose step 3 applies
    default-deny: a replay "after step N" means something only for those."""
    return ([p.namespace for p in plan.namespaces if p.step1],
            [p.namespace for p in plan.namespaces if p.step3])


def _verified_steps(plan: MigrationPlan) -> list[tuple[str, CheckResult]]:
    """(what is applied, the replay) for each step that applies something."""
    step1, step3 = _step_scopes(plan)
    out = []
    if step1:
        out.append((f"after step 1 (allow policies in {', '.join(step1)})", plan.after_step1))
    if step3:
        out.append((f"after step 3 (default-deny in {', '.join(step3)})", plan.after_step3))
    return out


# ---------------------------------------------------------------- planning


def _scope(observed: ObservedTraffic, req: MigrateRequest) -> list[str]:
    if req.namespaces:
        scope = set(req.namespaces)
    else:
        scope = {p.namespace for e in observed.edges for p in (e.src, e.dst)
                 if p.kind == "workload"} - SYSTEM_NAMESPACES
    return sorted(scope - set(req.exclude_namespaces))


def _watch(ns: str, ready: list[Readiness], held: list[Readiness], index: InventoryIndex,
           span: Span | None, t: Thresholds, has_step1: bool) -> tuple[int, list[str]]:
    watch_ns = max(t.min_observation_ns, MIN_WATCH_NS)
    lines: list[str] = []
    end = span.end if span else 0
    for r in ready + held:
        if r.schedule and not r.suspended:
            try:
                gap = longest_gap(parse(r.schedule), end, r.time_zone)
            except (CronError, ValueError, KeyError):  # KeyError, ValueError: the zone
                continue
            if gap is not None:
                watch_ns = max(watch_ns, gap + 600 * NS_PER_S)
                lines.append(f"CronJob `{r.workload.name}` (`{r.schedule}`) must run at least "
                             f"once while you watch: up to {duration_text(gap)} between runs")
    if has_step1:
        lines.insert(0, f"For at least {duration_text(watch_ns)}: connections to or from "
                        f"{', '.join(f'`{r.workload.kind}/{r.workload.name}`' for r in ready)} "
                        "that the CNI drops (Cilium: `hubble observe --namespace "
                        f"{ns} --verdict DROPPED`; Calico: flow logs with action deny).")
        lines.append("Then record again and replay the new recording against what is applied: "
                     "`flowpol verify NEW-FLOWS -s NEW-SNAPSHOT -p "
                     f"{ns}/step-1-allow.yaml` (plus your existing policies); exit 0 means "
                     "nothing observed is denied.")
    if held:
        lines.append("Held back, re-run `flowpol migrate` on a recording that covers them: "
                     + "; ".join(f"`{r.workload.kind}/{r.workload.name}` ({r.reasons[0]})"
                                 for r in held))
    return watch_ns, lines


def _baseline_docs(model: m.PolicyModel, ns: str, dialect: str) -> tuple[PolicyDoc, ...]:
    """Namespace ``ns``'s default-deny and DNS in ``dialect``. A cluster-scoped object
    (the Baseline ClusterNetworkPolicy) names the namespace: each step 3 stands alone."""
    part = replace(model, namespaces=(ns,), workloads=(),
                   baselines=tuple(b for b in model.baselines if b.namespace == ns))
    out = []
    for d in render_policies(part, dialect).policies:
        if not d.namespace:
            name = f"{d.name}-{ns}"
            d = PolicyDoc(d.namespace, name, {**d.manifest, "metadata": {
                **d.manifest["metadata"], "name": name}}, d.workload)
        out.append(d)
    return tuple(out)


class _Replay:
    """Replays the observed connections against the existing NetworkPolicies plus policy
    documents of any dialect, with the evaluator of the kinds present."""

    def __init__(self, connections: tuple[Connection, ...], index: InventoryIndex,
                 existing: tuple[NetworkPolicy, ...]) -> None:
        self.connections, self.index, self.existing = connections, index, existing

    def check(self, *docs: PolicyDoc) -> CheckResult:
        kinds = parse_manifests([strip_comments(d.manifest) for d in docs])
        network = self.existing + kinds.network
        evaluator = make_evaluator(network, self.index.inventory, kinds.cilium, kinds.cluster)
        return check_policies(self.connections, network + kinds.cilium + kinds.cluster,  # type: ignore[arg-type]
                              self.index, evaluator)  # type: ignore[arg-type]


def plan_migration(observed: ObservedTraffic, req: MigrateRequest) -> MigrationPlan:
    index = observed.index
    t = req.thresholds
    connections: tuple[Connection, ...] = observed.resolved.connections
    span = recording_span(observed)
    scope = _scope(observed, req)
    # Step 1 policies carry their own DNS rule (nothing else restricts the namespace yet);
    # step 3 takes default-deny and allow-dns from the default-deny synthesis.
    allow = synthesize(observed.edges, index, SynthesisOptions(
        default_deny=False, namespaces=tuple(scope), dialect=req.dialect,
        render=RenderOptions(fqdn_patterns=req.fqdn_patterns)))
    deny = synthesize(observed.edges, index, SynthesisOptions(
        default_deny=True, namespaces=tuple(scope), dialect=req.dialect))
    allow_of = {WorkloadRef(d.namespace, d.workload[0], d.workload[1]): d
                for d in allow.policies if d.workload}
    dns_only = dns_only_workloads(connections, lambda c: is_dns_traffic(c, index))
    workloads = [w for w in index.workloads() if w.namespace in scope]
    seen = {workload_ref(p) for c in connections for p in (c.src, c.dst) if p.kind == "workload"}
    workloads += sorted(w for w in seen - set(workloads) if w.namespace in scope)
    verdicts = judge_all(sorted(workloads), connections, index, span, t, set(allow_of), dns_only)

    existing_raw = [o for o in index.inventory.network_policies]
    existing = parse_policies(existing_raw, "snapshot")
    replay = _Replay(connections, index, existing)
    step1_all = [allow_of[r.workload] for r in verdicts if r.ready and r.workload in allow_of]
    after1 = replay.check(*step1_all)

    by_ns: dict[str, list[Readiness]] = defaultdict(list)
    for r in verdicts:
        by_ns[r.workload.namespace].append(r)
    not_ready: dict[str, list[str]] = {}
    for ns in scope:
        held = [r for r in by_ns[ns] if not r.ready and r.verdict != NOT_AFFECTED]
        not_ready[ns] = [f"`{r.workload.kind}/{r.workload.name}`: {'; '.join(r.reasons)}"
                         for r in held]
    deny_model = deny.model or m.PolicyModel((), (), ())
    deny_docs = {ns: _baseline_docs(deny_model, ns, req.dialect) for ns in scope}

    def stage3(ready_ns: list[str]) -> CheckResult:
        return replay.check(*step1_all, *(d for ns in ready_ns for d in deny_docs[ns]))

    after3 = stage3([ns for ns in scope if not not_ready[ns]])
    # A namespace whose default-deny would deny observed traffic is not ready either.
    blamed: dict[str, list[str]] = defaultdict(list)
    for g in after3.groups:
        if g.allowed:
            continue
        for side, peer in (("source egress", g.src), ("destination ingress", g.dst)):
            if side in (g.denied_by or "") and peer.namespace in scope \
                    and not not_ready[peer.namespace]:
                blamed[peer.namespace].append(f"{g.src.display()} -> {g.dst.display()} "
                                              f"{g.protocol}/{g.port}")
    if blamed:
        for ns, what in blamed.items():
            not_ready[ns].append("default-deny would deny observed connection(s) no allow "
                                 "policy covers: " + ", ".join(sorted(set(what))[:5]))
        after3 = stage3([ns for ns in scope if not not_ready[ns]])

    plans = []
    existing_by_key = {(p.namespace, p.name): raw for p, raw in zip(existing, existing_raw)}
    for ns in scope:
        ready = [r for r in by_ns[ns] if r.ready]
        held = [r for r in by_ns[ns] if not r.ready and r.verdict != NOT_AFFECTED]
        step1 = tuple(allow_of[r.workload] for r in ready if r.workload in allow_of)
        step3 = tuple(deny_docs[ns]) if not not_ready[ns] else ()
        watch_ns, watch = _watch(ns, ready, held, index, span, t, bool(step1))
        # only a NetworkPolicy of the same name is replaced (other kinds are other objects)
        replaced = tuple(existing_by_key[(ns, d.name)] for d in step1 + step3
                         if d.manifest.get("kind") == "NetworkPolicy"
                         and (ns, d.name) in existing_by_key)
        plans.append(NamespacePlan(ns, tuple(by_ns[ns]), step1, watch_ns, tuple(watch), step3,
                                   tuple(not_ready[ns]),
                                   tuple(p.name for p in existing if p.namespace == ns),
                                   replaced))
    return MigrationPlan(tuple(plans), span, t, after1, after3,
                         observed.warnings + tuple(deny.warnings)
                         + tuple(w for w in allow.warnings if w not in deny.warnings),
                         tuple(skipped_edges(observed, deny)), observed.bad_input, req.dialect)


# ---------------------------------------------------------------- files


def plan_texts(plan: MigrationPlan) -> tuple[MigrationPlan, dict[str, str]]:
    """The step manifests and their rollbacks (relative name -> text), and the plan
    that names them."""
    texts: dict[str, str] = {}
    plans = []
    for p in plan.namespaces:
        files: dict[int, StepFiles] = {1: StepFiles(None, None), 3: StepFiles(None, None)}
        for step, docs, what in ((1, p.step1, "allow policies of the workloads judged ready"),
                                 (3, p.step3, "default-deny and DNS for the whole namespace")):
            if not docs:
                continue
            ns = checked_namespace(p.namespace)  # it names a directory
            # Rollbacks live apart, so that <ns>/ holds only what is to be applied.
            name = f"{ns}/step-{step}-{'allow' if step == 1 else 'default-deny'}.yaml"
            rollback = f"rollback/{ns}/step-{step}.yaml"
            manifests = [d.manifest for d in docs]
            texts[name] = dump_all(manifests, (
                f"flowpol migration plan, namespace {p.namespace}, step {step}: {what}.",
                f"Apply: kubectl apply -f {name}",
                f"Roll back: kubectl delete -f {rollback}", "Review before applying."))
            texts[rollback] = dump_all([strip_comments(m) for m in manifests], (
                f"ROLLBACK of step {step} for namespace {p.namespace}: kubectl delete -f {rollback}",
                f"These are the objects step {step} creates; deleting them undoes it.",
                "(Applying this file by mistake only re-applies the step.)"))
            restore = None
            names = {d.name for d in docs}
            old = [o for o in p.replaced if (o.get("metadata") or {}).get("name") in names]
            if old:
                restore = f"rollback/{ns}/step-{step}-restore.yaml"
                texts[restore] = dump_all(old, (
                    f"Step {step} replaces these existing policies; after the rollback, restore "
                    f"them: kubectl apply -f {restore}",))
            files[step] = StepFiles(name, rollback, restore)
        plans.append(NamespacePlan(p.namespace, p.workloads, p.step1, p.watch_ns, p.watch, p.step3,
                                   p.not_ready, p.existing, p.replaced, files[1], files[3]))
    return replace(plan, namespaces=tuple(plans)), texts


def _step_documents(plan: MigrationPlan) -> dict[str, list]:
    """What each step manifest must parse back to."""
    out: dict[str, list] = {}
    for p in plan.namespaces:
        for docs, files in ((p.step1, p.files1), (p.step3, p.files3)):
            if files.apply is not None:
                out[files.apply] = [strip_comments(d.manifest) for d in docs]
    return out


# ---------------------------------------------------------------- report


def _readiness_row(r: Readiness) -> tuple[str, ...]:
    a = r.activity
    pods = f"{r.pods_current_seen} of {r.pods_current}" if r.pods_current else "—"
    if a is not None:
        pods += f" ({len(a.pods)} seen in all)"
    why = "; ".join(r.reasons + r.notes)
    return (f"`{r.workload.kind}/{r.workload.name}`", r.verdict,
            duration_text(a.observed_for) if a else "never seen",
            f"{a.connections:,}" if a else "0", pods,
            f"`{r.schedule}` fired {r.fired if r.fired is not None else '?'}x" if r.schedule else "—",
            why)


def plan_dict(plan: MigrationPlan) -> dict:
    def wl(r: Readiness) -> dict:
        a = r.activity
        return {"workload": r.display, "verdict": r.verdict, "reasons": list(r.reasons),
                "notes": list(r.notes), "connections": a.connections if a else 0,
                "first_seen": when(a.first_seen) if a else None,
                "last_seen": when(a.last_seen) if a else None,
                "observed_for_seconds": a.observed_for // NS_PER_S if a else 0,
                "pods_current": r.pods_current, "pods_current_seen": r.pods_current_seen,
                "pods_seen": len(a.pods) if a else 0, "schedule": r.schedule,
                "time_zone": r.time_zone, "suspended": r.suspended, "fired": r.fired}

    step1, step3 = _step_scopes(plan)

    def replay(r: CheckResult, applies: list[str]) -> dict | None:
        if not applies:
            return None  # the step applies nothing anywhere: nothing was verified
        return {**verification_dict(r), "namespaces": applies,
                "denied_list": list(denied_lines(r))}

    return {
        "flowpol_migrate": JSON_VERSION,
        "flowpol_version": __version__,
        "exit_code": plan.exit_code,
        "dialect": plan.dialect,
        "recording": {"start": when(plan.span.start) if plan.span else None,
                      "end": when(plan.span.end) if plan.span else None},
        "thresholds": {"min_observation_seconds": plan.thresholds.min_observation_ns // NS_PER_S,
                       "min_flows": plan.thresholds.min_flows},
        "namespaces": [{
            "namespace": p.namespace, "ready": p.ready, "not_ready": list(p.not_ready),
            "workloads": [wl(r) for r in p.workloads],
            "step1": {"policies": [d.name for d in p.step1], "apply": p.files1.apply,
                      "rollback": p.files1.rollback, "restore": p.files1.restore},
            "step2": {"watch_seconds": p.watch_ns // NS_PER_S, "watch": list(p.watch)},
            "step3": {"policies": [d.name for d in p.step3], "apply": p.files3.apply,
                      "rollback": p.files3.rollback, "restore": p.files3.restore},
            "existing_policies": list(p.existing),
        } for p in plan.namespaces],
        "verification": {"after_step1": replay(plan.after_step1, step1),
                         "after_step3": replay(plan.after_step3, step3)},
        "warnings": list(plan.warnings),
    }


def _verification_blocks(plan: MigrationPlan) -> list[Block]:
    blocks: list[Block] = [Heading(1, "Verification")]
    steps = _verified_steps(plan)
    if not steps:
        return blocks + [Paragraph("No step of this plan applies anything yet, so there is "
                                   "nothing to replay the traffic against.", "warn")]
    for label, r in steps:
        text = f"{label[0].upper()}{label[1:]}, with the existing policies: {verification_text(verification_dict(r))}."
        if r.denied:
            blocks.append(Paragraph(text + " DENIED:", "bad"))
            blocks.append(Bullets(tuple(f"`{line}`" for line in denied_lines(r))))
        else:
            blocks.append(Paragraph(text + " Every one stays allowed.", "ok"))
    return blocks


def plan_document(plan: MigrationPlan, observed: ObservedTraffic) -> Document:
    t = plan.thresholds
    blocks: list[Block] = [
        summary_block(observed),
        Paragraph(f"A workload is ready when it was seen in at least --min-flows {t.min_flows} "
                  f"connection(s) over at least --min-observation "
                  f"{duration_text(t.min_observation_ns)} (CronJobs: their schedule fired during "
                  "a recording that long). Apply the steps in order, one namespace at a time."),
    ]
    if plan.dialect != "kubernetes":
        blocks.append(Paragraph(f"Dialect `{plan.dialect}`: {DIALECT_TEXT[plan.dialect]}"))
    summary = tuple((f"`{p.namespace}`", "ready" if p.ready else "step 3 held back",
                     str(sum(r.ready for r in p.workloads)),
                     str(sum(not r.ready and r.verdict != NOT_AFFECTED for r in p.workloads)),
                     duration_text(p.watch_ns)) for p in plan.namespaces)
    blocks.append(Table(("Namespace", "Default-deny", "Workloads ready", "Held back", "Watch"),
                        summary, numeric=(2, 3)))
    for p in plan.namespaces:
        blocks.append(Heading(1, f"Namespace {p.namespace}: "
                                 + ("ready for default-deny" if p.ready
                                    else "not ready for default-deny")))
        if p.existing:
            blocks.append(Paragraph("Existing NetworkPolicies stay as they are: "
                                    + ", ".join(f"`{n}`" for n in p.existing) + "."))
        blocks.append(Table(("Workload", "Verdict", "Observed for", "Connections",
                             "Current pods seen", "Schedule", "Why / notes"),
                            tuple(_readiness_row(r) for r in p.workloads), numeric=(3,),
                            wrap=(6,)))
        blocks.append(Heading(2, "Step 1: allow policies for the ready workloads"))
        if p.step1:
            blocks.append(Bullets(tuple(
                f"`{d.name}` for `{d.workload[0]}/{d.workload[1]}`" for d in p.step1
                if d.workload)))
            blocks.append(Code(f"kubectl apply -f {p.files1.apply}\n# roll back:\n"
                               f"kubectl delete -f {p.files1.rollback}"
                               + (f"\nkubectl apply -f {p.files1.restore}" if p.files1.restore
                                  else ""), "sh"))
        else:
            blocks.append(Paragraph("Nothing to apply: no workload of this namespace is ready "
                                    "and needs its own policy.", "warn"))
        blocks.append(Heading(2, f"Step 2: watch for {duration_text(p.watch_ns)}"))
        blocks.append(Bullets(p.watch or ("Nothing was applied in step 1; nothing to watch.",)))
        blocks.append(Heading(2, "Step 3: default-deny for the rest of the namespace"))
        if p.step3:
            blocks.append(Bullets(tuple(f"`{d.name}`" for d in p.step3)))
            blocks.append(Code(f"kubectl apply -f {p.files3.apply}\n# roll back:\n"
                               f"kubectl delete -f {p.files3.rollback}"
                               + (f"\nkubectl apply -f {p.files3.restore}" if p.files3.restore
                                  else ""), "sh"))
        else:
            blocks.append(Paragraph("Not part of this plan: the namespace is not ready.", "bad"))
            blocks.append(Bullets(p.not_ready))
    blocks += _verification_blocks(plan)
    blocks += graph_blocks(observed)
    blocks += skipped_blocks(observed, plan.skipped_edges, warnings=plan.warnings)
    return Document("flowpol migration plan to default-deny", tuple(blocks))


def summary_lines(plan: MigrationPlan, out: Path) -> list[str]:
    lines = []
    if plan.span:
        lines.append(f"recording: {when(plan.span.start)} .. {when(plan.span.end)} "
                     f"({duration_text(plan.span.duration)}); ready needs --min-observation "
                     f"{duration_text(plan.thresholds.min_observation_ns)} and --min-flows "
                     f"{plan.thresholds.min_flows}")
    for p in plan.namespaces:
        ready = [r for r in p.workloads if r.ready]
        held = [r for r in p.workloads if not r.ready and r.verdict != NOT_AFFECTED]
        step1 = (f"step 1 {len(p.step1)} allow polic{'y' if len(p.step1) == 1 else 'ies'} "
                 f"({len(ready)} workload(s) ready), watch {duration_text(p.watch_ns)}"
                 if p.step1 else "step 1 nothing ready")
        lines.append(f"{p.namespace}: {step1}, step 3 "
                     + ("default-deny" if p.ready else "HELD BACK"))
        for r in held:
            lines.append(f"  held back {r.workload.kind}/{r.workload.name}: {'; '.join(r.reasons)}")
        if not p.ready and not held:
            lines += [f"  {reason}" for reason in p.not_ready]
    lines += [f"warning: {w}" for w in plan.warnings]
    for label, r in _verified_steps(plan):
        lines.append(f"verified {label}: {verification_text(verification_dict(r))}")
    manifests = sum(bool(p.step1) + bool(p.step3) for p in plan.namespaces)
    if manifests:
        lines.append(f"wrote {out}/plan.md, plan.html, plan.json and {manifests} step "
                     "manifest(s) with their rollbacks")
    else:
        lines.append("nothing is ready to apply: no workload has the evidence --min-observation "
                     "and --min-flows ask for, so no step manifest was written; record longer "
                     f"(or lower the thresholds) and run again. Wrote {out}/plan.md, plan.html "
                     "and plan.json (why each workload waits)")
    return lines


def run_migrate(req: MigrateRequest) -> tuple[MigrationPlan, list[Path], ObservedTraffic]:
    observed = observe_request(req)
    plan = plan_migration(observed, req)
    plan, texts = plan_texts(plan)
    doc = plan_document(plan, observed)
    texts["plan.md"], texts["plan.html"] = to_markdown(doc), to_html(doc)
    texts["plan.json"] = json.dumps(plan_dict(plan), indent=2, sort_keys=True,
                                    ensure_ascii=False) + "\n"
    with writing(req.out_dir):
        written = write_owned(req.out_dir, "migrate", texts)
        compare_documents(req.out_dir, _step_documents(plan))
    return plan, written, observed
