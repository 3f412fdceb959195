"""Reader for packet captures: pcap (both byte orders, micro- and nanosecond) and pcapng.

Our own container reader, not scapy's: it reads 1 MiB chunks and unpacks record headers
in place with ``struct``, so it stays well ahead of even merely iterating scapy's
``RawPcapReader`` (benchmarks/bench_pcap.py). No scapy import here at all. A classic
pcap file is read, after its first ``BULK_AFTER`` packets, a buffer at a time by
recorder/sources/pcapwalk.py: numpy finds the records and the packets of known TCP
connections (most of a capture), which then cost one table lookup each; the rest are
decoded as here, with the same outcome, counts and packet numbers, and the file is read
in the same pieces (tests/recorder/test_pcap_bulk.py compares both on every case either
handles). pcapng files and small captures are read record by record.

Link types: Ethernet (802.1Q/802.1ad tags), Linux cooked v1 (SLL) and v2 (SLL2, what
``tcpdump -i any`` writes), raw IP (101, and 12/14 where writers use them), IPv4/IPv6
(228/229) and BSD loopback (0/108). VXLAN (UDP 4789, 8472) and Geneve (UDP 6081) are
decapsulated to the inner packet; the tunnel itself is not a flow. IPv4 and IPv6 (with
extension headers skipped); TCP, UDP, SCTP, ICMP/ICMPv6 echo.

A connection is:

* TCP: a SYN without ACK. Retransmitted SYNs and the same SYN seen on several
  interfaces (same initial sequence number) count once.
* SCTP: an INIT chunk (same initiate tag = the same association).
* UDP: the first packet of a 5-tuple; later packets of either direction within
  ``options.udp_window_ns`` of the previous one belong to it.
* ICMP/ICMPv6: an echo request, per (src, dst, identifier), windowed like UDP.

A capture that starts mid-connection has no SYN: the first packet of an unknown TCP or
SCTP 5-tuple gives the direction if it is a SYN-ACK / INIT-ACK (the client is its
destination) or if exactly one port is ephemeral (>= 32768: that side is the client).
Such records are ``inferred=True`` and made once per 5-tuple; when neither rule
decides, the packet is counted (``pcap-direction-unknown``), never guessed. A UDP flow
whose first packet goes from a non-ephemeral to an ephemeral port is taken to be a
reply seen first: it is flipped and marked inferred.

Memory is bounded: the connection tables keep two generations of at most
``TABLE_GENERATION`` entries each; an entry survives while its connection is active.
A connection silent while that many newer entries arrive is forgotten, and its next
packet makes an ``inferred`` duplicate record that aggregation folds into its edge.

Bad input keeps every valid packet: truncated records, corrupt headers, unsupported link
types and undecodable packets are reported with ``path:packet-number``; only a file of
which no packet at all could be read raises InputError.
"""

from __future__ import annotations

import socket
import struct
from typing import BinaryIO, Callable, Iterator

from recorder.errors import InputError
from recorder.report import ReadReport
from recorder.schema import LogRecord
from recorder.sources.base import ReadOptions, Source
from recorder.sources.dnsmsg import DNS_PORT, PacketAnswers
from recorder.sources.fastrecord import flow_record_maker
from recorder.timefmt import check_time_ns

CHUNK = 1 << 20
# packets read record by record before the bulk walk (pcapwalk) takes over: importing
# numpy costs about as much as reading them
BULK_AFTER = 20_000
TABLE_GENERATION = 1 << 14
EPHEMERAL_MIN = 32768  # Linux's default ip_local_port_range starts here
MAX_RECORD = 1 << 24  # larger than any real snaplen/block: a corrupt length field

# classic pcap magic (as read little-endian) -> (byte order, timestamp unit in ns)
_PCAP_MAGIC = {
    0xA1B2C3D4: ("<", 1000),
    0xD4C3B2A1: (">", 1000),
    0xA1B23C4D: ("<", 1),
    0x4D3CB2A1: (">", 1),
}
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP = 0, 1, 108
LINKTYPE_RAW, LINKTYPE_RAW_12, LINKTYPE_RAW_14 = 101, 12, 14
LINKTYPE_IPV4, LINKTYPE_IPV6 = 228, 229
LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2 = 113, 276
# link types pcapwalk decides packets of (its _LINK)
_WALK_LINKTYPES = frozenset({LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
                             LINKTYPE_RAW, LINKTYPE_RAW_12, LINKTYPE_RAW_14, LINKTYPE_IPV4})
_RAW_TYPES = frozenset({LINKTYPE_RAW, LINKTYPE_RAW_12, LINKTYPE_RAW_14, LINKTYPE_IPV4,
                        LINKTYPE_IPV6})
SUPPORTED_LINKTYPES = frozenset({LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP,
                                 LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2} | _RAW_TYPES)

_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100})
_VXLAN_PORTS = frozenset({4789, 8472})
_GENEVE_PORT = 6081
_TUNNEL_PORTS = _VXLAN_PORTS | {_GENEVE_PORT}
_IPV6_EXT = frozenset({0, 43, 44, 51, 60})
_BSD_AF_INET6 = frozenset({10, 24, 28, 30})  # AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS


# Ethernet header + IPv4 header (no options) + TCP up to the flags byte: ethertype,
# version/IHL, flags/fragment offset, protocol, TCP flags.
_ETH_IPV4_TCP = struct.Struct("!12xHB5xHxB23xB").unpack_from


class _BadPacket(Exception):
    """A packet whose headers cannot be decoded; the message is the skip reason."""


def _bad_packet(report: ReadReport, path: str, n: int, e: Exception, cut: bool) -> None:
    """A packet that could not be decoded. When the capture kept fewer bytes than the
    packet had (``cut``: its snap length) and the headers run past them, the file is
    fine and the capture was set up to keep less: counted as ignored, not as bad input
    (a larger ``tcpdump -s``, e.g. 256, keeps them, VXLAN over IPv6 included)."""
    reason = e.args[0] if isinstance(e, _BadPacket) else "malformed-packet"
    if cut and reason in ("truncated-packet", "malformed-packet"):
        report.ignore("headers-beyond-snaplen")
    else:
        report.skip(path, n, reason, e.args[1] if len(e.args) > 1 else "")


def sniff(head: bytes) -> bool:
    if len(head) < 12:
        return False
    magic = int.from_bytes(head[:4], "little")
    if magic in _PCAP_MAGIC:
        return True
    if magic == _PCAPNG_SHB:
        return int.from_bytes(head[8:12], "little") in (_PCAPNG_BOM, 0x4D3C2B1A)
    return False


# --------------------------------------------------------------------------- decoding


class PacketDecoder:
    """Turns packets into connection records; holds the bounded connection tables.

    Also usable for frames from elsewhere (a live capture): ``dec = PacketDecoder(name,
    options)``, set ``dec.conv = lambda ns, _: ns``, then ``dec.packet(linktype, frame, 0,
    len(frame), ts_ns, 0)`` per frame returns a FlowRecord or None (raises BadPacket
    or IndexError for undecodable frames); ``dec.report_counts(report, decoded, kept)`` at the end.

    ``packet()`` is the hot path and is written for speed: byte indexing instead of
    struct, one slice as table key, packets of known connections leave after one dict
    lookup (they are not even counted: that number is derived at the end), and the
    timestamp is only computed (``conv(ts_a, ts_b)``) when a record or a UDP window
    needs it.
    """

    __slots__ = ("path", "window", "make", "conv", "tcp", "tcp_old", "udp", "udp_old",
                 "other", "other_old", "addr", "counts", "dns")

    def __init__(self, path: str, options: ReadOptions) -> None:
        self.path = path
        self.window = options.udp_window_ns
        self.make = flow_record_maker(
            "first_seen", "last_seen", "protocol", "src_ip", "dst_ip", "dst_port",
            "src_port", "inferred", "input", source_format="pcap",
        )
        # (ts_a, ts_b) of the packet -> ns; set by the container per file/interface.
        self.conv: Callable[[int, int], int] = lambda a, b: a
        # key (addresses + ports as bytes) -> TCP: SYN sequence number, or -1 for a
        # reverse/inferred entry. UDP/ICMP: time of the last packet. SCTP: initiate tag.
        self.tcp: dict[bytes, int] = {}
        self.tcp_old: dict[bytes, int] = {}
        self.udp: dict[bytes, int] = {}
        self.udp_old: dict[bytes, int] = {}
        self.other: dict[bytes, int] = {}  # ICMP echo and SCTP, keys prefixed by protocol
        self.other_old: dict[bytes, int] = {}
        self.addr: dict[bytes, str] = {}
        self.counts: dict[str, int] = {}
        # DNS answers (UDP and TCP from port 53) -> NameBinding records; a packet that
        # completes answers returns a list (its flow record, if any, first).
        self.dns = PacketAnswers("pcap")

    def report_counts(self, report: ReadReport, decoded: int, kept: int) -> None:
        """Add the per-outcome packet counts to ``report``. Packets of known connections
        are not counted one by one (hot path): they are what is left of the decoded
        packets after records and the other outcomes. Tunnel packets are also counted
        under their inner packet's outcome."""
        outcomes = sum(n for r, n in self.counts.items() if r != "pcap-tunnel-packet")
        self.counts["pcap-connection-packet"] = decoded - (kept - self.dns.bindings) - outcomes
        for reason, count in sorted(self.counts.items()):
            if count:
                report.ignore(reason, count)
        self.dns.report_counts(report)

    def count(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def text(self, raw: bytes) -> str:
        ip = self.addr.get(raw)
        if ip is None:
            ip = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
            if len(self.addr) >= TABLE_GENERATION:
                self.addr.clear()
            self.addr[raw] = ip
        return ip

    def packet(self, linktype: int, buf: bytes, off: int, end: int, ts_a: int,
               ts_b: int) -> object:
        """One link-layer frame ``buf[off:end]`` -> a FlowRecord or None."""
        if linktype == 1 and end - off >= 48:
            # Fast path, most of any capture: Ethernet, IPv4 without options, first
            # fragment, TCP or UDP. One unpack gives ethertype, version/IHL, fragment
            # offset, protocol and TCP flags; addresses and ports are one slice.
            et, vihl, frag, proto, flags = _ETH_IPV4_TCP(buf, off)
            if et == 0x0800 and vihl == 0x45 and not frag & 0x1FFF:
                if proto == 6 and end - off >= 54:
                    key = buf[off + 26:off + 38]
                    if not flags & 0x02 or flags & 0x10:  # SYN-ACKs are known mostly
                        if key in self.tcp:
                            return None
                        seen = self.tcp_old.get(key)
                        if seen is not None:
                            self.tcp[key] = seen
                            return None
                        if self.dns.knows(key):
                            return self._dns_tcp(buf, off + 34, off + 26, 4, key, end, ts_a, ts_b)
                    return self._tcp(buf, off + 34, off + 26, 4, key, ts_a, ts_b)
                if proto == 17 and (buf[off + 36] << 8 | buf[off + 37]) not in _TUNNEL_PORTS:
                    if buf[off + 35] == DNS_PORT and not buf[off + 34]:
                        return self._dns_udp(buf, off + 34, off + 26, 4, buf[off + 26:off + 38],
                                             end, ts_a, ts_b)
                    return self._udp(buf, off + 34, off + 26, 4, buf[off + 26:off + 38],
                                     ts_a, ts_b)
        if linktype == 1:
            if off + 14 > end:
                raise _BadPacket("truncated-packet")
            et = buf[off + 12] << 8 | buf[off + 13]
            off += 14
            while et in _VLAN_TYPES:
                if off + 4 > end:
                    raise _BadPacket("truncated-packet")
                et = buf[off + 2] << 8 | buf[off + 3]
                off += 4
        elif linktype == LINKTYPE_LINUX_SLL2:
            if off + 20 > end:
                raise _BadPacket("truncated-packet")
            et = buf[off] << 8 | buf[off + 1]
            off += 20
        elif linktype == LINKTYPE_LINUX_SLL:
            if off + 16 > end:
                raise _BadPacket("truncated-packet")
            et = buf[off + 14] << 8 | buf[off + 15]
            off += 16
        elif linktype in _RAW_TYPES:
            if off >= end:
                raise _BadPacket("truncated-packet")
            version = buf[off] >> 4
            et = _ETH_IPV4 if version == 4 else _ETH_IPV6 if version == 6 else 0
        else:  # BSD loopback: a 4-byte address family in the writer's byte order
            if off + 4 > end:
                raise _BadPacket("truncated-packet")
            family = buf[off] if buf[off] else buf[off + 3]
            et = _ETH_IPV4 if family == 2 else _ETH_IPV6 if family in _BSD_AF_INET6 else 0
            off += 4
        if et == _ETH_IPV4:
            if off + 20 > end:
                raise _BadPacket("truncated-packet")
            vihl = buf[off]
            if vihl >> 4 != 4:
                raise _BadPacket("bad-ip-header")
            if (buf[off + 6] & 0x1F) | buf[off + 7]:
                self.count("pcap-ip-fragment")  # not the first fragment: no L4 header
                return None
            proto = buf[off + 9]
            l4 = off + ((vihl & 15) << 2)
            sa = off + 12
            alen = 4
        elif et == _ETH_IPV6:
            if off + 40 > end:
                raise _BadPacket("truncated-packet")
            if buf[off] >> 4 != 6:
                raise _BadPacket("bad-ip-header")
            proto = buf[off + 6]
            l4 = off + 40
            while proto in _IPV6_EXT:
                if l4 + 8 > end:
                    raise _BadPacket("truncated-packet")
                if proto == 44:  # fragment header
                    if (buf[l4 + 2] << 8 | buf[l4 + 3]) & 0xFFF8:
                        self.count("pcap-ip-fragment")
                        return None
                    proto = buf[l4]
                    l4 += 8
                elif proto == 51:  # AH counts 4-byte units
                    proto, l4 = buf[l4], l4 + (buf[l4 + 1] + 2) * 4
                else:
                    proto, l4 = buf[l4], l4 + (buf[l4 + 1] + 1) * 8
            sa = off + 8
            alen = 16
        else:
            self.count("pcap-not-ip")
            return None

        if proto == 6:
            if l4 + 14 > end:
                raise _BadPacket("truncated-packet")
            # Addresses then ports: one slice when there are no IP options.
            da = sa + alen
            key = buf[sa:l4 + 4] if l4 == da + alen else buf[sa:da + alen] + buf[l4:l4 + 4]
            if not buf[l4 + 13] & 0x02:  # no SYN: most packets, of known connections
                if key in self.tcp:
                    return None
                seen = self.tcp_old.get(key)
                if seen is not None:
                    self.tcp[key] = seen
                    return None
            if self.dns.knows(key):
                return self._dns_tcp(buf, l4, sa, alen, key, end, ts_a, ts_b)
            return self._tcp(buf, l4, sa, alen, key, ts_a, ts_b)
        if proto == 17:
            if l4 + 8 > end:
                raise _BadPacket("truncated-packet")
            dport = buf[l4 + 2] << 8 | buf[l4 + 3]
            if dport in _TUNNEL_PORTS:
                inner = self._tunnel(buf, l4, end, dport)
                if inner is not None:
                    self.count("pcap-tunnel-packet")
                    return self.packet(inner[0], buf, inner[1], end, ts_a, ts_b)
            da = sa + alen
            key = buf[sa:l4 + 4] if l4 == da + alen else buf[sa:da + alen] + buf[l4:l4 + 4]
            if buf[l4 + 1] == DNS_PORT and not buf[l4]:
                return self._dns_udp(buf, l4, sa, alen, key, end, ts_a, ts_b)
            return self._udp(buf, l4, sa, alen, key, ts_a, ts_b)
        if proto == 1 or proto == 58:
            return self._icmp(buf, l4, end, sa, alen, ts_a, ts_b, proto)
        if proto == 132:
            return self._sctp(buf, l4, end, sa, alen, ts_a, ts_b)
        self.count(f"pcap-ip-protocol:{proto}")
        return None

    # -- new connections (rare): records and table upkeep

    def _connect(self, table: dict[bytes, int], key: bytes, value: int, back: int,
                 prefix: bytes, protocol: str, buf: bytes, l4: int, sa: int, alen: int,
                 ts: int, flip: bool, inferred: bool, dport: int | None = -1) -> object:
        """Remember a new connection (``key``, and its reverse when ``back`` is not
        None) and make its record; ``flip`` when the packet went server -> client."""
        da = sa + alen
        src_raw = buf[sa:da]
        dst_raw = buf[da:da + alen]
        table[key] = value
        if back is not None:
            table[prefix + dst_raw + src_raw + buf[l4 + 2:l4 + 4] + buf[l4:l4 + 2]] = back
        addr = self.addr
        src = addr.get(src_raw) or self.text(src_raw)
        dst = addr.get(dst_raw) or self.text(dst_raw)
        if dport == -1:
            sport: int | None = buf[l4] << 8 | buf[l4 + 1]
            dport = buf[l4 + 2] << 8 | buf[l4 + 3]
        else:
            sport = None
        if flip:
            return self.make(ts, ts, protocol, dst, src, sport, dport, inferred, self.path)
        return self.make(ts, ts, protocol, src, dst, dport, sport, inferred, self.path)

    def _tcp(self, buf: bytes, l4: int, sa: int, alen: int, key: bytes, ts_a: int,
             ts_b: int) -> object:
        """A SYN, or the first packet of a connection whose SYN the capture missed."""
        flags = buf[l4 + 13]
        table = self.tcp
        seen = table.get(key)
        if seen is None:
            seen = self.tcp_old.get(key)
        if flags & 0x12 == 0x02:  # SYN without ACK: a connection starts
            seq = int.from_bytes(buf[l4 + 4:l4 + 8], "big")
            if seen == seq:
                self.count("pcap-duplicate-syn")  # retransmitted, or seen twice
                table[key] = seq
                return None
            flip = inferred = False
        elif seen is not None:  # SYN-ACK of a connection we know
            table[key] = seen
            return None
        elif flags & 0x12 == 0x12:  # SYN-ACK of a SYN we did not see
            flip = inferred = True
            seq = -1
        else:
            direction = self._server_first(buf, l4)
            if direction is None:
                self.count("pcap-direction-unknown")
                table[key] = -1  # decide once per 5-tuple
                return None
            flip, inferred, seq = direction, True, -1
        if len(table) >= TABLE_GENERATION:
            self.tcp_old, self.tcp = table, {}
            table = self.tcp
        back: int | None = -1
        if not flip and buf[l4 + 3] == DNS_PORT and not buf[l4 + 2]:
            # DNS over TCP: the server's segments carry answers, so they go to the
            # stream reassembly instead of passing as packets of a known connection.
            da = sa + alen
            self.dns.tcp_open(buf[da:da + alen] + buf[sa:da] + buf[l4 + 2:l4 + 4]
                              + buf[l4:l4 + 2])
            back = None
        return self._connect(table, key, -1 if flip else seq, back, b"", "TCP", buf, l4, sa,
                             alen, self.conv(ts_a, ts_b), flip, inferred)

    @staticmethod
    def _server_first(buf: bytes, l4: int) -> bool | None:
        """Mid-connection packet: True = sent by the server, None = undecidable."""
        sport = buf[l4] << 8 | buf[l4 + 1]
        dport = buf[l4 + 2] << 8 | buf[l4 + 3]
        if sport >= EPHEMERAL_MIN > dport:
            return False
        if dport >= EPHEMERAL_MIN > sport:
            return True
        return None

    def _udp(self, buf: bytes, l4: int, sa: int, alen: int, key: bytes, ts_a: int,
             ts_b: int) -> object:
        ts = self.conv(ts_a, ts_b)
        table = self.udp
        last = table.get(key)
        if last is None:
            last = self.udp_old.get(key)
        if last is not None and ts - last <= self.window:
            table[key] = ts
            return None
        # A first packet from a non-ephemeral to an ephemeral port is a reply whose
        # request the capture missed.
        flip = last is None and (buf[l4 + 2] << 8 | buf[l4 + 3]) >= EPHEMERAL_MIN > (
            buf[l4] << 8 | buf[l4 + 1])
        if len(table) >= TABLE_GENERATION:
            self.udp_old, self.udp = table, {}
            table = self.udp
        return self._connect(table, key, ts, ts, b"", "UDP", buf, l4, sa, alen, ts, flip,
                             flip)

    def _dns_udp(self, buf: bytes, l4: int, sa: int, alen: int, key: bytes, end: int,
                 ts_a: int, ts_b: int) -> object:
        """A datagram from port 53: its flow outcome, plus the bindings of the answer."""
        rec = self._udp(buf, l4, sa, alen, key, ts_a, ts_b)
        da = sa + alen
        client_raw = buf[da:da + alen]
        names = self.dns.udp(buf, l4, end, self.addr.get(client_raw) or self.text(client_raw),
                             client_raw, self.conv(ts_a, ts_b), self.path)
        if not names:
            return rec
        return names if rec is None else [rec, *names]

    def _dns_tcp(self, buf: bytes, l4: int, sa: int, alen: int, key: bytes, end: int,
                 ts_a: int, ts_b: int) -> object:
        """A segment from the server of a DNS-over-TCP connection."""
        if l4 + 20 > end:
            raise _BadPacket("truncated-packet")
        if alen == 4:
            ip = sa - 12
            length = buf[ip + 2] << 8 | buf[ip + 3]
        else:
            ip = sa - 8
            length = buf[ip + 4] << 8 | buf[ip + 5]
            length = length and 40 + length
        # The IP length says where the payload ends (Ethernet pads short frames); a
        # segmentation-offload capture may say 0: then the captured bytes do.
        payload_end = ip + length if length else end
        da = sa + alen
        client_raw = buf[da:da + alen]
        return self.dns.tcp_segment(key, buf, l4, payload_end, end,
                                    self.addr.get(client_raw) or self.text(client_raw),
                                    client_raw, self.conv(ts_a, ts_b), self.path) or None

    def _tunnel(self, buf: bytes, l4: int, end: int, dport: int) -> tuple[int, int] | None:
        """(inner link type, inner offset) of a VXLAN/Geneve packet, else None."""
        hdr = l4 + 8
        if hdr + 8 > end:
            return None
        if dport in _VXLAN_PORTS:
            if not buf[hdr] & 0x08:  # the I flag: a valid VNI follows
                return None
            return LINKTYPE_ETHERNET, hdr + 8
        if buf[hdr] >> 6:  # Geneve version 0 only
            return None
        inner = hdr + 8 + (buf[hdr] & 0x3F) * 4
        ptype = buf[hdr + 2] << 8 | buf[hdr + 3]
        if ptype == 0x6558:
            return LINKTYPE_ETHERNET, inner
        if ptype in (_ETH_IPV4, _ETH_IPV6):
            return LINKTYPE_RAW, inner
        return None

    def _icmp(self, buf: bytes, l4: int, end: int, sa: int, alen: int, ts_a: int,
              ts_b: int, proto: int) -> object:
        if l4 + 8 > end:
            raise _BadPacket("truncated-packet")
        kind = buf[l4]
        if kind != (8 if proto == 1 else 128):
            self.count("pcap-icmp-not-echo-request")
            return None
        da = sa + alen
        key = bytes((proto,)) + buf[sa:da + alen] + buf[l4 + 4:l4 + 6]  # + identifier
        ts = self.conv(ts_a, ts_b)
        table = self.other
        last = table.get(key)
        if last is None:
            last = self.other_old.get(key)
        if last is not None and ts - last <= self.window:
            table[key] = ts
            return None
        if len(table) >= TABLE_GENERATION:
            self.other_old, self.other = table, {}
            table = self.other
        return self._connect(table, key, ts, None, b"", "ICMP" if proto == 1 else "ICMPv6",
                             buf, l4, sa, alen, ts, False, False, dport=kind)

    def _sctp(self, buf: bytes, l4: int, end: int, sa: int, alen: int, ts_a: int,
              ts_b: int) -> object:
        if l4 + 16 > end:
            raise _BadPacket("truncated-packet")
        chunk = buf[l4 + 12]
        da = sa + alen
        key = b"\x84" + buf[sa:da + alen] + buf[l4:l4 + 4]
        table = self.other
        seen = table.get(key)
        if seen is None:
            seen = self.other_old.get(key)
        if chunk == 1:  # INIT: an association starts
            if l4 + 20 > end:
                raise _BadPacket("truncated-packet")
            tag = int.from_bytes(buf[l4 + 16:l4 + 20], "big")
            if seen == tag:
                self.count("pcap-duplicate-syn")
                table[key] = tag
                return None
            flip = inferred = False
        elif seen is not None:
            table[key] = seen
            return None
        elif chunk == 2:  # INIT-ACK of an INIT we did not see
            flip = inferred = True
            tag = -1
        else:
            direction = self._server_first(buf, l4)
            if direction is None:
                self.count("pcap-direction-unknown")
                table[key] = -1
                return None
            flip, inferred, tag = direction, True, -1
        if len(table) >= TABLE_GENERATION:
            self.other_old, self.other = table, {}
            table = self.other
        return self._connect(table, key, -1 if flip else tag, -1, b"\x84", "SCTP", buf, l4,
                             sa, alen, self.conv(ts_a, ts_b), flip, inferred)


# The live capture (recorder/agent/capture.py) decodes frames with the same class.
_Decoder = PacketDecoder
BadPacket = _BadPacket


# --------------------------------------------------------------------------- containers


class _Chunks:
    """A growing window on the stream: ``need(n)`` makes n bytes from ``pos`` available."""

    __slots__ = ("stream", "buf", "pos", "eof")

    def __init__(self, stream: BinaryIO, initial: bytes = b"") -> None:
        self.stream = stream
        self.buf = initial
        self.pos = 0
        self.eof = False

    def need(self, n: int) -> bool:
        """True when buf[pos:pos+n] is complete; False at end of file."""
        while len(self.buf) - self.pos < n:
            if self.eof:
                return False
            more = self.stream.read(max(CHUNK, n))
            if not more:
                self.eof = True
                return False
            self.buf = self.buf[self.pos:] + more
            self.pos = 0
        return True

    def at_end(self) -> bool:
        return not self.need(1)


def _classic(chunks: _Chunks, path: str, report: ReadReport, dec: PacketDecoder,
             stats: list[int]) -> Iterator[object]:
    if not chunks.need(24):
        raise InputError("truncated pcap file header (24 bytes expected)", path)
    head = chunks.buf[chunks.pos:chunks.pos + 24]
    order, unit = _PCAP_MAGIC[int.from_bytes(head[:4], "little")]
    linktype = struct.unpack(order + "I", head[20:24])[0] & 0xFFFF
    chunks.pos += 24
    dec.conv = lambda sec, frac: sec * 1_000_000_000 + frac * unit
    unpack_from = struct.Struct(order + "IIII").unpack_from
    packet = dec.packet
    supported = linktype in SUPPORTED_LINKTYPES
    ethernet = linktype == LINKTYPE_ETHERNET
    # Record header and the packet's Ethernet/IPv4/TCP fields in one unpack. The file's
    # byte order applies to both, so the network-order constants are byte-swapped for
    # little-endian files (they are only compared).
    header_and_fields = struct.Struct(order + "IIII12xHB5xHxB23xB").unpack_from
    eth_ipv4 = 0x0800 if order == ">" else 0x0008
    frag_mask = 0x1FFF if order == ">" else 0xFF1F
    n = decoded = 0
    walk = None
    walkable = linktype in _WALK_LINKTYPES
    buf, pos = chunks.buf, chunks.pos
    size = len(buf)
    try:
        while True:
            if walk is not None:
                # Most of the file: the whole buffer at a time, see pcapwalk. What is
                # left (a record the buffer ends in) is read below, as it always was.
                offsets, after = walk.record_starts(buf, pos, size, order == ">", MAX_RECORD)
                if len(offsets):
                    counts = [n, decoded]
                    try:
                        yield from walk.decode_batch(dec, buf, offsets, after, linktype, unit,
                                                     unpack_from, report, path, counts)
                    finally:
                        n, decoded = counts
                pos = after
            elif walkable and n >= BULK_AFTER:
                from recorder.sources import pcapwalk as walk
                continue
            # The buffer is refilled only when a record runs past its end.
            if pos + 16 > size:
                chunks.pos = pos
                if not chunks.need(16):
                    break
                buf, pos = chunks.buf, chunks.pos
                size = len(buf)
            n += 1
            if ethernet and pos + 64 <= size:
                sec, frac, caplen, wirelen, et, vihl, frag, proto, flags = header_and_fields(
                    buf, pos)
                end = pos + 16 + caplen
                if (proto == 6 and et == eth_ipv4 and vihl == 0x45 and caplen >= 54
                        and not (flags & 0x02 or frag & frag_mask) and end <= size
                        and buf[pos + 42:pos + 54] in dec.tcp):
                    # Inlined from PacketDecoder.packet: a TCP packet without SYN of a
                    # connection in the current table, the bulk of every capture,
                    # costs this one unpack and one lookup.
                    pos = end
                    decoded += 1
                    continue
            else:
                sec, frac, caplen, wirelen = unpack_from(buf, pos)
                end = pos + 16 + caplen
            if end > size:
                if caplen > MAX_RECORD:
                    report.skip(path, n, "corrupt-record",
                                f"packet length {caplen} is impossible; the rest of the "
                                "file cannot be read (re-copy or re-capture it)")
                    return
                chunks.pos = pos
                if not chunks.need(16 + caplen):
                    report.skip(path, n, "truncated-packet",
                                f"the file ends inside packet {n} (cut-off copy or capture?)")
                    return
                buf, pos = chunks.buf, chunks.pos
                size = len(buf)
                end = pos + 16 + caplen
            start = pos + 16
            pos = end
            if not supported:
                report.skip(path, n, "unsupported-link-type", _linktype_hint(linktype))
                continue
            try:
                rec = packet(linktype, buf, start, end, sec, frac)
            except (_BadPacket, IndexError) as e:
                _bad_packet(report, path, n, e, caplen < wirelen)
                continue
            decoded += 1
            if rec is not None:
                if type(rec) is list:  # a DNS answer's bindings
                    yield from rec
                else:
                    yield rec
        if chunks.buf[chunks.pos:]:  # fewer than 16 bytes left: a cut record header
            report.skip(path, n + 1, "truncated-packet",
                        f"the file ends inside the header of packet {n + 1}")
    finally:
        stats[0] += n
        stats[1] += decoded


def _linktype_hint(linktype: int) -> str:
    return (f"link type {linktype} is not supported; supported: "
            + ", ".join(str(t) for t in sorted(SUPPORTED_LINKTYPES))
            + " (re-capture with tcpdump -i <iface> or -i any)")


def _tsconv(resol: int, offset_s: int) -> Callable[[int, int], int]:
    """pcapng if_tsresol/if_tsoffset -> (ts_high, ts_low) -> ns, checked: a 64-bit
    count at any resolution plus any offset spans far more than real times do."""
    base = offset_s * 1_000_000_000
    conv: Callable[[int, int], int]
    if resol & 0x80:  # power of two
        shift = resol & 0x7F
        conv = lambda hi, lo: ((hi << 32 | lo) * 1_000_000_000 >> shift) + base  # noqa: E731
    elif resol <= 9:
        mul = 10 ** (9 - resol)
        conv = lambda hi, lo: (hi << 32 | lo) * mul + base  # noqa: E731
    else:
        div = 10 ** (resol - 9)
        conv = lambda hi, lo: (hi << 32 | lo) // div + base  # noqa: E731

    def checked(hi: int, lo: int) -> int:
        try:
            return check_time_ns(conv(hi, lo))
        except ValueError as e:
            raise _BadPacket("bad-time", f"{e}; if_tsresol={resol}, if_tsoffset={offset_s}s"
                             ) from None
    return checked


def _idb_interface(body: bytes, order: str) -> tuple[int, Callable[[int, int], int]]:
    """(link type, clock) of an Interface Description Block's body; link type -1 when
    the body is shorter than its fixed part (LinkType, Reserved, SnapLen: 8 bytes,
    draft-ietf-opsawg-pcapng section 4.2), which the packets naming it are skipped for."""
    if len(body) < 8:
        return -1, _tsconv(6, 0)
    linktype = struct.unpack_from(order + "H", body, 0)[0]
    resol, offset_s = 6, 0
    pos = 8
    opt = struct.Struct(order + "HH")
    while pos + 4 <= len(body):
        code, length = opt.unpack_from(body, pos)
        if code == 0:
            break
        value = body[pos + 4:pos + 4 + length]
        # len(value), not length: an option may claim more than the block holds
        if code == 9 and len(value) >= 1:
            resol = value[0]
        elif code == 14 and len(value) >= 8:
            offset_s = struct.unpack(order + "q", value[:8])[0]
        pos += 4 + ((length + 3) & ~3)
    return linktype, _tsconv(resol, offset_s)


def _pcapng(chunks: _Chunks, path: str, report: ReadReport, dec: PacketDecoder,
            stats: list[int]) -> Iterator[object]:
    order = "<"
    interfaces: list[tuple[int, Callable[[int, int], int]]] = []
    packet = dec.packet
    n = decoded = 0  # packet number (packet blocks only), for messages
    ts_hi = ts_lo = 0
    block_hdr = struct.Struct("<II")
    epb = struct.Struct("<IIIII")
    try:
        while chunks.need(12):
            buf, pos = chunks.buf, chunks.pos
            btype = int.from_bytes(buf[pos:pos + 4], "little")
            if btype == _PCAPNG_SHB:
                bom = int.from_bytes(buf[pos + 8:pos + 12], "little")
                if bom == _PCAPNG_BOM:
                    order = "<"
                elif bom == 0x4D3C2B1A:
                    order = ">"
                else:
                    report.skip(path, n + 1, "corrupt-block",
                                "section header with a bad byte-order magic; the rest of "
                                "the file cannot be read")
                    return
                block_hdr = struct.Struct(order + "II")
                epb = struct.Struct(order + "IIIII")
                interfaces = []
            btype, blen = block_hdr.unpack_from(buf, pos)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                report.skip(path, n + 1, "corrupt-block",
                            f"block length {blen} is impossible; the rest of the file "
                            "cannot be read (re-copy or re-capture it)")
                return
            if not chunks.need(blen):
                if btype in (2, 3, 6):
                    n += 1
                    report.skip(path, n, "truncated-packet",
                                f"the file ends inside packet {n} (cut-off copy?)")
                else:
                    report.skip(path, n + 1, "truncated-block", "the file ends inside a block")
                return
            buf, pos = chunks.buf, chunks.pos
            chunks.pos = pos + blen
            if btype == 6 or btype == 2:  # enhanced / obsolete packet block
                n += 1
                ifid, ts_hi, ts_lo, caplen, wirelen = epb.unpack_from(buf, pos + 8)
                if btype == 2:  # interface id is a u16 followed by a u16 drop count
                    ifid = struct.unpack_from(order + "H", buf, pos + 8)[0]
                data = pos + 28
                if caplen > blen - 32:
                    report.skip(path, n, "corrupt-block", "captured length beyond the block")
                    continue
                if ifid >= len(interfaces):
                    report.skip(path, n, "unknown-interface",
                                f"packet names interface {ifid}; the file describes "
                                f"{len(interfaces)}")
                    continue
                linktype, dec.conv = interfaces[ifid]
            elif btype == 3:  # simple packet block: interface 0, no timestamp
                n += 1
                if not interfaces:
                    report.skip(path, n, "unknown-interface",
                                "simple packet before any interface")
                    continue
                # The format has no time here: the previous packet's (ts_hi, ts_lo)
                # and clock are the closest there is.
                linktype = interfaces[0][0]
                data = pos + 12
                wirelen = struct.unpack_from(order + "I", buf, pos + 8)[0]
                caplen = min(wirelen, blen - 16)
            else:
                if btype == 1:
                    interfaces.append(_idb_interface(buf[pos + 8:pos + blen - 4], order))
                    if len(interfaces) == 1:
                        dec.conv = interfaces[0][1]
                continue  # section header, name resolution, statistics, custom blocks
            if linktype not in SUPPORTED_LINKTYPES:
                if linktype < 0:
                    report.skip(path, n, "corrupt-block", "the packet's interface description "
                                "block is too short to hold a link type")
                else:
                    report.skip(path, n, "unsupported-link-type", _linktype_hint(linktype))
                continue
            try:
                rec = packet(linktype, buf, data, data + caplen, ts_hi, ts_lo)
            except (_BadPacket, IndexError) as e:
                _bad_packet(report, path, n, e, caplen < wirelen)
                continue
            decoded += 1
            if rec is not None:
                if type(rec) is list:  # a DNS answer's bindings
                    yield from rec
                else:
                    yield rec
        if chunks.buf[chunks.pos:]:
            report.skip(path, n + 1, "truncated-block", "the file ends inside a block header")
    finally:
        stats[0] += n
        stats[1] += decoded


# --------------------------------------------------------------------------- reader


def read(
    stream: BinaryIO, path: str, report: ReadReport, options: ReadOptions
) -> Iterator[LogRecord]:
    head = stream.read(12)
    if not sniff(head):
        raise InputError(
            "not a pcap or pcapng file (unknown magic number "
            f"{head[:4].hex() or 'none'}); give a capture written by tcpdump, "
            "Wireshark or flowpol record", path)
    report.formats.setdefault(path, "pcap")  # its items are packets (report.item_unit)
    chunks = _Chunks(stream, head)
    dec = PacketDecoder(path, options)
    stats = [0, 0]  # packets seen, packets decoded
    kept = 0
    container = _pcapng if int.from_bytes(head[:4], "little") == _PCAPNG_SHB else _classic
    try:
        for rec in container(chunks, path, report, dec, stats):
            kept += 1
            yield rec  # type: ignore[misc]
    finally:
        report.lines[path] += stats[0]
        report.kept[path] += kept
        dec.report_counts(report, stats[1], kept)
    if stats[1] == 0 and stats[0] > 0:
        raise InputError(
            "no packet could be read (every one was skipped, see the report); check "
            "that the file is a complete capture of a supported link type", path)


SOURCE = Source(
    name="pcap",
    description="pcap or pcapng packet capture",
    sniff=sniff,
    read=read,
)
