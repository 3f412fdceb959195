"""report.md and report.html: what a reviewer reads before applying policies.

Content, in order: a summary; the workload-to-workload graph (Mermaid in Markdown, an
inline SVG in HTML); the verification result; what the API server is declared to call;
the idle workloads and what happens to them; the cluster's existing policies and what
they allow beyond the generated ones; per policy a table of its rules with their
evidence (connections, first and last seen, the inputs and Services they came through);
external peers by DNS name; then everything skipped or unresolved and why.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from generator.output.files import atomic_write, policy_file
from generator.pipeline import ObservedTraffic
from generator.output.report import (
    DIFF_POINTER, apiserver_traffic, connection_counts, dropped_attempt_facts, external_names,
    node_peer_facts, skipped_edges, unresolved_summary,
)
from generator.verify.check import verification_dict, verification_text
from generator.review.document import (
    Block, Bullets, Document, GraphBlock, Heading, Paragraph, Table, to_html, to_markdown,
)
from generator.review.evidence import (
    EntryEvidence, duration_text, entry_evidence, input_names, recording_span, when,
)
from generator.review.graph import graph_from_edges
from generator.synthesize import model as m
from generator.synthesize.synthesis import SynthesisResult
from generator.verify import cilium_text
from generator.verify.cilium_policy import KINDS as CILIUM_KINDS
from generator.verify.cilium_policy import CiliumPolicy, parse_cilium_policy
from generator.verify.evaluator import Evaluator, RuleEntry
from generator.verify.policy import NetworkPolicy, PolicyPeer, PolicyPort, parse_policies
from generator.verify.union import UnionCheck
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
    # (direction, port as described) -> why it is allowed without observation (declared)
    declared: tuple[tuple[str, str, str], ...] = ()


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


def _entry_row(ref: str, peer_text: str, port_text: str, ev: EntryEvidence | None,
               why: str | None = None) -> tuple[str, ...]:
    """``why``: why the entry is allowed without observation (a declared port)."""
    if ev is None:
        return (ref, peer_text, port_text, "—", "0", "—", "—",
                f"not observed; {why}" if why else "not observed")
    source = input_names(ev.inputs)
    if ev.services:
        source += "; via Service " + ", ".join(ev.services)
    observed_peers = ", ".join(ev.peers[:6]) + (
        f" +{len(ev.peers) - 6} more" if len(ev.peers) > 6 else "")
    return (ref, peer_text, port_text, observed_peers, f"{ev.connections:,}",
            when(ev.first_seen), when(ev.last_seen), source)


def _rows(policy_id: str, direction: str, items, evidence: dict[RuleEntry, EntryEvidence],
          declared: dict[tuple[str, str], str] | None = None) -> list[tuple[str, ...]]:
    """``items``: per rule, its index, its (peer index, text) and (port index, text);
    ``declared``: (direction, port text) -> why it is allowed without observation."""
    rows = []
    for i, peers, ports in items:
        first_row = True
        for j, peer_text in peers:
            for k, port_text in ports:
                ref = f"`{direction}[{i}]`" if first_row else ""
                first_row = False
                rows.append(_entry_row(ref, peer_text, port_text,
                                       evidence.get((policy_id, direction, i, j, k)),
                                       (declared or {}).get((direction, port_text))))
    return rows


def _rule_rows(policy: NetworkPolicy, direction: str, evidence: dict[RuleEntry, EntryEvidence],
               declared: dict[tuple[str, str], str] | None = None) -> list[tuple[str, ...]]:
    rules = policy.ingress if direction == "ingress" else policy.egress
    items = [(i, [(j, describe_peer(p, policy.namespace)) for j, p in enumerate(rule.peers)]
              or [(None, ANY_PEER)],
              [(k, describe_port(p)) for k, p in enumerate(rule.ports)] or [(None, "every port")])
             for i, rule in enumerate(rules)]
    return _rows(policy.id, direction, items, evidence, declared)


def _cilium_rule_rows(policy: CiliumPolicy, direction: str,
                      evidence: dict[RuleEntry, EntryEvidence],
                      declared: dict[tuple[str, str], str] | None = None
                      ) -> list[tuple[str, ...]]:
    """Allow rules with their evidence; a rule whose L3 list is explicitly empty admits
    nothing and has no row."""
    rules = policy.ingress if direction == "ingress" else policy.egress
    items = [(i, *cilium_text.rule_items(policy, rule)) for i, rule in enumerate(rules)]
    return _rows(policy.id, direction, [it for it in items if it[1]], evidence, declared)


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
                why = {(d, port): why for d, port, why in rp.declared}
                direction_rows = (_cilium_rule_rows(p, direction, evidence, why)
                                  if isinstance(p, CiliumPolicy)
                                  else _rule_rows(p, direction, evidence, why))
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


def declared_blocks(observed: ObservedTraffic, synth: SynthesisResult) -> list[Block]:
    """What the cluster declares the API server calls, and the traffic seen from it."""
    calls = apiserver_traffic(observed)
    if not synth.declared and not synth.declared_problems and not calls:
        return []
    blocks: list[Block] = [Heading(1, "What the API server calls")]
    api = synth.apiserver
    where = ", ".join(f"`{s.display()}`" for s in api.sources) if api and api.sources else None
    blocks.append(Paragraph(
        "Admission webhooks, aggregated APIs and CRD conversion webhooks are called by the API "
        "server whether or not the recording shows it; their backends accept it on the "
        "Service's targetPort. "
        + (f"It calls from {where} ({api.origin})." if where else
           "Where it calls from is unknown: give it with `--apiserver-cidr`."),
        None if where else "warn"))
    if synth.declared:
        blocks.append(Table(
            ("Backend", "Port", "Declared by", "failurePolicy", "What was written",
             "Connections observed", "Admitted from"),
            tuple((u.target.workload.display(), f"{u.target.protocol}/{u.target.port}",
                   u.target.call.display() + f" via Service {u.target.service[0]}/"
                   f"{u.target.service[1]}:{u.target.service[2]}",
                   u.target.call.failure_policy or "—", u.status, f"{u.calls:,}",
                   ", ".join(u.admits) or "—") for u in synth.declared[:MAX_ROWS]),
            numeric=(5,), wrap=(2, 4, 6)))
    if synth.declared_problems:
        blocks.append(Paragraph("Declared, but no rule can be written:", "warn"))
        blocks.append(Bullets(tuple(f"`{p.call.display()}`: {p.reason}"
                                    for p in synth.declared_problems[:MAX_ROWS])))
    if calls:
        blocks.append(Paragraph("Connections observed from the API server:"))
        blocks.append(Table(("From", "To", "Port", "Connections", "Last seen"), tuple(
            (e.src.display(), e.dst.display(), f"{e.protocol}/{e.port}", f"{e.count:,}",
             when(e.last_seen)) for e in calls[:MAX_ROWS]), numeric=(3,)))
    return blocks


def idle_blocks(synth: SynthesisResult) -> list[Block]:
    """Workloads in scope the recording never showed, and what the policies do to them."""
    idle = synth.model.idle if synth.model else ()
    if not idle:
        return []
    return [
        Heading(1, "Idle workloads"),
        Paragraph("Workloads in scope with no observed traffic: a default-deny would isolate "
                  "them on evidence of nothing. Held out, a policy of their own (selecting "
                  "exactly their pods) allows everything the default-deny would deny, until a "
                  "recording shows what they need; `--isolate-idle` isolates them instead.",
                  "warn" if any(i.status != m.HELD_OUT for i in idle) else None),
        Table(("Workload", "Why idle", "What happens", "Next run"), tuple(
            (i.workload.display(), i.reason,
             i.status + (f" (`{i.name}`)" if i.name else "") + (f": {i.note}" if i.note else ""),
             when(i.next_run) if i.next_run is not None else "—") for i in idle[:MAX_ROWS]),
            wrap=(1, 2)),
    ]


def existing_blocks(union: UnionCheck | None) -> list[Block]:
    """The cluster's existing policies that select pods in scope, and their extra reach."""
    if union is None or (not union.existing and not union.unreadable):
        return []
    blocks: list[Block] = [Heading(1, "Existing policies"), Paragraph(
        "NetworkPolicies are additive: these stay in force after the generated ones are "
        "applied (flowpol deletes and rewrites none of them), and what they allow stays "
        f"allowed. {DIFF_POINTER}.")]
    if union.existing:
        blocks.append(Table(("Policy", "policyTypes", "Selects"), tuple(
            (e.policy + (" (replaced by the generated policy of that name)" if e.replaced
                         else ""), ", ".join(e.policy_types), ", ".join(e.selects))
            for e in union.existing[:MAX_ROWS]), wrap=(2,)))
    if union.unreadable:
        blocks.append(Bullets(tuple(f"could not read {u}" for u in union.unreadable)))
    if union.effective is not None:
        d = verification_dict(union.effective)
        blocks.append(Paragraph(f"The effective set (generated + existing): "
                                f"{verification_text(d)}.",
                                "bad" if d["denied_connections"] else "ok"))
    if union.extra:
        blocks.append(Paragraph("What existing policies allow beyond the generated rules "
                                "(examples of each kind of peer):", "warn"))
        blocks.append(Table(("Policy rule", "Peer", "Port", "Applies to", "Lets through"), tuple(
            (f"{x.policy} `{x.rule}`", x.peer, x.port, x.workload,
             "; ".join(x.reaches) + (f"; and {x.more} more" if x.more else ""))
            for x in union.extra[:MAX_ROWS]), wrap=(1, 4)))
    return blocks


def skipped_blocks(observed: ObservedTraffic, skipped_edges: Sequence[tuple[str, str]] = (),
                   warnings: Sequence[str] = (), node_peers: Sequence[dict] = ()) -> list[Block]:
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
            # by input and line: which reader reported first depends on how the inputs
            # interleaved (time order, --jobs, batches), and the report must not
            blocks.append(Bullets(tuple(f"e.g. `{e}`"
                                        for e in r.examples_in_input_order()[:10])))
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


def _declared_ports(synth: SynthesisResult) -> dict[tuple[str, str], tuple[tuple[str, str, str], ...]]:
    """(namespace, policy name) -> (direction, port as the tables describe it, why) for
    the ports the API server is declared to call."""
    out: dict[tuple[str, str], dict[tuple[str, str], set[str]]] = {}
    for p in synth.model.workloads if synth.model else ():
        for rule in p.ingress:
            for rp in rule.ports:
                if rp.declared:
                    port = describe_port(PolicyPort(rp.port.protocol, rp.port.port,
                                                    rp.port.end_port))
                    out.setdefault((p.namespace, p.name), {}).setdefault(
                        ("ingress", port), set()).update(d.display() for d in rp.declared)
    return {k: tuple((d, port, "declared: " + ", ".join(sorted(why)))
                     for (d, port), why in sorted(v.items())) for k, v in out.items()}


def generate_review(observed: ObservedTraffic, synth: SynthesisResult,
                    verification: dict | None,
                    checked: tuple[Sequence[NetworkPolicy], Evaluator] | None = None,
                    union: UnionCheck | None = None) -> Document:
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
    declared = _declared_ports(synth)
    reviewed = [ReviewedPolicy(p, policy_file(doc.namespace), _workload(doc),
                               declared=declared.get((doc.namespace, doc.name), ()))
                for p, doc in zip(parsed, network_docs)]
    reviewed += [ReviewedPolicy(p, policy_file(doc.namespace), _workload(doc),
                                declared=declared.get((doc.namespace, doc.name), ()))
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
    blocks += declared_blocks(observed, synth)
    blocks += idle_blocks(synth)
    blocks += existing_blocks(union)
    blocks += policy_blocks(reviewed, evidence)
    blocks += external_blocks(observed)
    blocks += skipped_blocks(observed, skipped_edges(observed, synth),
                             list(observed.warnings) + list(synth.warnings),
                             node_peer_facts(observed))
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
                 checked: tuple[Sequence[NetworkPolicy], Evaluator] | None = None,
                 union: UnionCheck | None = None) -> list[Path]:
    """report.md and report.html for `flowpol generate`, beside its YAML."""
    return write_documents(out_dir, generate_review(observed, synth, verification, checked,
                                                    union))
