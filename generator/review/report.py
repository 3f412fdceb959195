"""report.md and report.html: what a reviewer reads before applying policies.

Content, in order: a summary; the workload-to-workload graph (Mermaid in Markdown, an
inline SVG in HTML); the verification result; per policy a table of its rules with
their evidence (connections, first and last seen, the inputs and Services they came
through); then everything skipped or unresolved and why.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from generator.output.files import atomic_write, policy_file
from generator.pipeline import ObservedTraffic
from generator.output.report import unresolved_summary
from generator.review.document import (
    Block, Bullets, Document, GraphBlock, Heading, Paragraph, Table, to_html, to_markdown,
)
from generator.review.evidence import (
    EntryEvidence, duration_text, entry_evidence, input_names, recording_span, when,
)
from generator.review.graph import graph_from_edges
from generator.synthesize.synthesis import SynthesisResult
from generator.verify import cilium_text
from generator.verify.cilium_policy import KINDS as CILIUM_KINDS
from generator.verify.cilium_policy import CiliumPolicy, parse_cilium_policy
from generator.verify.evaluator import Evaluator, RuleEntry
from generator.verify.policy import NetworkPolicy, PolicyPeer, parse_policies
from generator.verify.usage import ANY_PEER, describe_peer, describe_port
from generator.output.yamlout import strip_comments

MAX_ROWS = 300  # per table; the rest is counted, report.json has everything
MAX_GRAPH_EDGES = 400  # beyond this the graph is drawn per namespace


@dataclass(frozen=True, slots=True)
class ReviewedPolicy:
    policy: NetworkPolicy | CiliumPolicy
    file: str  # where the reviewer finds its YAML
    workload: str | None = None  # "Deployment/api" for per-workload policies
    note: str | None = None  # e.g. what `flowpol diff` changed


# ---------------------------------------------------------------- sections


def summary_block(observed: ObservedTraffic) -> Paragraph:
    r = observed.read
    span = recording_span(observed)
    window = (f" The recording covers {duration_text(span.duration)}, from {when(span.start)} "
              f"to {when(span.end)}." if span else "")
    return Paragraph(
        f"{r.total_kept:,} flow record(s) from {len(r.formats)} input(s) "
        f"({input_names(r.formats)}) resolved to {len(observed.edges):,} edge(s) between "
        f"peers; {len(observed.resolved.unresolved):,} flow aggregate(s) could not be "
        f"attributed.{window}")


def graph_blocks(observed: ObservedTraffic) -> list[Block]:
    graph = graph_from_edges(observed.edges)
    blocks: list[Block] = [
        Heading(1, "Traffic graph"),
        Paragraph("Every observed connection, client to server, on the server pod's port "
                  "(after the Service's DNAT); the number is the count of connections."),
    ]
    if len(graph.edges) > MAX_GRAPH_EDGES:
        blocks.append(Paragraph(
            f"{len(graph.nodes):,} peers with {len(graph.edges):,} edges between them are too "
            "many to draw one by one (Mermaid renders at most 500 edges): shown per namespace, "
            "with the other peers per kind. Every edge is in report.json and in the policy "
            "tables below.", "warn"))
        graph = graph_from_edges(observed.edges, by_namespace=True)
    blocks.append(GraphBlock(graph))
    return blocks


def verification_blocks(verification: dict | None) -> list[Block]:
    blocks: list[Block] = [Heading(1, "Verification")]
    if verification is None:
        return blocks + [Paragraph("Not run (--no-verify).", "warn")]
    total = verification["allowed_connections"] + verification["denied_connections"]
    if not verification["denied"]:
        return blocks + [Paragraph(
            f"Every observed connection is allowed by these policies: {total:,} connection(s) "
            f"in {verification['checked']:,} aggregate(s) replayed against "
            f"{verification['policies']} policies.", "ok")]
    blocks.append(Paragraph(
        f"{verification['denied_connections']:,} of {total:,} observed connection(s) would be "
        f"DENIED by these policies ({verification['denied']:,} aggregate(s)).", "bad"))
    rows = tuple((d["client"], d["server"], f"{d['protocol']}/{d['port']}", str(d["connections"]),
                  when_text(d["last_seen"]), d["reason"])
                 for d in verification["denied_list"][:MAX_ROWS])
    blocks.append(Table(("Client", "Server", "Port", "Connections", "Last seen", "Why"), rows,
                        numeric=(3,)))
    return blocks


def when_text(rfc3339: str) -> str:
    return rfc3339[:19] + "Z"


def _selects(policy: NetworkPolicy) -> str:
    return describe_peer(PolicyPeer(pod_selector=policy.pod_selector), policy.namespace)


def _entry_row(ref: str, peer_text: str, port_text: str, ev: EntryEvidence | None
               ) -> tuple[str, ...]:
    if ev is None:
        return (ref, peer_text, port_text, "—", "0", "—", "—", "not observed")
    source = input_names(ev.inputs)
    if ev.services:
        source += "; via Service " + ", ".join(ev.services)
    observed_peers = ", ".join(ev.peers[:6]) + (
        f" +{len(ev.peers) - 6} more" if len(ev.peers) > 6 else "")
    return (ref, peer_text, port_text, observed_peers, f"{ev.connections:,}",
            when(ev.first_seen), when(ev.last_seen), source)


def _rows(policy_id: str, direction: str, items, evidence: dict[RuleEntry, EntryEvidence]
          ) -> list[tuple[str, ...]]:
    """``items``: per rule, its index, its (peer index, text) and (port index, text)."""
    rows = []
    for i, peers, ports in items:
        first_row = True
        for j, peer_text in peers:
            for k, port_text in ports:
                ref = f"`{direction}[{i}]`" if first_row else ""
                first_row = False
                rows.append(_entry_row(ref, peer_text, port_text,
                                       evidence.get((policy_id, direction, i, j, k))))
    return rows


def _rule_rows(policy: NetworkPolicy, direction: str, evidence: dict[RuleEntry, EntryEvidence]
               ) -> list[tuple[str, ...]]:
    rules = policy.ingress if direction == "ingress" else policy.egress
    items = [(i, [(j, describe_peer(p, policy.namespace)) for j, p in enumerate(rule.peers)]
              or [(None, ANY_PEER)],
              [(k, describe_port(p)) for k, p in enumerate(rule.ports)] or [(None, "every port")])
             for i, rule in enumerate(rules)]
    return _rows(policy.id, direction, items, evidence)


def _cilium_rule_rows(policy: CiliumPolicy, direction: str,
                      evidence: dict[RuleEntry, EntryEvidence]) -> list[tuple[str, ...]]:
    """Allow rules with their evidence; a rule whose L3 list is explicitly empty admits
    nothing and has no row."""
    rules = policy.ingress if direction == "ingress" else policy.egress
    items = [(i, *cilium_text.rule_items(policy, rule)) for i, rule in enumerate(rules)]
    return _rows(policy.id, direction, [it for it in items if it[1]], evidence)


def _facts(rp: ReviewedPolicy) -> tuple[str, str, list[str], list[tuple[str, bool]]]:
    """Heading, namespace group, facts, and per direction whether it is isolated."""
    p = rp.policy
    facts = [f"file `{rp.file}`"]
    if rp.workload:
        facts.append(f"for {rp.workload}")
    if isinstance(p, CiliumPolicy):
        facts.append(f"selects {cilium_text.selects(p)}")
        deny = [d for d, on in (("ingress", p.default_deny_ingress),
                                ("egress", p.default_deny_egress)) if on]
        facts.append(f"default deny for {' and '.join(deny)}" if deny else "no default deny")
        base = f"{p.namespace}/{p.name}" if p.namespace is not None else p.name
        heading = f"{p.kind} {base}" + (f" specs[{p.spec_index}]" if p.spec_index is not None else "")
        return heading, p.namespace or "", facts, [("ingress", p.default_deny_ingress),
                                                    ("egress", p.default_deny_egress)]
    facts.append(f"selects {_selects(p)}")
    facts.append("policyTypes " + ", ".join(p.policy_types)
                 + ("" if p.policy_types_explicit else " (defaulted)"))
    return f"{p.namespace}/{p.name}", p.namespace, facts, [
        ("ingress", "Ingress" in p.policy_types), ("egress", "Egress" in p.policy_types)]


def policy_blocks(policies: Sequence[ReviewedPolicy], evidence: dict[RuleEntry, EntryEvidence]
                  ) -> list[Block]:
    """Per namespace (cluster-scoped policies first), per policy: what it selects and a
    table of its rules with their evidence. NetworkPolicies and Cilium policies alike."""
    blocks: list[Block] = [Heading(1, "Policies")]
    by_ns: dict[str, list[tuple[str, list[str], list[tuple[str, bool]], ReviewedPolicy]]] = \
        defaultdict(list)
    for rp in policies:
        heading, ns, facts, isolated = _facts(rp)
        by_ns[ns].append((heading, facts, isolated, rp))
    for ns in sorted(by_ns):
        blocks.append(Heading(2, f"Namespace {ns}" if ns else "Cluster-wide"))
        for heading, facts, isolated, rp in by_ns[ns]:
            p = rp.policy
            blocks.append(Heading(3, heading))
            blocks.append(Paragraph("; ".join(facts) + "."))
            if rp.note:
                blocks.append(Paragraph(rp.note, "warn"))
            rows: list[tuple[str, ...]] = []
            closed = []
            for direction, on in isolated:
                if not on:
                    continue
                direction_rows = (_cilium_rule_rows(p, direction, evidence)
                                  if isinstance(p, CiliumPolicy)
                                  else _rule_rows(p, direction, evidence))
                if not direction_rows:
                    closed.append(direction)
                rows += direction_rows
            if closed:
                blocks.append(Paragraph(
                    f"No {' or '.join(closed)} rule: the selected pods are isolated for "
                    f"{' and '.join(closed)}; only rules of other policies selecting them "
                    "allow such traffic."))
            if rows:
                shown = tuple(rows[:MAX_ROWS])
                blocks.append(Table(("Rule", "Peer", "Port", "Observed peers", "Connections",
                                     "First seen", "Last seen", "Source"), shown, numeric=(4,),
                                     wrap=(1, 3, 7)))
                if len(rows) > MAX_ROWS:
                    blocks.append(Paragraph(f"{len(rows) - MAX_ROWS} more row(s) not shown."))
    return blocks


def skipped_blocks(observed: ObservedTraffic, skipped_edges: Sequence[tuple[str, str]] = (),
                   idle: Sequence[str] = (), warnings: Sequence[str] = (),
                   node_peers: Sequence[str] = ()) -> list[Block]:
    blocks: list[Block] = [Heading(1, "Skipped and unresolved")]
    r = observed.read
    said = False
    if r.total_skipped:
        said = True
        blocks.append(Paragraph(f"{r.total_skipped:,} input item(s) could not be read and were "
                                "skipped:"))
        blocks.append(Table(("Reason", "Items"), tuple(
            (reason, f"{n:,}") for reason, n in sorted(r.skipped.items())), numeric=(1,)))
        if r.examples:
            blocks.append(Bullets(tuple(f"e.g. `{e}`" for e in r.examples[:10])))
    unresolved = unresolved_summary(observed)
    if unresolved:
        said = True
        blocks.append(Paragraph("Connections with an endpoint flowpol could not attribute to a "
                                "pod, node or external address; no rule was written for them:"))
        blocks.append(Table(("Side", "Address", "Why", "Connections", "Last seen", "Peers"), tuple(
            (u["side"], u["ip"], u["reason"], f"{u['count']:,}", when_text(u["last_seen"]),
             ", ".join(u["peers"][:5])) for u in unresolved[:MAX_ROWS]), numeric=(3,)))
    if skipped_edges:
        said = True
        blocks.append(Paragraph("Observed edges no rule was written for:"))
        blocks.append(Table(("Edge", "Why"), tuple(skipped_edges[:MAX_ROWS])))
    if idle:
        said = True
        blocks.append(Paragraph("Workloads in scope with no observed traffic (default-deny "
                                "isolates them; only DNS stays allowed):"))
        blocks.append(Bullets(tuple(f"`{w}`" for w in idle)))
    if node_peers:
        said = True
        blocks.append(Paragraph(
            "Node peers (kubelet probes, hostNetwork pods, SNATed traffic) are not pods: rules "
            "allow them by ipBlock of the node address. A pod's own node can always reach it; "
            "traffic from other nodes depends on the CNI. Seen: "
            + ", ".join(f"`{n}`" for n in node_peers) + "."))
    if warnings:
        said = True
        blocks.append(Paragraph("Warnings:"))
        blocks.append(Bullets(tuple(warnings)))
    if not said:
        blocks.append(Paragraph("Nothing: every input item was read and every flow attributed.",
                                "ok"))
    return blocks


# ---------------------------------------------------------------- assembling


def policy_evidence(observed: ObservedTraffic, policies: Sequence[NetworkPolicy],
                    evaluator: Evaluator | None = None) -> dict[RuleEntry, EntryEvidence]:
    """``evaluator``: one already built for ``policies`` (to share its caches), or None."""
    if evaluator is None:
        evaluator = Evaluator.from_inventory(policies, observed.index.inventory)
    return entry_evidence(observed.resolved.connections, evaluator)


def write_documents(out_dir: Path, doc: Document, stem: str = "report") -> list[Path]:
    md, page = out_dir / f"{stem}.md", out_dir / f"{stem}.html"
    atomic_write(md, to_markdown(doc))
    atomic_write(page, to_html(doc))
    return [md, page]


def generate_review(observed: ObservedTraffic, synth: SynthesisResult,
                    verification: dict | None,
                    checked: tuple[Sequence[NetworkPolicy], Evaluator] | None = None
                    ) -> Document:
    """``checked``: ``synth.policies`` already parsed, and an Evaluator built for them
    (`flowpol generate` shares those of its verification), or None."""
    if checked is None:
        parsed = parse_policies([strip_comments(p.manifest) for p in synth.policies
                                 if p.manifest.get("kind") == "NetworkPolicy"])
        evaluator = None
    else:
        parsed, evaluator = checked
    # per rule evidence for NetworkPolicies and Cilium policies (a ClusterNetworkPolicy's
    # rules are in its YAML, with the same evidence comments)
    network_docs = [d for d in synth.policies if d.manifest.get("kind") == "NetworkPolicy"]
    reviewed = [ReviewedPolicy(p, policy_file(doc.namespace), _workload(doc))
                for p, doc in zip(parsed, network_docs)]
    reviewed += [ReviewedPolicy(p, policy_file(doc.namespace), _workload(doc))
                 for doc in synth.policies if doc.manifest.get("kind") in CILIUM_KINDS
                 for p in parse_cilium_policy(strip_comments(doc.manifest))]
    evidence = policy_evidence(observed, parsed, evaluator)
    scope = ", ".join(synth.namespaces) or "no namespace"
    blocks: list[Block] = [
        summary_block(observed),
        Paragraph(f"{_count_kinds(synth)} for namespace(s) {scope}, one file per "
                  "namespace beside this report. Review every rule against its evidence before "
                  "applying."),
    ]
    blocks += graph_blocks(observed)
    blocks += verification_blocks(verification)
    blocks += policy_blocks(reviewed, evidence)
    blocks += skipped_blocks(observed, synth.skipped_edges, synth.idle_workloads,
                             list(observed.snapshot_warnings) + list(observed.resolved.warnings)
                             + list(synth.warnings), synth.node_peers)
    title = scope if len(synth.namespaces) <= 4 else f"{len(synth.namespaces)} namespaces"
    return Document(f"flowpol review: {title}", tuple(blocks))


def _workload(doc) -> str | None:
    return f"{doc.workload[0]}/{doc.workload[1]}" if doc.workload else None


_PLURAL = {"NetworkPolicy": "NetworkPolicies", "CiliumNetworkPolicy": "CiliumNetworkPolicies",
           "CiliumClusterwideNetworkPolicy": "CiliumClusterwideNetworkPolicies",
           "ClusterNetworkPolicy": "ClusterNetworkPolicies"}


def _count_kinds(synth: SynthesisResult) -> str:
    counts: dict[str, int] = defaultdict(int)
    for d in synth.policies:
        counts[d.manifest.get("kind", "?")] += 1
    if not counts:
        return "0 NetworkPolicies"
    return ", ".join(f"{n} {kind if n == 1 else _PLURAL.get(kind, kind)}"
                     for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def write_review(out_dir: Path, observed: ObservedTraffic, synth: SynthesisResult,
                 verification: dict | None,
                 checked: tuple[Sequence[NetworkPolicy], Evaluator] | None = None
                 ) -> list[Path]:
    """report.md and report.html for `flowpol generate`, beside its YAML."""
    return write_documents(out_dir, generate_review(observed, synth, verification, checked))
