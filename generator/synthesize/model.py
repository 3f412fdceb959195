"""The neutral policy model: what each workload may do, per direction, with its evidence.

Synthesis builds it from the observed edges; renderers turn it into a dialect
(``generator.synthesize.render``); the review report and ``diff`` read it. It says
nothing about YAML, field names or how a CNI spells a peer: a peer is a workload, a
namespace, a node, the API server, an external network (with the names DNS gave its
addresses) or the cluster DNS, and a port is a protocol and a (target) port. A port is
allowed because it was observed (its evidence), because the cluster declares that the
API server calls it (``Declared``), or both.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.inventory.refs import WorkloadRef

# Peer kinds of the model. A ``Peer`` of resolution (generator.resolve.edges) is one
# side of a connection; a ``PolicyPeer`` is what a rule admits.
WORKLOAD = "workload"  # the pods of one root owner, by their stable selector
NAMESPACE = "namespace"  # every pod of a namespace
NODE = "node"  # node addresses (kubelet, hostNetwork pods, SNAT)
APISERVER = "kube-apiserver"  # the API server's addresses
EXTERNAL = "external"  # addresses outside the cluster
PEER_KINDS = (WORKLOAD, NAMESPACE, NODE, APISERVER, EXTERNAL)


@dataclass(frozen=True, slots=True, order=True)
class PodSelector:
    """Labels and expressions that select exactly a workload's pods; never empty."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # key, op, values


@dataclass(frozen=True, slots=True, order=True)
class PolicyPeer:
    """One peer a rule admits.

    ``workload``/``selector``: a WORKLOAD peer (``namespace`` is the workload's).
    ``cidr``: NODE, APISERVER and EXTERNAL peers, as the rule admits them (an external
    peer may be aggregated to a wider prefix, ``--cidr-prefix``; an APISERVER peer is one
    address of the ``default/kubernetes`` EndpointSlice or a ``--apiserver-cidr`` range).
    ``addresses``: the observed addresses behind it (an APISERVER peer's: the
    EndpointSlice's, observed or not). ``names``: node names of a NODE peer (of an
    APISERVER peer: the nodes that have its address, a control plane); for an EXTERNAL
    peer of an egress rule, the DNS names its connections were attributed to at their
    time (generator.resolve.names), sorted: every connection behind the peer had
    exactly these names, so ``()`` means none had a name; the same address may be
    behind a named and an unnamed peer. ``members``: how a reviewer reads each observed
    peer behind this one (and a declared APISERVER peer).
    """

    kind: str
    namespace: str | None = None
    workload: WorkloadRef | None = None
    selector: PodSelector | None = None
    cidr: str | None = None
    addresses: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class PortSpec:
    """A protocol and a destination port (a number, or a name resolved per pod);
    ``port`` None means every port of the protocol, ``end_port`` a range."""

    protocol: str
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What was observed for one peer and port: connections, first and last seen (ns),
    the Services the clients dialled (namespace, name) and the inputs that showed it."""

    connections: int
    first_seen: int
    last_seen: int
    services: tuple[tuple[str, str], ...] = ()
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Declared:
    """Why a port is allowed whether or not a connection was observed: the cluster
    declares that the API server calls it (``generator.inventory.declared``).

    ``kind``/``name``: the declaring object (ValidatingWebhookConfiguration,
    MutatingWebhookConfiguration, APIService, CustomResourceDefinition); ``webhook``: the
    webhook's name in a webhook configuration; ``failure_policy``: webhooks only, Fail or
    Ignore; ``service``: the Service and port the API server dials (namespace, name, port).
    """

    kind: str
    name: str
    webhook: str | None
    failure_policy: str | None
    service: tuple[str, str, int]

    def display(self) -> str:
        text = f"{self.kind}/{self.name}"
        if self.webhook:
            text += f" webhook {self.webhook}"
        if self.failure_policy:
            text += f" (failurePolicy {self.failure_policy})"
        return text

    def sort_key(self) -> tuple:
        return (self.kind, self.name, self.webhook or "", self.service)


@dataclass(frozen=True, slots=True)
class RulePort:
    port: PortSpec
    evidence: Evidence | None  # None: allowed without observation (declared, baseline)
    # The objects that declare the API server calls this port (empty: observed only).
    # Evidence and declarations together: declared, and calls were seen.
    declared: tuple[Declared, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """Traffic to (egress) or from (ingress) one peer on some ports."""

    peer: PolicyPeer
    ports: tuple[RulePort, ...]


@dataclass(frozen=True, slots=True)
class DnsAccess:
    """Egress to the cluster resolvers, UDP and TCP on their real targetPorts.

    ``resolvers``: the resolver workloads (kube-dns/CoreDNS behind the DNS Service);
    ``node_local_ips``: addresses node-local-dns listens on (a hostNetwork listener);
    ``cluster_ips``: the DNS Service's ClusterIPs (one may be a node-local address);
    ``node_local_source``: where those addresses were read, or that they were assumed.
    ``evidence``: DNS lookups observed from the pods the rule is for, if any.
    """

    resolvers: tuple[PolicyPeer, ...]
    node_local_ips: tuple[str, ...]
    udp_ports: tuple[int, ...]
    tcp_ports: tuple[int, ...]
    cluster_ips: tuple[str, ...] = ()
    node_local_source: str = ""
    evidence: Evidence | None = None


@dataclass(frozen=True, slots=True)
class WorkloadPolicy:
    """What one workload may do. Both directions are isolated: what is not listed is
    denied (``dns``: DNS access carried by this policy itself, when no namespace
    baseline does)."""

    namespace: str
    workload: WorkloadRef
    selector: PodSelector
    name: str  # the policy's name, unique in its namespace
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    dns: DnsAccess | None = None
    edges_in: int = 0
    edges_out: int = 0
    connections: int = 0
    first_seen: int | None = None
    last_seen: int | None = None


@dataclass(frozen=True, slots=True)
class NamespaceBaseline:
    """Per namespace: every pod isolated for ingress and egress, DNS allowed."""

    namespace: str
    dns: DnsAccess | None


# What happens to a workload in scope that the recording never showed (``IdleWorkload``).
HELD_OUT = "held out"  # a policy of its own allows everything the baseline denies it
ISOLATED = "isolated"  # --isolate-idle: the baseline isolates it (plus declared rules)
NOT_HELD_OUT = "isolated: cannot be held out"  # no selector singles it out
ALREADY_ISOLATED = "already isolated"  # existing policies isolate it for both directions
NOT_ISOLATED = "not isolated"  # no default-deny: nothing isolates it


@dataclass(frozen=True, slots=True)
class IdleWorkload:
    """A workload in scope with no observed connection: an idle Deployment, one scaled
    to zero, a CronJob that did not fire, a Job. A default-deny would isolate it on
    evidence of nothing, so by default it is held out: ``status`` HELD_OUT and an
    allow-everything policy named ``name`` selects exactly its pods (``selector``) for
    ``directions`` ("ingress", "egress": those no existing policy isolates already).

    ``reason``: why it is idle, for people; ``note``: what its status means;
    ``next_run``: a CronJob's next scheduled run after the recording (ns), when known.
    """

    namespace: str
    workload: WorkloadRef
    reason: str
    status: str
    note: str = ""
    selector: PodSelector | None = None
    name: str | None = None
    directions: tuple[str, ...] = ()
    next_run: int | None = None


@dataclass(frozen=True, slots=True)
class PolicyModel:
    """Everything a policy set for the namespaces in scope says, in no dialect.
    ``baselines`` is empty without default-deny. ``idle``: workloads in scope nothing
    was observed of, and what the baseline does to them (HELD_OUT ones need a policy
    of their own in every dialect)."""

    namespaces: tuple[str, ...]
    baselines: tuple[NamespaceBaseline, ...]
    workloads: tuple[WorkloadPolicy, ...]
    idle: tuple[IdleWorkload, ...] = ()
