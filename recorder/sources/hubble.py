"""Reader for Hubble flow JSON: ``hubble observe -o json|jsonpb``, the Hubble exporter's
events.log, legacy bare flow objects, and files holding one JSON array of those.

One connection is counted once:

* TCP: only the SYN without ACK. Everything else on a TCP connection (SYN-ACK, ACK,
  data, FIN, RST, and L7 records, which carry no flags) is ignored as ``tcp-not-syn``.
* UDP/SCTP: every packet that is not a reply; repeats of one 5-tuple are merged (below,
  and by the aggregator downstream, for which the ``src_port`` stays on the record).
* ICMP: echo requests only (type 8 / ICMPv6 128); replies and errors are ignored.
* Socket-LB trace events (``Type: SOCK``) are not packets (they lack a port); the
  packets of the same connection carry the backend address: ``sock-trace``.
* L7 DNS responses (``l7.dns`` of a ``RESPONSE``, from Cilium's DNS proxy) become
  NameBinding records: ``query`` bound to each of ``ips`` for the client, the flow's
  destination, for ``ttl`` seconds. NXDOMAIN and other ``rcode`` values, responses
  without addresses and queries that are no host name bind nothing and are counted.
* ``is_reply`` true (camelCase ``isReply``; ``reply`` on Hubble before 1.10) -> ignored
  as ``reply``. ``is_reply`` absent means unknown: the packet is kept, except a UDP
  packet from port 53 to another port, which is a DNS answer (``reply-inferred``).
* Verdicts DROPPED and ERROR are kept on the records: the aggregator decides (a
  connection forwarded by one node and dropped by the other is dropped) and leaves
  dropped connections out unless ``--include-dropped``.
* The same connection seen again soon (another observation point, a policy-verdict
  event, a retransmitted SYN, the next packet of a UDP stream) is ignored as
  ``repeated-observation``: same ``IP`` and ``l4`` bytes within 10 s (TCP) or
  ``ReadOptions.udp_window_ns`` (UDP/SCTP) of the last time it was seen.

Ignored lines are counted per reason (``report.ignore``); broken lines (invalid JSON,
a flow with a bad time) are skipped with path:line (``report.skip``).

Speed: half of a typical capture is replies, most TCP packets are not a SYN, and every
connection is seen at several observation points. Such lines are recognised by byte
tests before any JSON parsing (see ``_Reader.records``). For every well-formed line
the byte tests give the answer the parsed path would give; a malformed line that still
looks like a reply is counted as a reply rather than as invalid JSON. Spaced-out JSON
(not what Hubble writes) skips the byte tests and is only slower; its repeated
observations are then merged by the aggregator instead. The lines that are kept, when
in Hubble's exact compact form, are read by ``hubblefast.FastLines`` without a full
parse; anything else it leaves to the parsed path (``_Reader.from_object``).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import Any, BinaryIO, Iterable, Iterator

import orjson

from recorder.aggregate import DEDUP_NS, RecentTable
from recorder.flowlog import json_error_detail
from recorder.report import ReadReport
from recorder.schema import (
    NO_HINTS, EndpointHints, FlowRecord, LogRecord, NameBinding, ServiceRef, Workload, dns_name,
    dns_ttl,
)
from recorder.sources import jsonframes
from recorder.sources.base import SNIFF_BYTES, ReadOptions, Source, to_first_content
from recorder.sources.fastrecord import flow_record_maker
from recorder.sources.hubblefast import FastLines
from recorder.timefmt import parse_time

NAME = "hubble"

_NON_FLOW_KINDS = {
    "node_status": "node_status",
    "nodeStatus": "node_status",
    "lost_events": "lost_events",
    "lostEvents": "lost_events",
    "agent_event": "agent_event",
    "agentEvent": "agent_event",
    "debug_event": "debug_event",
    "debugEvent": "debug_event",
}
# Keys that mark a bare (legacy) flow object.
_BARE_FLOW_KEYS = ("IP", "l4", "verdict", "event_type", "eventType", "Type")
_WRAPPER_KEYS = frozenset({"node_name", "nodeName", "time"})
_MAX_NON_FLOW_REASONS = 16

# A TCP SYN seen again this soon is the same connection: another observation point, a
# policy-verdict event or a retransmission (the aggregator uses the same window).
_TCP_REPEAT_NS = DEDUP_NS
_DROP_VERDICTS = (b"DROPPED", b"ERROR")
_ICMP_ECHO_REQUEST = {"ICMP": 8, "ICMPv6": 128}
_L4_PROTOCOL = {"TCP": "TCP", "UDP": "UDP", "SCTP": "SCTP", "ICMPv4": "ICMP", "ICMPv6": "ICMPv6"}

_PEER_KIND_BY_LABEL = {
    "reserved:kube-apiserver": "kube-apiserver",  # first: may come with remote-node/host
    "reserved:host": "host",
    "reserved:remote-node": "remote-node",
    "reserved:world": "world",
    "reserved:world-ipv4": "world",
    "reserved:world-ipv6": "world",
}
_PEER_KIND_ORDER = ("kube-apiserver", "host", "remote-node", "world")
# Cilium-internal labels: namespace labels, service account, cluster name. The pod's own
# labels are what a podSelector can use.
_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
_INTERNAL_LABEL_PREFIXES = ("io.cilium.k8s.", "io.cilium.", _NAMESPACE_LABEL)
# (pod labels, peer kind from reserved: labels, namespace from the namespace label)
_ParsedLabels = tuple[tuple[tuple[str, str], ...], "str | None", "str | None"]

_SNIFF_MARKER = re.compile(
    rb'"flow"\s*:\s*\{|"(?:node_status|nodeStatus|lost_events|lostEvents|agent_event|'
    rb'agentEvent|debug_event|debugEvent)"\s*:|"l4"\s*:\s*\{|"IP"\s*:\s*\{'
)


# ----------------------------------------------------------------------------- sniff


def _looks_like_hubble(obj: Any) -> bool:
    if not isinstance(obj, dict) or "kind" in obj:  # "kind" = a flowpol flow log
        return False
    if isinstance(obj.get("flow"), dict):
        return True
    return any(k in obj for k in _NON_FLOW_KINDS) or any(k in obj for k in _BARE_FLOW_KEYS)


def sniff(head: bytes) -> bool:
    s = head.lstrip()
    if s.startswith(b"["):
        s = s[1:].lstrip()
        return s.startswith(b"{") and _SNIFF_MARKER.search(s) is not None
    if not s.startswith(b"{"):
        return False
    line = s.split(b"\n", 1)[0]
    try:
        return _looks_like_hubble(orjson.loads(line))
    except orjson.JSONDecodeError:
        # A first line cut off by the sniff window or truncated: judge by its keys.
        return b'"kind"' not in line and _SNIFF_MARKER.search(line) is not None


# ------------------------------------------------------------------ byte-level tests


# The start of a flow as Hubble prints it (protobuf field order, compact): time,
# optional uuid, verdict, optional ethernet, IP, l4. Groups: time, verdict, the
# connection's bytes ("IP":{...},"l4":{"P":{ports and flags, up to the first "}"),
# the protocol, the l4 body. Lines that do not match (other field orders, drops with
# a drop_reason, ICMP) take the parsed path. Possessive quantifiers: no alternative
# could match after any of them (each is followed by a byte it excludes, or by a key
# the skipped text cannot start with), and not keeping backtracking state makes the
# match a third cheaper.
_FLOW_HEAD = re.compile(
    rb'\{(?:"flow":\{)?+"time":"([^"]*+)",(?:"uuid":"[^"]*+",)?+"verdict":"([A-Z_]++)",'
    rb'(?:"ethernet":\{[^}]*+\},)?+("IP":\{[^}]*+\},"l4":\{"(TCP|UDP|SCTP)":\{([^}]*+))'
)
# An L7 record's event_type (protobuf field 19) sits between l7 (15) and is_reply (26),
# a few hundred bytes before is_reply; 129 is Cilium's MessageTypeAccessLog (L7).
_EVENT_TYPE = b'ype":{"type":'
_EVENT_TYPE_SPAN = 768
_ACCESS_LOG = b"129"
# Where is_reply can be: near the end (only interface, Summary and a few late fields
# follow it). A line that has it further up takes the parsed path.
_REPLY_TAIL = 768
_BATCH = 256  # lines handled at a time after the byte tests (see _Reader.records)


# ------------------------------------------------------------------- identity hints


class _Hints:
    """Endpoint JSON -> EndpointHints, memoised: a cluster has few distinct endpoints."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], EndpointHints] = {}
        self._labels: dict[tuple[str, ...], _ParsedLabels] = {}
        # (namespace, pod) -> (labels list, workloads list, hints): comparing the
        # parsed lists is cheaper than hashing them. Both are compared, so the hints of
        # an endpoint depend on its content only, never on the lines before it.
        self._by_pod: dict[tuple[Any, Any], tuple[Any, Any, EndpointHints]] = {}

    def get(self, ep: Any, names: Any) -> EndpointHints:
        if not ep:
            if not names:
                return NO_HINTS
            ep = {}
        elif not isinstance(ep, dict):
            raise ValueError(f"an endpoint must be a JSON object, got {ep!r}")
        raw_labels = ep.get("labels")
        wls = ep.get("workloads")
        pod_key = (ep.get("namespace"), ep.get("pod_name") or ep.get("podName"))
        if not names and pod_key[1]:
            hit = self._by_pod.get(pod_key)
            if hit is not None and hit[0] == raw_labels and hit[1] == wls:
                return hit[2]
        labels = tuple(raw_labels) if raw_labels else ()
        wl = wls[0] if wls and isinstance(wls, list) and isinstance(wls[0], dict) else None
        key = (
            pod_key[0],
            pod_key[1],
            labels,
            (wl.get("kind"), wl.get("name")) if wl else None,
            tuple(names) if names else (),
        )
        hints = self._cache.get(key)
        if hints is None:
            hints = self._build(key)
            if len(self._cache) > 100_000:  # far more endpoints than any cluster has
                self._cache.clear()
                self._by_pod.clear()
                self._labels.clear()
            self._cache[key] = hints
        if not names and pod_key[1]:
            self._by_pod[pod_key] = (raw_labels, wls, hints)
        return hints

    def _build(self, key: tuple[Any, ...]) -> EndpointHints:
        namespace, pod, raw_labels, wl, names = key
        labels, peer_kind, label_namespace = self._parse_labels(raw_labels)
        # Endpoints on other nodes come without "namespace" but with the namespace label.
        namespace = namespace or label_namespace
        if peer_kind is None and namespace:
            peer_kind = "pod"
        workload = None
        if wl and wl[0] and wl[1]:
            workload = Workload(str(wl[0]), str(wl[1]))
        return EndpointHints(
            namespace=str(namespace) if namespace else None,
            pod=str(pod) if pod else None,
            labels=labels,
            workload=workload,
            peer_kind=peer_kind,
            names=tuple(sorted({str(n) for n in names})),
        )

    def _parse_labels(self, raw: tuple[str, ...]) -> _ParsedLabels:
        hit = self._labels.get(raw)
        if hit is not None:
            return hit
        kinds = set()
        pairs: dict[str, str] = {}
        namespace = None
        for item in raw:
            if type(item) is not str:
                continue
            kind = _PEER_KIND_BY_LABEL.get(item)
            if kind is not None:
                kinds.add(kind)
                continue
            if not item.startswith("k8s:"):
                continue  # reserved:, container:, cidr:, fqdn: ... say nothing about pods
            k, _, v = item[4:].partition("=")
            if k == _NAMESPACE_LABEL:
                namespace = v or None
            elif k and not k.startswith(_INTERNAL_LABEL_PREFIXES):
                pairs[k] = v
        peer_kind = next((k for k in _PEER_KIND_ORDER if k in kinds), None)
        result = (tuple(sorted(pairs.items())), peer_kind, namespace)
        self._labels[raw] = result
        return result


# ------------------------------------------------------------------------- records


class _BadFlow(ValueError):
    """A flow with a field we cannot use; becomes a report.skip with path:line."""


def _port(l4: dict[str, Any], snake: str, camel: str) -> int:
    v = l4.get(snake)
    if v is None:
        v = l4.get(camel, 0)  # proto3 JSON omits zero values
    if type(v) is not int:
        try:
            v = int(v)
        except (TypeError, ValueError):
            raise _BadFlow(f"{snake} is not a port number: {v!r}") from None
    if not 0 <= v <= 65535:
        raise _BadFlow(f"{snake} is out of range: {v}")
    return v


def _repeats(time_text: bytes, seen: list[int]) -> bool:
    """Is a packet at ``time_text`` another observation of the connection last seen at
    seen[0] (within seen[1] ns)? Updates seen[0]: a steady stream stays one flow."""
    try:
        t = parse_time(time_text.decode())
    except (ValueError, UnicodeDecodeError):
        return False  # the parsed path reports the bad time
    if abs(t - seen[0]) > seen[1]:
        return False
    if t > seen[0]:
        seen[0] = t
    return True


class _Reader:
    """State of one input: caches, counters and the line -> record logic."""

    def __init__(self, path: str, report: ReadReport, options: ReadOptions) -> None:
        self.path = path
        self.report = report
        self.udp_window_ns = options.udp_window_ns
        self.ignored: Counter[str] = Counter()
        self.noted: Counter[str] = Counter()
        self.hints = _Hints()
        self.strings: dict[str, str] = {}
        # Repeats matter within the longer of the two windows; as much again of slack
        # for lines slightly out of time order (several nodes' events interleaved).
        self.recent = RecentTable(
            1 << 16, horizon_ns=2 * max(_TCP_REPEAT_NS, options.udp_window_ns))
        self.new_record = flow_record_maker(
            "first_seen", "last_seen", "protocol", "src_ip", "dst_ip", "dst_port",
            "src_port", "node", "src", "dst", "service", "verdict",
            source_format=NAME, input=path,
        )
        self.fast = FastLines(self.hints.get, self.strings, self.new_record)
        self.lines = 0
        self.kept = 0

    def flush_counts(self) -> None:
        for reason, n in self.ignored.items():
            self.report.ignore(reason, n)
        self.ignored.clear()
        for what, n in self.noted.items():
            self.report.note(what, n)
        self.noted.clear()
        self.report.lines[self.path] += self.lines
        self.report.kept[self.path] += self.kept
        self.lines = self.kept = 0

    def records(self, items: Iterable[tuple[int, bytes]]) -> Iterator[FlowRecord]:
        """Lines (or array elements) with their line numbers -> kept records.

        Before any JSON parsing, byte tests settle most lines. They apply only to a
        whole line (``}`` and a newline last) starting the way Hubble prints a flow
        (``_FLOW_HEAD``; the reply test needs only the former); anything else takes
        the parsed path, which gives the same answers in the same order. The keys
        looked for, with their quotes and colon, cannot occur inside a JSON string
        (quotes in strings are escaped). ``is_reply`` sits near the end of a flow
        (searched from the end), ``IP`` and ``l4`` near the start.

        * ``..."is_reply":true...`` -> reply.
        * TCP whose l4 bytes lack ``"SYN":true`` or have ``"ACK":true`` -> not a SYN.
        * Not a drop (drops always reach the aggregator) and ``"Type":"SOCK"``
          after l4 -> sock-trace.
        * Otherwise its ``"IP":{...},"l4":{...`` bytes name the connection; seen
          again within the repeat window (another observation point, a
          policy-verdict event, a retransmission) -> repeated-observation.

        The lines the first three tests leave are handled in batches, in input order
        (``_handle``): streaming ~1.4 kB lines through the tests evicts the caches and
        tables the handling needs from the CPU caches, and taking the survivors a few
        hundred at a time keeps them warm (a third of the time of a large import).
        """
        rfind = bytes.rfind
        find = bytes.find
        startswith = bytes.startswith
        head = _FLOW_HEAD.match
        pending: list[tuple[int, bytes, Any, Any]] = []
        lines = n_reply = n_not_syn = n_sock = 0
        try:
            for lineno, raw in items:
                if raw[-2:] != b"}\n":
                    end = raw.rstrip()
                    if end[-1:] == b"}":
                        # CRLF line ends (the file went through a Windows tool), CRs
                        # doubled by two of them, trailing blanks: the same line, so
                        # the same tests (the repeat test above all).
                        raw = end + b"\n"
                    elif not end:
                        continue
                    else:
                        lines += 1
                        pending.append((lineno, raw, False, None))
                        if len(pending) == _BATCH:
                            batch, pending = pending, []
                            yield from self._handle(batch)
                        continue
                # a whole line, as Hubble writes them
                lines += 1
                i = rfind(raw, b'eply":', -_REPLY_TAIL)  # from max(0, len - TAIL)
                # startswith at an offset allocates nothing, unlike a slice; the byte
                # test first turns most non-replies away (``}`` ends the line, so
                # ``raw[i + 6]`` exists; the keys cannot start before the ``{``).
                if (
                    i != -1
                    and raw[i + 6] == 0x74  # t
                    and startswith(raw, b"true", i + 6)
                    and (
                        startswith(raw, b'"is_r', i - 5)
                        or startswith(raw, b'"isR', i - 4)
                        or startswith(raw, b'"r', i - 2)
                    )
                ):
                    # A DNS proxy's response (an L7 record) is a reply that binds
                    # names: parsed. Its event type is found a little before
                    # is_reply; a line without one near there is looked through.
                    j = rfind(raw, _EVENT_TYPE, i - _EVENT_TYPE_SPAN if i > _EVENT_TYPE_SPAN
                              else 0, i)
                    if not (startswith(raw, _ACCESS_LOG, j + 13) if j != -1
                            else find(raw, b'"dns":{') != -1):
                        n_reply += 1
                        continue
                    m = None
                else:
                    m = head(raw)
                if m is not None:
                    time_text, verdict, conn, proto, l4_body = m.groups()
                    # find, not ``in``: CPython 3.11's bytes ``in`` first tries the
                    # operand as an int and builds (and drops) a TypeError for bytes
                    if proto == b"TCP" and (
                        find(l4_body, b'"SYN":true') < 0 or find(l4_body, b'"ACK":true') >= 0
                    ):
                        n_not_syn += 1
                        continue
                    if verdict in _DROP_VERDICTS:
                        pending.append((lineno, raw, None, None))
                    elif raw.find(b'"Type":"SOCK"', m.end()) != -1:
                        n_sock += 1
                        continue
                    else:
                        pending.append((lineno, raw, conn, time_text))
                else:
                    pending.append((lineno, raw, None, None))
                if len(pending) == _BATCH:
                    batch, pending = pending, []
                    yield from self._handle(batch)
        except Exception:
            # The input broke off (a cut-off gzip stream): the lines read before still
            # count. (A batch being handled was taken out of ``pending`` first.)
            yield from self._handle(pending)
            raise
        else:
            yield from self._handle(pending)
        finally:
            self.lines += lines
            for reason, n in (
                ("reply", n_reply),
                ("tcp-not-syn", n_not_syn),
                ("sock-trace", n_sock),
            ):
                if n:
                    self.ignored[reason] += n

    def _handle(self, pending: list[tuple[int, bytes, Any, Any]]) -> Iterator[FlowRecord]:
        """Lines that passed the byte tests: ``(line number, line, conn, time)``.

        ``conn``: the line's connection bytes for the repeat test (None: a drop or a
        line not in Hubble's compact form; False: not even a whole line), ``time``:
        its time text. A line in Hubble's form goes to ``FastLines`` first."""
        recent = self.recent
        fast = self.fast.record
        loads = orjson.loads
        n_repeated = 0
        try:
            for lineno, raw, conn, time_text in pending:
                if conn:
                    seen = recent.get(conn)
                    if seen is not None and _repeats(time_text, seen):
                        n_repeated += 1
                        continue
                rec = fast(raw) if conn is not False else None
                if rec is None:
                    try:
                        obj = loads(raw)
                    except orjson.JSONDecodeError as e:
                        self.report.skip(self.path, lineno, "invalid-json",
                                         json_error_detail(raw, e))
                        continue
                    rec = self.from_object(obj, lineno)
                    if rec is None:
                        continue
                    if type(rec) is list:  # a DNS response's bindings
                        self.kept += len(rec)
                        yield from rec
                        continue
                self.kept += 1
                if conn:
                    window = _TCP_REPEAT_NS if rec.protocol == "TCP" else self.udp_window_ns
                    recent.put(conn, [rec.first_seen, window], rec.first_seen)
                yield rec
        finally:
            if n_repeated:
                self.ignored["repeated-observation"] += n_repeated

    def from_object(self, obj: Any, lineno: int) -> FlowRecord | list[NameBinding] | None:
        if not isinstance(obj, dict):
            self.report.skip(
                self.path, lineno, "not-an-object", "a Hubble line must be a JSON object"
            )
            return None
        flow = obj.get("flow")
        if flow is None:
            if not any(k in obj for k in _BARE_FLOW_KEYS) or any(
                k in obj for k in _NON_FLOW_KINDS
            ):
                self.ignored[self._non_flow_reason(obj)] += 1
                return None
            flow = obj  # legacy output: the bare flow object
        elif not isinstance(flow, dict):
            self.report.skip(self.path, lineno, "bad-flow", "'flow' is not a JSON object")
            return None
        try:
            rec = self._flow_record(flow, obj)
        except _BadFlow as e:
            self.report.skip(self.path, lineno, "bad-flow", str(e))
            return None
        if type(rec) is str:
            self.ignored[rec] += 1
            return None
        return rec  # type: ignore[return-value]

    def _non_flow_reason(self, obj: dict[str, Any]) -> str:
        for k in obj:
            kind = _NON_FLOW_KINDS.get(k)
            if kind is not None:
                return "non-flow:" + kind
        for k in obj:
            if k not in _WRAPPER_KEYS:
                known = sum(1 for r in self.ignored if r.startswith("non-flow:"))
                if len(k) <= 32 and k.isidentifier() and known < _MAX_NON_FLOW_REASONS:
                    return "non-flow:" + k
                return "non-flow:other"
        return "non-flow:empty"

    def _flow_record(self, flow: dict[str, Any], wrapper: dict[str, Any]
                     ) -> FlowRecord | list[NameBinding] | str:
        """A flow -> its record (a DNS response: its bindings), or the reason it is
        ignored. The checks run in the order of the byte tests in ``records``: a DNS
        response first, then reply, then the TCP flags."""
        get = flow.get
        l7 = get("l7")
        if l7:
            if not isinstance(l7, dict):
                raise _BadFlow("'l7' is not a JSON object")
            if l7.get("type") == "RESPONSE" and l7.get("dns") is not None:
                return self._dns_response(flow, wrapper, l7["dns"])
        is_reply = get("is_reply")
        if is_reply is None:
            is_reply = get("isReply")
        if is_reply is True or get("reply") is True:
            return "reply"
        l4 = get("l4")
        if not l4 or not isinstance(l4, dict):
            return "no-l4"
        for name in l4:
            protocol = _L4_PROTOCOL.get(name)
            if protocol is not None:
                break
        else:
            return "unsupported-l4"
        l4v = l4[name]
        if not isinstance(l4v, dict):
            raise _BadFlow(f"l4.{name} is not a JSON object")
        src_port: int | None
        dst_port: int | None
        if protocol == "TCP":
            flags = l4v.get("flags")
            if not flags or not isinstance(flags, dict) or not flags.get("SYN") or flags.get("ACK"):
                return "tcp-not-syn"
        if get("Type") == "SOCK":
            # Socket-LB trace events (connect/sendmsg/recvmsg translation) are no
            # packets: no source or no destination port. The packets are seen apart.
            return "sock-trace"
        if protocol != "ICMP" and protocol != "ICMPv6":
            # _port, without the call for the usual snake_case int in range
            src_port = l4v.get("source_port")
            if type(src_port) is not int or not 0 <= src_port <= 65535:
                src_port = _port(l4v, "source_port", "sourcePort")
            dst_port = l4v.get("destination_port")
            if type(dst_port) is not int or not 0 <= dst_port <= 65535:
                dst_port = _port(l4v, "destination_port", "destinationPort")
            if protocol != "TCP" and is_reply is None and src_port == 53 and dst_port != 53:
                return "reply-inferred"
        else:
            if l4v.get("type", 0) != _ICMP_ECHO_REQUEST[protocol]:
                return "icmp-not-echo-request"
            src_port = dst_port = None
        ip = get("IP")
        if not ip or not isinstance(ip, dict):
            return "no-ip"
        src_ip = ip.get("source")
        dst_ip = ip.get("destination")
        if not src_ip or not dst_ip:
            return "no-ip"
        if type(src_ip) is not str or type(dst_ip) is not str:
            raise _BadFlow(f"IP addresses must be strings: {ip!r}")
        t = get("time") or wrapper.get("time")
        if t is None:
            raise _BadFlow("the flow has no 'time'; every Hubble flow carries one")
        try:
            ns = parse_time(t)
        except ValueError as e:
            raise _BadFlow(f"bad 'time': {e}") from None
        node = get("node_name") or get("nodeName")
        if node is None:
            node = wrapper.get("node_name") or wrapper.get("nodeName")
        verdict = get("verdict")
        strings = self.strings
        if len(strings) > 200_000:
            strings.clear()
        intern = strings.setdefault
        service = None
        svc = get("destination_service") or get("destinationService")
        if svc:
            if not isinstance(svc, dict) or not svc.get("name"):
                raise _BadFlow(f"destination_service has no name: {svc!r}")
            service = ServiceRef(str(svc.get("namespace", "")), str(svc["name"]))
        hints = self.hints.get
        try:
            src = hints(get("source"), get("source_names") or get("sourceNames"))
            dst = hints(get("destination"), get("destination_names") or get("destinationNames"))
        except (ValueError, TypeError, AttributeError) as e:
            raise _BadFlow(f"bad endpoint: {e}") from None
        return self.new_record(
            ns,
            ns,
            protocol,
            intern(src_ip, src_ip),
            intern(dst_ip, dst_ip),
            dst_port,
            src_port,
            intern(node, node) if type(node) is str else None,
            src,
            dst,
            service,
            intern(verdict, verdict) if type(verdict) is str else None,
        )


    def _dns_response(self, flow: dict[str, Any], wrapper: dict[str, Any], dns: Any
                      ) -> list[NameBinding] | str:
        """An L7 DNS response -> a binding per address, or why it binds none.

        flow.proto's DNS message: ``query`` (the name asked, with the root's dot),
        ``ips`` (the addresses of the answer: Cilium's DNS proxy has followed the
        CNAME chain to them, ``ExtractMsgDetails`` in pkg/fqdn/dnsproxy), ``ttl`` (the
        lowest on the chain), ``rcode``. The response goes to the client: the flow's
        destination."""
        if not isinstance(dns, dict):
            raise _BadFlow("'l7.dns' is not a JSON object")
        rcode = dns.get("rcode", 0)
        if type(rcode) is not int:
            raise _BadFlow(f"l7.dns.rcode is not a number: {rcode!r}")
        if rcode:
            return "dns-nxdomain" if rcode == 3 else "dns-error-rcode"
        query = dns.get("query")
        if type(query) is not str:
            raise _BadFlow(f"l7.dns.query is not a name: {query!r}")
        name = dns_name(query)
        if name is None:
            return "dns-bad-name"
        ips = dns.get("ips") or ()
        if not isinstance(ips, (list, tuple)):
            raise _BadFlow(f"l7.dns.ips is not a list: {ips!r}")
        addresses = []
        for ip in ips:
            try:
                addresses.append(str(ipaddress.ip_address(ip)))
            except ValueError:
                raise _BadFlow(f"l7.dns.ips holds {ip!r}, not an IP address") from None
        if not addresses:
            return "dns-no-address"
        ttl = dns.get("ttl", 0)
        if type(ttl) is not int or ttl < 0:
            raise _BadFlow(f"l7.dns.ttl is not a number of seconds: {ttl!r}")
        ip = flow.get("IP")
        client = ip.get("destination") if isinstance(ip, dict) else None
        if not client:
            return "no-ip"
        try:
            client = str(ipaddress.ip_address(client))
        except ValueError:
            raise _BadFlow(f"IP.destination is not an IP address: {client!r}") from None
        t = flow.get("time") or wrapper.get("time")
        try:
            ns = parse_time(t)
        except (TypeError, ValueError) as e:
            raise _BadFlow(f"bad 'time': {e}") from None
        node = flow.get("node_name") or flow.get("nodeName") \
            or wrapper.get("node_name") or wrapper.get("nodeName")
        try:
            hints = self.hints.get(flow.get("destination"), None)
        except (ValueError, TypeError, AttributeError) as e:
            raise _BadFlow(f"bad endpoint: {e}") from None
        who = EndpointHints(namespace=hints.namespace, pod=hints.pod)
        counts = self.noted
        counts["dns-answers"] += 1
        if query.endswith("."):
            counts["dns-name-trailing-dot"] += 1
        if query.rstrip(".") != name:
            counts["dns-name-lower-cased"] += 1
        ttl = dns_ttl(ttl)
        return [NameBinding(ns, ns, client, name, address, ttl,
                            node=node if type(node) is str else None,
                            client=NO_HINTS if who.is_empty() else who,
                            source_format=NAME, input=self.path)
                for address in dict.fromkeys(addresses)]


# ------------------------------------------------------------------------- framing


# An input of L7 records only (`hubble observe --type l7`): an L7 record is a request
# or a response, never a TCP connection's SYN, so its TCP connections go uncounted.
# Judged on the file's first bytes: every flow has a Type (L3_L4, L7, SOCK: flow.proto
# FlowType, whose zero value is UNKNOWN). Event types to ask for: cilium/hubble
# cmd/observe `--type` (trace, drop, l7, ...).
_FLOW_TYPE = re.compile(rb'"Type"\s*:\s*"([A-Z0-9_]+)"')
L7_ONLY = ("the file holds only L7 records (as `hubble observe --type l7` prints them): an "
           "L7 record never shows a TCP connection's SYN, so its TCP connections are not "
           "counted; record L3/L4 flows as well: `hubble observe -o json` without --type, or "
           "with --type trace --type drop")


def _only_l7(sample: bytes) -> bool:
    types = set(_FLOW_TYPE.findall(sample))
    return types == {b"L7"}

_ARRAY_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[{}\[\],]', re.DOTALL)
_CHUNK = 1 << 20


def _array_elements(
    buf: bytes, stream: BinaryIO, path: str, report: ReadReport
) -> Iterator[tuple[int, bytes]]:
    """(line of the element's first byte, element bytes) of one top-level JSON array,
    read in chunks: memory holds one chunk plus one element, not the file."""
    start = buf.index(b"[") + 1
    line = 1 + buf.count(b"\n", 0, start)
    eof = False
    while True:
        depth = 0
        for m in _ARRAY_TOKEN.finditer(buf, start):
            tok = m.group()
            if tok == b'"':
                break  # a string runs past the end of the buffer: read more
            c = tok[0]
            if c == 0x7B or c == 0x5B:  # { [
                depth += 1
            elif c == 0x7D or c == 0x5D:  # } ]
                if depth:
                    depth -= 1
                    continue
                # "]" at depth 0: end of the array
                yield from _element(buf, start, m.start(), line)
                if buf[m.end() :].strip() or not _rest_is_blank(stream):
                    report.skip(
                        path, line + buf.count(b"\n", start, m.end()), "trailing-data",
                        "data after the closing ']' of the JSON array was left out",
                    )
                return
            elif c == 0x2C and depth == 0:  # ,
                yield from _element(buf, start, m.start(), line)
                line += buf.count(b"\n", start, m.end())
                start = m.end()
        if eof:
            elem = buf[start:].strip()
            if elem:
                elem_line = line + _leading_newlines(buf, start)
                report.skip(
                    path, elem_line, "invalid-json",
                    "the JSON array is cut off here (truncated file?); the rest was left out",
                )
            else:
                report.skip(path, line, "invalid-json", "the JSON array has no closing ']'")
            return
        if len(buf) - start > jsonframes.MAX_OBJECT:
            # bounded memory: no flow is this long, and where it ends cannot be found
            # without holding it
            report.skip(path, line + _leading_newlines(buf, start), "invalid-json",
                        f"a JSON array element longer than {jsonframes.MAX_OBJECT >> 20} MiB;"
                        " it and the rest of the array were left out")
            return
        if not buf[start:].strip():
            # whitespace between elements, however long, is not held
            line += buf.count(b"\n", start)
            buf, start = b"", 0
        chunk = stream.read(_CHUNK)
        if not chunk:
            eof = True
        buf = buf[start:] + chunk
        start = 0


def _rest_is_blank(stream: BinaryIO) -> bool:
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return True
        if chunk.strip():
            return False


def _leading_newlines(buf: bytes, start: int) -> int:
    end = start
    n = len(buf)
    while end < n and buf[end] in b" \t\r\n":
        end += 1
    return buf.count(b"\n", start, end)


def _element(buf: bytes, start: int, end: int, line: int) -> Iterator[tuple[int, bytes]]:
    elem = buf[start:end]
    if elem.strip():
        yield line + _leading_newlines(buf, start), elem


def _one_array(pending: list[bytes], stream: BinaryIO) -> bool:
    """Is the file one JSON array of objects, its first non-blank line (the last of
    ``pending``) starting it? Not when that line is a whole JSON value with more lines
    after it, or a ``[`` that opens no object (``[NEW] tcp ...``, a stray ``[`` before
    compact lines): junk before compact lines, skipped as a bad line."""
    first = pending[-1]
    if not first.lstrip().startswith(b"["):
        return False
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return jsonframes.opens_objects(pending, stream)  # the array goes on, or junk
    return not to_first_content(stream.readline, pending)


def read(
    stream: BinaryIO, path: str, report: ReadReport, options: ReadOptions
) -> Iterator[LogRecord]:
    reader = _Reader(path, report, options)
    peek = getattr(stream, "peek", None)
    sample = peek(SNIFF_BYTES)[:SNIFF_BYTES] if peek is not None else b""
    try:
        # Read up to the first non-blank line (at most a chunk of it): small reads, so
        # a cut-off gzip stream still yields every line before the cut.
        pending: list[bytes] = []
        to_first_content(stream.readline, pending)  # a longer one: jsonframes skips it
        if _one_array(pending, stream):
            items: Iterable[tuple[int, bytes]] = _array_elements(
                b"".join(pending), stream, path, report
            )
        else:
            # compact lines, or objects over many lines (`jq .`) framed into such lines
            items = jsonframes.lines_or_objects(pending, stream, path, report)
        yield from reader.records(items)
        if _only_l7(sample):
            report.warnings.append(f"{path}: {L7_ONLY}")
    finally:
        reader.flush_counts()


SOURCE = Source(
    name=NAME,
    description="Hubble flows: hubble observe -o json/jsonpb, exporter events.log, JSON array",
    sniff=sniff,
    read=read,
)
