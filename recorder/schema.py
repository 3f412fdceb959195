"""The flow-record schema: the contract between the recorder and the generator.

Documented in docs/flow-schema.md. Version 1 (revision 2). Every line of a flow log is
one JSON object with a ``kind`` field: ``header`` (first line, optional), ``flow``,
``ip`` (an IP timeline record) or ``name`` (a DNS answer: a name bound to an address for
a client; revision 2). Times are integers in nanoseconds since the Unix epoch inside
Python and RFC 3339 strings with nanoseconds (UTC, ``Z``) in JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SCHEMA_NAME = "flowpol.flowlog"
SCHEMA_VERSION = 1
# Compatible additions within a major version; the header says which a writer knew.
# 1: flow and ip lines. 2: name lines (DNS bindings). Readers never refuse a revision:
# what they do not know they skip and count.
SCHEMA_REVISION = 2

Protocol = Literal["TCP", "UDP", "SCTP", "ICMP", "ICMPv6"]
PROTOCOLS: tuple[str, ...] = ("TCP", "UDP", "SCTP", "ICMP", "ICMPv6")

# What kind of peer a source says an endpoint is, when it knows (Hubble's reserved:
# identities). ``None`` = the source does not say.
PeerKind = Literal["pod", "host", "remote-node", "world", "kube-apiserver", "unknown"]


@dataclass(frozen=True, slots=True)
class Workload:
    kind: str  # Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet, Pod, ...
    name: str


@dataclass(frozen=True, slots=True)
class EndpointHints:
    """What a source already knows about one side of a flow besides the address.

    All fields optional: a pcap knows nothing, Hubble knows most of it. ``labels`` is a
    sorted tuple of (key, value) so the record stays hashable.
    """

    namespace: str | None = None
    pod: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    workload: Workload | None = None
    peer_kind: str | None = None  # one of PeerKind
    names: tuple[str, ...] = ()  # DNS names a source saw for this address

    def is_empty(self) -> bool:
        return (
            self.namespace is None
            and self.pod is None
            and not self.labels
            and self.workload is None
            and self.peer_kind is None
            and not self.names
        )


NO_HINTS = EndpointHints()


@dataclass(frozen=True, slots=True)
class ServiceRef:
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One connection, or an aggregate of identical connections in a time window.

    ``dst_ip``/``dst_port`` is what the observer saw (possibly a ClusterIP and service
    port). ``xlated_ip``/``xlated_port`` is the destination after DNAT when the source
    knows it (conntrack reply tuple, Hubble ``IP.destination_xlated``), i.e. the backend
    pod and targetPort. ``src_port`` is kept only for single observations; aggregates
    drop it (ephemeral). For ICMP, ``dst_port`` carries the ICMP type and is None
    when unknown.
    ``inferred`` marks a record whose client/server direction was guessed (capture
    started mid-connection). ``input`` names the file (or ``capture:IFACE``) it came
    from; ``source_format`` the reader (hubble, conntrack, pcap, capture, flowlog).
    """

    first_seen: int
    last_seen: int
    protocol: str
    src_ip: str
    dst_ip: str
    dst_port: int | None
    src_port: int | None = None
    xlated_ip: str | None = None
    xlated_port: int | None = None
    count: int = 1
    node: str | None = None
    src: EndpointHints = NO_HINTS
    dst: EndpointHints = NO_HINTS
    service: ServiceRef | None = None
    verdict: str | None = None  # FORWARDED, DROPPED, ... when the source has one
    source_format: str = ""
    input: str = ""
    inferred: bool = False
    time_known: bool = True  # False for a conntrack -L dump stamped with the dump time

    @property
    def server_ip(self) -> str:
        return self.xlated_ip or self.dst_ip

    @property
    def server_port(self) -> int | None:
        return self.xlated_port if self.xlated_port is not None else self.dst_port


@dataclass(frozen=True, slots=True)
class IpTimelineRecord:
    """Who held an IP between two times: written by the recorder's pod watch.

    ``valid_to`` None = still held when the record was written.
    """

    ip: str
    valid_from: int
    valid_to: int | None
    namespace: str
    pod: str
    labels: tuple[tuple[str, str], ...] = ()
    owner: Workload | None = None  # root owner when known (Deployment, not ReplicaSet)
    node: str | None = None
    host_network: bool = False


@dataclass(frozen=True, slots=True)
class NameBinding:
    """A DNS answer: ``name`` resolved to ``address`` for the client at ``client_ip``.

    One record per (name, address) of an answer, aggregated like flows: ``count``
    answers in a window, the first at ``first_seen`` and the last at ``last_seen``, whose
    TTL was ``ttl`` seconds. The binding holds from ``first_seen`` until ``last_seen +
    ttl`` (the generator adds a grace period). ``name`` is the name the client asked for
    (a CNAME chain is followed to the addresses), in canonical form (``dns_name``).
    ``client``: what the source knew about the client (Hubble: namespace, pod).
    """

    first_seen: int
    last_seen: int
    client_ip: str
    name: str
    address: str
    ttl: int
    count: int = 1
    node: str | None = None
    client: EndpointHints = NO_HINTS
    source_format: str = ""
    input: str = ""


@dataclass(frozen=True, slots=True)
class FlowLogHeader:
    schema: str = SCHEMA_NAME
    version: int = SCHEMA_VERSION
    created_by: str = "flowpol"
    node: str | None = None
    revision: int = SCHEMA_REVISION


LogRecord = FlowRecord | IpTimelineRecord | NameBinding

# RFC 1035 2.3.4 / RFC 2181 11: labels of 1-63 octets, a name of at most 253 characters
# in text form without the root dot. Host names are letters, digits and hyphens (RFC
# 1123 2.1); underscores occur in service names (RFC 2782) and resolvers answer them.
# Anything else (spaces, escapes, non-ASCII, "*") is not a name a policy can carry.
_DNS_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
MAX_DNS_NAME = 253
# RFC 2181 8: a TTL with the most significant bit set is treated as zero.
MAX_TTL = (1 << 31) - 1


def dns_name(text: object) -> str | None:
    """A DNS name in canonical form: lower case (names compare case-insensitively,
    RFC 4343), without the root's trailing dot; None when it is no valid host name.

    The one place names from inputs are checked: whatever it returns is safe to write
    into YAML comments, reports and policy fields."""
    if type(text) is not str:
        return None
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > MAX_DNS_NAME or not name.isascii():
        return None
    name = name.lower()
    for label in name.split("."):
        if not _DNS_LABEL.fullmatch(label):
            return None
    return name


def dns_ttl(value: int) -> int:
    """An answer's TTL in seconds as a resolver must read it (RFC 2181 8)."""
    return value if 0 <= value <= MAX_TTL else 0


def labels_tuple(labels: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    if not labels:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))
