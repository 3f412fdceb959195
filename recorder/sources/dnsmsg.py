"""DNS answers in wire format (RFC 1035 4.1) -> the name the client asked for and its
addresses. Used by the capture readers (recorder/sources/pcap.py, the live capture).

Only what a binding needs is read: the header, the one question, and the answer
section's A, AAAA and CNAME records; the authority and additional sections are never
looked at. What binds and how follows Cilium's DNS proxy, whose bindings decide what a
``toFQDNs`` rule allows (``ExtractMsgDetails``, cilium pkg/fqdn/dnsproxy/proxy.go): the
question's name, lower-cased, gets the addresses found by following the CNAME chain
from it, and the binding's TTL is the lowest TTL along that chain. Records that are
not on the chain bind nothing (Cilium refuses such an answer whole; here the chain
still binds, and the stray records are counted).

Why not dnspython: it parses every record of every section into objects, about ten
times the cost of this reader per answer (tests/recorder/test_dnsmsg.py measures both),
and a capture holds about as many DNS answers as connections. dnspython stays the
oracle: the tests hold this reader to its answers on generated and mutated messages.

``PacketAnswers`` finds the answers in packets for the capture readers: UDP datagrams
from port 53, and TCP streams from port 53 reassembled from their segments (two-byte
length prefix, RFC 1035 4.2.2; a client retries there after a truncated UDP answer,
RFC 7766), each answer once however many interfaces saw it.

Every failure is an outcome with a stable reason, never an exception: answers come
from the network, and a malformed one is counted (``dns-malformed``) like any other
answer that binds nothing.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from recorder.schema import NameBinding, dns_name, dns_ttl
from recorder.sources.fastrecord import slots_maker

TYPE_A, TYPE_CNAME, TYPE_AAAA = 1, 5, 28
CLASS_IN = 1
RCODE_NXDOMAIN = 3
MAX_CHAIN = 16  # CNAMEs followed; resolvers stop far earlier (CoreDNS: 7, BIND: 16)
_MAX_POINTERS = 64  # compression pointers followed in one name

# Outcomes that bind nothing, as counted by the readers.
NOT_A_RESPONSE = "dns-not-a-response"  # a query (QR clear): the answer comes separately
TRUNCATED = "dns-truncated"  # TC set: the client asks again over TCP; that answer binds
NXDOMAIN = "dns-nxdomain"  # the name does not exist
ERROR_RCODE = "dns-error-rcode"  # SERVFAIL, REFUSED, ...: nothing was answered
NO_ADDRESS = "dns-no-address"  # no A/AAAA on the chain (NODATA, other query types)
MALFORMED = "dns-malformed"  # does not parse as a DNS message
BAD_NAME = "dns-bad-name"  # the question's name is no host name a policy could carry
NOT_A_QUERY = "dns-not-a-query"  # another opcode (NOTIFY, UPDATE, ...)


class _Malformed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Answer:
    """What one DNS answer binds: ``name`` (canonical, ``recorder.schema.dns_name``) to
    ``addresses`` for ``ttl`` seconds. ``raw_name``: the question's name as sent (for
    counting names that had to be lower-cased); ``stray``: answer records off the
    CNAME chain, which bind nothing."""

    name: str
    addresses: tuple[str, ...]
    ttl: int
    raw_name: str
    stray: int = 0


def _name(msg: bytes, pos: int) -> tuple[bytes, int]:
    """The name at ``pos`` (labels joined by dots, as sent) and the offset after it.
    Compression pointers (RFC 1035 4.1.4) must point backwards: a loop cannot form."""
    labels: list[bytes] = []
    end = -1
    size = 0
    jumps = 0
    limit = pos
    n = len(msg)
    while True:
        if pos >= n:
            raise _Malformed
        length = msg[pos]
        if length == 0:
            if end < 0:
                end = pos + 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= n:
                raise _Malformed
            target = (length & 0x3F) << 8 | msg[pos + 1]
            if target >= limit or jumps >= _MAX_POINTERS:
                raise _Malformed
            if end < 0:
                end = pos + 2
            jumps += 1
            limit = target
            pos = target
            continue
        if kind:  # 0x40 and 0x80: extended and reserved label types
            raise _Malformed
        size += length + 1
        if size > 255 or pos + 1 + length > n:
            raise _Malformed
        labels.append(msg[pos + 1:pos + 1 + length])
        pos += 1 + length
    return b".".join(labels), end


def parse_answer(msg: bytes) -> Answer | str:
    """A DNS message -> the Answer it binds, or the reason (a ``dns-*`` key) it binds
    nothing."""
    try:
        return _parse(msg)
    except _Malformed:
        return MALFORMED


def _parse(msg: bytes) -> Answer | str:
    if len(msg) < 12:
        raise _Malformed
    flags = msg[2] << 8 | msg[3]
    if not flags & 0x8000:
        return NOT_A_RESPONSE
    if (flags >> 11) & 0xF:
        return NOT_A_QUERY
    if flags & 0x0200:
        return TRUNCATED
    questions = msg[4] << 8 | msg[5]
    answers = msg[6] << 8 | msg[7]
    if questions != 1:
        raise _Malformed  # every resolver answers exactly one question (RFC 9619)
    qname, pos = _name(msg, 12)
    if pos + 4 > len(msg):
        raise _Malformed
    pos += 4
    rcode = flags & 0xF
    if rcode == RCODE_NXDOMAIN:
        return NXDOMAIN
    if rcode:
        return ERROR_RCODE
    try:
        raw_name = qname.decode("ascii")
    except UnicodeDecodeError:
        return BAD_NAME
    name = dns_name(raw_name)
    if name is None:
        return BAD_NAME
    # owner (lower case) -> [(type, ttl, rdata start, rdata length)]
    by_owner: dict[bytes, list[tuple[int, int, int, int]]] = {}
    n = len(msg)
    for _ in range(answers):
        owner, pos = _name(msg, pos)
        if pos + 10 > n:
            raise _Malformed
        rtype = msg[pos] << 8 | msg[pos + 1]
        rclass = msg[pos + 2] << 8 | msg[pos + 3]
        ttl = dns_ttl(int.from_bytes(msg[pos + 4:pos + 8], "big"))
        length = msg[pos + 8] << 8 | msg[pos + 9]
        pos += 10
        if pos + length > n:
            raise _Malformed
        if rclass == CLASS_IN and rtype in (TYPE_A, TYPE_AAAA, TYPE_CNAME):
            by_owner.setdefault(owner.lower(), []).append((rtype, ttl, pos, length))
        pos += length
    addresses: list[str] = []
    ttl = -1
    current = qname.lower()
    seen = {current}
    used = 0
    for _ in range(MAX_CHAIN + 1):
        records = by_owner.get(current, ())
        used += len(records)
        target = None
        for rtype, rttl, start, length in records:
            if rtype == TYPE_CNAME:
                if target is None:
                    target, _end = _name(msg, start)
                    if _end > start + length:
                        raise _Malformed
            elif rtype == TYPE_A:
                if length != 4:
                    raise _Malformed
                addresses.append(_ntop(socket.AF_INET, msg[start:start + 4]))
            else:
                if length != 16:
                    raise _Malformed
                addresses.append(_ntop(socket.AF_INET6, msg[start:start + 16]))
            ttl = rttl if ttl < 0 else min(ttl, rttl)
        if target is None:
            break
        current = target.lower()
        if current in seen:
            break  # a CNAME loop: what was found so far is all there is
        seen.add(current)
    if not addresses:
        return NO_ADDRESS
    stray = sum(len(v) for v in by_owner.values()) - used
    return Answer(name, tuple(dict.fromkeys(addresses)), ttl, raw_name, stray)


_ntop = socket.inet_ntop  # the text the packet readers give every address


# ------------------------------------------------------------------ answers in packets

DNS_PORT = 53
TABLE_GENERATION = 1 << 12  # streams / answers remembered per generation
REPEAT_NS = 2_000_000_000  # the same answer to the same client port again: another sighting
_MAX_PENDING = 2 + 65535  # a TCP stream holds at most one unfinished message
# A capture holds about as many answers as connections: their records are made like
# the flow records (recorder/sources/fastrecord.py), not through the keyword __init__.
_new_binding = slots_maker(NameBinding, "first_seen", "last_seen", "client_ip", "name",
                           "address", "ttl", "source_format", "input")
REPEATED = "dns-repeated-answer"  # the same answer seen again (another interface)
BEYOND_SNAPLEN = "dns-beyond-snaplen"  # the capture kept less than the answer
TCP_GAP = "dns-tcp-gap"  # a segment of a TCP answer is missing from the capture
STRAY_RECORDS = "dns-records-off-the-chain"  # answer records the chain does not reach
UPPER_CASE = "dns-name-lower-cased"
ANSWERS = "dns-answers"
# Counted as noted (recorder.report.ReadReport.note): what was done with valid answers.
# Every other outcome is an answer that binds nothing, counted as ignored.
NOTED = frozenset({ANSWERS, UPPER_CASE, STRAY_RECORDS})


class PacketAnswers:
    """DNS answers in packets -> NameBinding records, with counts per outcome.

    ``udp(...)`` for a datagram from port 53, ``tcp_open(key)`` when a client connects
    to port 53 (``key``: the server-to-client direction's table key), then
    ``tcp_segment(...)`` for each segment of that direction. Both return a list of
    bindings (empty when the packet completed no answer). Tables are bounded: two
    generations of ``TABLE_GENERATION`` entries each.
    """

    __slots__ = ("counts", "bindings", "source_format", "_streams", "_streams_old",
                 "_seen", "_seen_old", "_parsed")

    def __init__(self, source_format: str) -> None:
        self.counts: dict[str, int] = {}
        self.bindings = 0  # records handed out
        self.source_format = source_format
        # key -> [next expected sequence number (-1: not known yet; None: given up),
        #         bytes received and not yet consumed]
        self._streams: dict[bytes, list] = {}
        self._streams_old: dict[bytes, list] = {}
        self._seen: dict[bytes, int] = {}  # client address + port + message -> time
        self._seen_old: dict[bytes, int] = {}
        # A resolver sends the same answer to many clients (from its cache, until the
        # TTL it counts down changes): parsed once, by the message without its ID.
        self._parsed: dict[bytes, Answer | str] = {}

    def count(self, reason: str, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n

    def report_counts(self, report) -> None:  # noqa: ANN001 - recorder.report.ReadReport
        for reason, n in sorted(self.counts.items()):
            (report.note if reason in NOTED else report.ignore)(reason, n)
        self.counts.clear()

    def knows(self, key: bytes) -> bool:
        return key in self._streams or key in self._streams_old

    def udp(self, buf: bytes, l4: int, end: int, client: str, client_raw: bytes,
            ts: int, path: str) -> list[NameBinding]:
        """The datagram at ``buf[l4:end]`` (UDP header first), sent to ``client``
        (``client_raw``: its address as in the packet), seen at ``ts`` in ``path``."""
        length = buf[l4 + 4] << 8 | buf[l4 + 5]
        if length < 8:
            self.count(MALFORMED)
            return []
        if l4 + length > end:
            self.count(BEYOND_SNAPLEN)
            return []
        return self._message(bytes(buf[l4 + 8:l4 + length]), client,
                             client_raw + buf[l4 + 2:l4 + 4], ts, path)

    def tcp_open(self, key: bytes) -> None:
        streams = self._streams
        if len(streams) >= TABLE_GENERATION:
            self._streams_old, self._streams = streams, {}
            streams = self._streams
        streams[key] = [-1, b""]

    def tcp_segment(self, key: bytes, buf: bytes, l4: int, payload_end: int, end: int,
                    client: str, client_raw: bytes, ts: int, path: str) -> list[NameBinding]:
        """A segment from the server of stream ``key``; its payload ends at
        ``payload_end`` (from the IP length), the captured bytes at ``end``."""
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams_old.pop(key, None)
            if stream is None:
                return []
            self._streams[key] = stream
        expected = stream[0]
        if expected is None:
            return []
        flags = buf[l4 + 13]
        seq = int.from_bytes(buf[l4 + 4:l4 + 8], "big")
        if flags & 0x02:  # SYN-ACK: the server's initial sequence number
            stream[0] = (seq + 1) & 0xFFFFFFFF
            return []
        start = l4 + ((buf[l4 + 12] >> 4) << 2)
        if start >= payload_end:
            return []  # no payload: an ACK, a FIN
        if payload_end > end:
            self.count(BEYOND_SNAPLEN)
            stream[0] = None
            return []
        payload = buf[start:payload_end]
        if expected == -1:
            expected = seq  # the SYN-ACK was not captured: start at this segment
        ahead = (seq - expected) & 0xFFFFFFFF
        if ahead >= 0x80000000:  # before what we have: a retransmission or another sighting
            overlap = (expected - seq) & 0xFFFFFFFF
            if overlap >= len(payload):
                return []
            payload = payload[overlap:]
        elif ahead:
            self.count(TCP_GAP)
            stream[0] = None
            return []
        stream[0] = (expected + len(payload)) & 0xFFFFFFFF
        pending = stream[1] + bytes(payload)
        out: list[NameBinding] = []
        while len(pending) >= 2:
            size = pending[0] << 8 | pending[1]
            if len(pending) < 2 + size:
                break
            out += self._message(pending[2:2 + size], client,
                                 client_raw + buf[l4 + 2:l4 + 4], ts, path)
            pending = pending[2 + size:]
        if len(pending) > _MAX_PENDING:
            self.count(MALFORMED)
            stream[0] = None
            pending = b""
        stream[1] = pending
        return out

    def _message(self, msg: bytes, client: str, client_key: bytes, ts: int,
                 path: str) -> list[NameBinding]:
        seen_key = client_key + msg
        last = self._seen.get(seen_key)
        if last is None:
            last = self._seen_old.get(seen_key)
        if last is not None and 0 <= ts - last <= REPEAT_NS:
            self.count(REPEATED)
            return []
        seen = self._seen
        if len(seen) >= TABLE_GENERATION:
            self._seen_old, self._seen = seen, {}
            seen = self._seen
        seen[seen_key] = ts
        answer = self._parsed.get(msg[2:])
        if answer is None:
            answer = parse_answer(msg)
            if len(self._parsed) >= TABLE_GENERATION:
                self._parsed.clear()
            self._parsed[msg[2:]] = answer
        if type(answer) is str:
            self.count(answer)
            return []
        self.count(ANSWERS)
        if answer.stray:
            self.count(STRAY_RECORDS, answer.stray)
        if answer.raw_name != answer.name:
            self.count(UPPER_CASE)
        self.bindings += len(answer.addresses)
        source_format = self.source_format
        return [_new_binding(ts, ts, client, answer.name, address, answer.ttl, source_format,
                             path)
                for address in answer.addresses]
