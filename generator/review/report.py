"""report.md and report.html: what a reviewer reads before applying policies.

Content, in order: a summary; the workload-to-workload graph (Mermaid in Markdown, an
inline SVG in HTML); the verification result; per policy a table of its rules with
their evidence (connections, first and last seen, the inputs and Services they came
through); external peers by DNS name; then everything skipped or unresolved and why.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from generator.output.files import atomic_write, policy_file
from generator.pipeline import ObservedTraffic
from generator.output.report import (
    connection_counts, dropped_attempt_facts, external_names, node_peer_facts, skipped_edges,
    unresolved_summary,
)
from generator.verify.check import verification_text
from generator.review.document import (
    Block, Bullets, Document, GraphBlock, Heading, Paragraph, Table, to_html, to_markdown,
)
from generator.review.evidence import (
    EntryEvidence, duration_text, entry_evidence, input_names, recording_span, when,
)
from generator.review.graph import graph_from_edges
from generator.synthesize.synthesis import SynthesisResult
from generator.verify.evaluator import Evaluator, RuleEntry
from generator.verify.policy import NetworkPolicy, PolicyPeer, parse_policies
from generator.verify.usage import ANY_PEER, describe_peer, describe_port
from generator.output.yamlout import strip_comments

MAX_ROWS = 300  # per table; the rest is counted, report.json has everything
MAX_GRAPH_EDGES = 400  # beyond this the graph is drawn per namespace


@dataclass(frozen=True, slots=True)
class ReviewedPolicy:
    policy: NetworkPolicy
    file: str  # where the reviewer finds its YAML
    workload: str | None = None  # "Deployment/api" for per-workload policies
    note: str | None = None  # e.g. what `flowpol diff` changed


# ---------------------------------------------------------------- sections


def summary_block(observed: ObservedTraffic) -> Paragraph:
    r = observed.read
    c = connection_counts(observed)
    span = recording_span(observed)
    window = (f" The recording covers {duration_text(span.duration)}, from {when(span.start)} "
              f"to {when(span.end)}." if span else "")
    dropped = (f"; {c['dropped_attempts_left_out']:,} dropped connection attempt(s) left out"
               if c["dropped_attempts_left_out"] else "")
    unattributed = (f"{c['unattributed']:,} connection(s) with an endpoint that could not be "
                    "attributed" if c["unattributed"] else "every connection attributed")
    return Paragraph(
        f"{r.total_kept:,} flow record(s) from {len(r.formats)} input(s) "
        f"({input_names(r.formats)}): {c['connections']:,} connection(s) "
        f"({c['repeated_observations_merged']:,} repeated observation(s) merged{dropped}) on "
        f"{c['edges']:,} edge(s) between peers; {unattributed}.{window}")


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
    counts = (f"{verification_text(verification)}, replayed against "
              f"{verification['policies']} policies")
    if not verification["denied_connections"]:
        return blocks + [Paragraph(
            f"Every observed connection is allowed by these policies: {counts}.", "ok")]
    blocks.append(Paragraph(
        f"Observed connections these policies would DENY: {counts}.", "bad"))
    rows = tuple((d["client"], d["server"], f"{d['protocol']}/{d['port']}", str(d["connections"]),
                  when_text(d["last_seen"]), d["reason"])
                 for d in verification["denied_list"][:MAX_ROWS])
    blocks.append(Table(("Client", "Server", "Port", "Connections", "Last seen", "Why"), rows,
                        numeric=(3,)))
    return blocks


def when_text(rfc3339: str) -> str:
    return rfc3339[:19] + "Z"


def _port_text(d: dict) -> str:
    return f"{d['protocol']}/{d['port']}" if d["port"] is not None else d["protocol"]


def _selects(policy: NetworkPolicy) -> str:
    return describe_peer(PolicyPeer(pod_selector=policy.pod_selector), policy.namespace)


def _rule_rows(policy: NetworkPolicy, direction: str, evidence: dict[RuleEntry, EntryEvidence]
               ) -> list[tuple[str, ...]]:
    rows = []
    rules = policy.ingress if direction == "ingress" else policy.egress
    for i, rule in enumerate(rules):
        peers = [(j, describe_peer(p, policy.namespace)) for j, p in enumerate(rule.peers)] \
            or [(None, ANY_PEER)]
        ports = [(k, describe_port(p)) for k, p in enumerate(rule.ports)] or [(None, "every port")]
        first_row = True
        for j, peer_text in peers:
            for k, port_text in ports:
                ev = evidence.get((policy.id, direction, i, j, k))
                ref = f"`{direction}[{i}]`" if first_row else ""
                first_row = False
                if ev is None:
                    rows.append((ref, peer_text, port_text, "—", "0", "—", "—", "not observed"))
                    continue
                source = input_names(ev.inputs)
                if ev.services:
                    source += "; via Service " + ", ".join(ev.services)
                observed_peers = ", ".join(ev.peers[:6]) + (
                    f" +{len(ev.peers) - 6} more" if len(ev.peers) > 6 else "")
                rows.append((ref, peer_text, port_text, observed_peers, f"{ev.connections:,}",
                             when(ev.first_seen), when(ev.last_seen), source))
    return rows


def policy_blocks(policies: Sequence[ReviewedPolicy], evidence: dict[RuleEntry, EntryEvidence]
                  ) -> list[Block]:
    blocks: list[Block] = [Heading(1, "Policies")]
    by_ns: dict[str, list[ReviewedPolicy]] = defaultdict(list)
    for rp in policies:
        by_ns[rp.policy.namespace].append(rp)
    for ns in sorted(by_ns):
        blocks.append(Heading(2, f"Namespace {ns}"))
        for rp in by_ns[ns]:
            p = rp.policy
            blocks.append(Heading(3, f"{p.namespace}/{p.name}"))
            facts = [f"file `{rp.file}`"]
            if rp.workload:
                facts.append(f"for {rp.workload}")
            facts.append(f"selects {_selects(p)}")
            facts.append("policyTypes " + ", ".join(p.policy_types)
                         + ("" if p.policy_types_explicit else " (defaulted)"))
            blocks.append(Paragraph("; ".join(facts) + "."))
            if rp.note:
                blocks.append(Paragraph(rp.note, "warn"))
            rows: list[tuple[str, ...]] = []
            closed = []
            for direction, kind in (("ingress", "Ingress"), ("egress", "Egress")):
                if kind not in p.policy_types:
                    continue
                direction_rows = _rule_rows(p, direction, evidence)
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
                   node_peers: Sequence[dict] = ()) -> list[Block]:
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
    dropped = dropped_attempt_facts(observed)
    if dropped:
        said = True
        blocks.append(Paragraph(
            f"{observed.aggregate_stats['dropped']:,} connection attempt(s) were dropped (a "
            "DROPPED or ERROR verdict at some observation point): not evidence, so no rule "
            "allows them (--include-dropped counts them as needed). Who tried what:"))
        blocks.append(Table(("Client", "Server", "Port", "Attempts", "First seen", "Last seen"),
                            tuple((d["client"], d["server"], _port_text(d), f"{d['attempts']:,}",
                                   when_text(d["first_seen"]), when_text(d["last_seen"]))
                                  for d in dropped[:MAX_ROWS]), numeric=(3,)))
        if len(dropped) > MAX_ROWS:
            blocks.append(Paragraph(f"{len(dropped) - MAX_ROWS} more row(s) not shown."))
    if skipped_edges:
        said = True
        blocks.append(Paragraph("Observed edges no rule was written for:"))
        blocks.append(Table(("Edge", "Why"), tuple(skipped_edges[:MAX_ROWS]), wrap=(1,)))
        if len(skipped_edges) > MAX_ROWS:
            blocks.append(Paragraph(f"{len(skipped_edges) - MAX_ROWS} more row(s) not shown."))
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
            "traffic from other nodes depends on the CNI. The hostNetwork pods are those the "
            "snapshot places on the node; which of them (or the kubelet) made a connection "
            "the flows cannot tell."))
        blocks.append(Table(("Node peer", "Connections", "hostNetwork pods on it"), tuple(
            (n["peer"], f"{n['connections']:,}",
             ", ".join(n["host_network_pods"]) or "none in the snapshot")
            for n in node_peers), numeric=(1,), wrap=(2,)))
    if warnings:
        said = True
        blocks.append(Paragraph("Warnings:"))
        blocks.append(Bullets(tuple(warnings)))
    if not said:
        blocks.append(Paragraph("Nothing: every input item was read and every flow attributed.",
                                "ok"))
    return blocks


def external_blocks(observed: ObservedTraffic) -> list[Block]:
    """External peers by the DNS name each connection had at its time, with their
    addresses; addresses with several names; addresses without one, and why."""
    ext = external_names(observed)
    if not (ext["names"] or ext["several_names"] or ext["unnamed"]):
        return []
    blocks: list[Block] = [
        Heading(1, "External peers by name"),
        Paragraph("Addresses outside the cluster that workloads connected to, by the DNS name "
                  "that resolved to the address for that client (else its namespace, else "
                  "anyone) when the connection was made: an answer holds for its TTL plus "
                  f"{ext['grace_period_seconds']} s. A NetworkPolicy admits the addresses "
                  "(ipBlock) and carries the names in the rule's evidence.")]
    if ext["names"]:
        blocks.append(Table(("Name", "Addresses", "Connections", "Clients", "Last seen"), tuple(
            (f"`{n['name']}`", ", ".join(n["addresses"]), f"{n['connections']:,}",
             ", ".join(n["clients"]), when_text(n["last_seen"]))
            for n in ext["names"][:MAX_ROWS]), numeric=(2,)))
    if ext["several_names"]:
        blocks.append(Paragraph("Several names held for one address at once (a shared front "
                                "end or CDN): every one is listed, none guessed.", "warn"))
        blocks.append(Table(("Address", "Names", "Connections", "Clients"), tuple(
            (g["address"], ", ".join(f"`{n}`" for n in g["names"]), f"{g['connections']:,}",
             ", ".join(g["clients"])) for g in ext["several_names"][:MAX_ROWS]), numeric=(2,)))
    if ext["unnamed"]:
        blocks.append(Paragraph("Addresses no DNS answer named at the time of the connection:"))
        blocks.append(Table(("Address", "Connections", "Clients", "Why"), tuple(
            (u["address"], f"{u['connections']:,}", ", ".join(u["clients"]), u["reason"] or "")
            for u in ext["unnamed"][:MAX_ROWS]), numeric=(1,)))
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
    # the evidence per rule is read for NetworkPolicies (the other dialects' rules are
    # in their YAML, with the same evidence comments)
    network_docs = [d for d in synth.policies if d.manifest.get("kind") == "NetworkPolicy"]
    reviewed = [ReviewedPolicy(p, policy_file(doc.namespace),
                               f"{doc.workload[0]}/{doc.workload[1]}" if doc.workload else None)
                for p, doc in zip(parsed, network_docs)]
    evidence = policy_evidence(observed, parsed, evaluator)
    scope = ", ".join(synth.namespaces) or "no namespace"
    blocks: list[Block] = [
        summary_block(observed),
        Paragraph(f"{len(synth.policies)} NetworkPolicies for namespace(s) {scope}, one file per "
                  "namespace beside this report. Review every rule against its evidence before "
                  "applying."),
    ]
    blocks += graph_blocks(observed)
    blocks += verification_blocks(verification)
    blocks += policy_blocks(reviewed, evidence)
    blocks += external_blocks(observed)
    blocks += skipped_blocks(observed, skipped_edges(observed, synth), synth.idle_workloads,
                             list(observed.warnings)
                             + list(synth.warnings), node_peer_facts(observed))
    title = scope if len(synth.namespaces) <= 4 else f"{len(synth.namespaces)} namespaces"
    return Document(f"flowpol review: {title}", tuple(blocks))


def write_review(out_dir: Path, observed: ObservedTraffic, synth: SynthesisResult,
                 verification: dict | None,
                 checked: tuple[Sequence[NetworkPolicy], Evaluator] | None = None
                 ) -> list[Path]:
    """report.md and report.html for `flowpol generate`, beside its YAML."""
    return write_documents(out_dir, generate_review(observed, synth, verification, checked))
