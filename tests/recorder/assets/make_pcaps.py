"""Regenerate the pcap/pcapng test assets: ``python tests/recorder/assets/make_pcaps.py``.

Packets are built with scapy (so their bytes are right by an independent
implementation); the containers are written here with ``struct`` because the tests need
variants scapy does not write (big-endian pcap, pcapng with several interfaces and
timestamp resolutions, simple packet blocks, corrupt and truncated files). Output is
deterministic: fixed addresses, MACs, ports, sequence numbers and times.

What each file holds is described in SCENARIOS below; tests/recorder/test_pcap.py states
what the reader must find in each.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Callable

from scapy.all import (  # type: ignore[attr-defined]
    ARP,
    ICMP,
    IP,
    SCTP,
    TCP,
    UDP,
    Dot1AD,
    Dot1Q,
    Ether,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    Raw,
    SCTPChunkInit,
    SCTPChunkInitAck,
)
from scapy.contrib.geneve import GENEVE
from scapy.layers.vxlan import VXLAN

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

OUT = Path(__file__).resolve().parent / "pcap"
T0 = 1_700_000_000  # seconds; every packet time is T0 + an offset
CLIENT, SERVICE, BACKEND = "10.244.1.5", "10.96.0.10", "10.244.2.7"
CLIENT6, SERVER6 = "fd00:10:244:1::5", "fd00:10:96::10"
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"

Packet = tuple[float, bytes]  # (seconds after T0, frame bytes)


def eth(payload: object) -> bytes:
    return bytes(Ether(src=MAC_A, dst=MAC_B) / payload)  # type: ignore[operator]


def l3(payload: object) -> bytes:
    return bytes(payload)  # type: ignore[call-overload]


# --------------------------------------------------------------------------- scenarios


def basic_frames(frame: Callable[[object], bytes] = eth) -> list[Packet]:
    """One TCP connection (with a retransmitted SYN), DNS over UDP twice within the
    window and once after it, one ping, ARP noise."""
    c, s = CLIENT, SERVICE
    syn = IP(src=c, dst=s) / TCP(sport=40000, dport=80, flags="S", seq=1000)
    return [
        (0.000, eth(ARP(psrc=c, pdst=s))) if frame is eth else (0.0, frame(IP(src=c, dst=s) / ICMP(type=0))),
        (0.100, frame(syn)),
        (1.100, frame(syn)),  # retransmission: same ISN, same connection
        (1.101, frame(IP(src=s, dst=c) / TCP(sport=80, dport=40000, flags="SA", seq=5000, ack=1001))),
        (1.102, frame(IP(src=c, dst=s) / TCP(sport=40000, dport=80, flags="A", seq=1001, ack=5001))),
        (1.103, frame(IP(src=c, dst=s) / TCP(sport=40000, dport=80, flags="PA", seq=1001, ack=5001) / Raw(b"GET / HTTP/1.0\r\n\r\n"))),
        (1.200, frame(IP(src=s, dst=c) / TCP(sport=80, dport=40000, flags="FA", seq=5001, ack=1019))),
        (2.000, frame(IP(src=c, dst=s) / UDP(sport=50000, dport=53) / Raw(b"\x12\x34query"))),
        (2.001, frame(IP(src=s, dst=c) / UDP(sport=53, dport=50000) / Raw(b"\x12\x34answer"))),
        (4.000, frame(IP(src=c, dst=s) / UDP(sport=50000, dport=53) / Raw(b"\x12\x35query"))),
        (200.0, frame(IP(src=c, dst=s) / UDP(sport=50000, dport=53) / Raw(b"\x12\x36query"))),
        (201.0, frame(IP(src=c, dst=BACKEND) / ICMP(type=8, id=7, seq=1))),
        (201.1, frame(IP(src=BACKEND, dst=c) / ICMP(type=0, id=7, seq=1))),
        (202.0, frame(IP(src=c, dst=BACKEND) / ICMP(type=8, id=7, seq=2))),
    ]


def raw_ip(payload: object) -> bytes:
    return l3(payload)


def sll(payload: object) -> bytes:
    ip = l3(payload)
    ethertype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    # packet type 4 (outgoing), ARPHRD_ETHER, 6-byte address, padded to 8
    return struct.pack("!HHH8sH", 4, 1, 6, bytes.fromhex("02000000000a") + b"\0\0", ethertype) + ip


def sll2(payload: object) -> bytes:
    ip = l3(payload)
    ethertype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    # protocol, reserved, ifindex 3, ARPHRD_ETHER, outgoing, 6-byte address
    return struct.pack("!HHIHBB8s", ethertype, 0, 3, 1, 4, 6,
                       bytes.fromhex("02000000000a") + b"\0\0") + ip


def vlan_frames() -> list[Packet]:
    one = Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=10)
    two = Ether(src=MAC_A, dst=MAC_B, type=0x88A8) / Dot1AD(vlan=100) / Dot1Q(vlan=20)
    return [
        (0.0, bytes(one / IP(src=CLIENT, dst=SERVICE) / TCP(sport=40001, dport=443, flags="S", seq=1))),
        (0.1, bytes(two / IP(src=CLIENT, dst=SERVICE) / TCP(sport=40002, dport=8443, flags="S", seq=2))),
        (0.2, bytes(two / IPv6(src=CLIENT6, dst=SERVER6) / UDP(sport=40003, dport=53) / Raw(b"q"))),
    ]


def tunnel_frames() -> list[Packet]:
    """VXLAN on 4789 and 8472 and Geneve with options, carrying pod packets between
    nodes 192.168.0.1/.2. Only the inner connections count."""
    outer = Ether(src=MAC_A, dst=MAC_B) / IP(src="192.168.0.1", dst="192.168.0.2")
    inner_syn = Ether(src=MAC_A, dst=MAC_B) / IP(src=CLIENT, dst=BACKEND) / TCP(sport=40010, dport=8080, flags="S", seq=9)
    inner_dns = Ether(src=MAC_A, dst=MAC_B) / IP(src=CLIENT, dst="10.244.3.3") / UDP(sport=40011, dport=5353) / Raw(b"q")
    inner_v6 = Ether(src=MAC_A, dst=MAC_B) / IPv6(src=CLIENT6, dst=SERVER6) / TCP(sport=40012, dport=9090, flags="S", seq=3)
    return [
        (0.0, bytes(outer / UDP(sport=51000, dport=4789) / VXLAN(vni=1) / inner_syn)),
        (0.1, bytes(outer / UDP(sport=51001, dport=8472) / VXLAN(vni=1) / inner_dns)),
        (0.2, bytes(outer / UDP(sport=51002, dport=6081)
                    / GENEVE(vni=7, proto=0x6558, optionlen=2, options=b"\x01\x02\x03\x04\x05\x06\x07\x08")
                    / inner_v6)),
    ]


def ipv6_ext_frames() -> list[Packet]:
    base = IPv6(src=CLIENT6, dst=SERVER6)
    return [
        (0.0, eth(base / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(sport=40020, dport=443, flags="S", seq=4))),
        # first fragment carries the UDP header; the second has none and is not a flow
        (0.1, eth(IPv6(src=CLIENT6, dst=SERVER6, nh=44) / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=99)
                  / UDP(sport=40021, dport=53, len=2000, chksum=0) / Raw(b"a" * 64))),
        (0.2, eth(IPv6(src=CLIENT6, dst=SERVER6, nh=44) / IPv6ExtHdrFragment(nh=17, offset=9, m=0, id=99)
                  / Raw(b"b" * 64))),
        (0.3, eth(base / ICMPv6EchoRequest(id=5, seq=1))),
    ]


def sctp_frames() -> list[Packet]:
    return [
        (0.0, eth(IP(src=CLIENT, dst=SERVICE) / SCTP(sport=40030, dport=3868, tag=0) / SCTPChunkInit(init_tag=77))),
        (0.1, eth(IP(src=SERVICE, dst=CLIENT) / SCTP(sport=3868, dport=40030, tag=77) / SCTPChunkInitAck(init_tag=88))),
        # an association whose INIT the capture missed: its INIT-ACK gives the direction
        (0.2, eth(IP(src="10.244.2.8", dst=CLIENT) / SCTP(sport=3868, dport=40031, tag=5) / SCTPChunkInitAck(init_tag=6))),
    ]


def midstream_frames() -> list[Packet]:
    """A capture that starts mid-connection."""
    return [
        # SYN-ACK without its SYN: the client is the destination
        (0.0, eth(IP(src=BACKEND, dst=CLIENT) / TCP(sport=8080, dport=40040, flags="SA", seq=1, ack=2))),
        (0.1, eth(IP(src=CLIENT, dst=BACKEND) / TCP(sport=40040, dport=8080, flags="A", seq=2, ack=2))),
        # data from server (port 5432) to client (ephemeral 45000): client = destination
        (0.2, eth(IP(src="10.244.2.9", dst=CLIENT) / TCP(sport=5432, dport=45000, flags="PA") / Raw(b"row"))),
        (0.3, eth(IP(src=CLIENT, dst="10.244.2.9") / TCP(sport=45000, dport=5432, flags="A"))),
        # both ports ephemeral: no way to tell, counted, not guessed
        (0.4, eth(IP(src="10.244.2.10", dst=CLIENT) / TCP(sport=40000, dport=50000, flags="A"))),
        # a DNS answer whose query was missed: flipped, inferred
        (0.5, eth(IP(src="10.244.3.3", dst=CLIENT) / UDP(sport=53, dport=41000) / Raw(b"answer"))),
    ]


def junk_frames() -> list[Packet]:
    """Good packets around bad ones: a frame cut inside its IP header, IPv4 with a
    wrong version nibble."""
    good1 = eth(IP(src=CLIENT, dst=SERVICE) / TCP(sport=40050, dport=80, flags="S", seq=1))
    good2 = eth(IP(src=CLIENT, dst=SERVICE) / TCP(sport=40051, dport=80, flags="S", seq=2))
    bad_version = bytearray(good2)
    bad_version[14] = 0x75
    return [(0.0, good1), (0.1, good1[:20]), (0.2, bytes(bad_version)), (0.3, good2)]


def dns_answer(qname: str, qtype: str, records: list[tuple[str, int, str, str]],
               rcode: int = 0, truncated: bool = False, msg_id: int = 0x4242) -> bytes:
    """A DNS response in wire format, as a resolver writes it (name compression
    included), built by dnspython: ``records`` are (owner, ttl, type, rdata)."""
    query = dns.message.make_query(qname, qtype, id=msg_id)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for owner, ttl, rtype, rdata in records:
        response.answer.append(dns.rrset.from_text(owner, ttl, "IN", rtype, rdata))
    if truncated:
        response.flags |= dns.flags.TC
    return response.to_wire()


def dns_frames() -> list[Packet]:
    """DNS answers a capture meets: a CNAME chain asked in mixed case (with a record
    off the chain), AAAA, NXDOMAIN, SERVFAIL, a truncated UDP answer retried over TCP
    (the answer split over two segments, one of them retransmitted), the same answer
    seen twice, a malformed one, a name no policy can carry, and an IPv6 transport."""
    c, s = CLIENT, SERVICE
    chain = dns_answer("Api.Example.COM.", "A", [
        ("Api.Example.COM.", 300, "CNAME", "edge.cdn.example."),
        ("edge.cdn.example.", 20, "A", "203.0.113.5"),
        ("edge.cdn.example.", 20, "A", "203.0.113.6"),
        ("other.example.", 50, "A", "198.51.100.99")])  # off the chain: binds nothing
    aaaa = dns_answer("api.example.com.", "AAAA", [("api.example.com.", 60, "AAAA", "2001:db8::5")])
    big_records = [("big.example.", 45, "A", f"203.0.113.{100 + i}") for i in range(12)]
    big_tcp = dns_answer("big.example.", "A", big_records, msg_id=7)
    big_udp = dns_answer("big.example.", "A", [], truncated=True, msg_id=7)
    stream = struct.pack("!H", len(big_tcp)) + big_tcp
    half = len(stream) // 2
    loop = bytearray(dns_answer("loop.example.", "A", []))
    loop[12:14] = b"\xc0\x0c"  # the question's name points at itself
    bad_name = dns_answer("bad\\032name.example.", "A", [("bad\\032name.example.", 5, "A", "203.0.113.9")])

    def udp(t: float, port: int, payload: bytes) -> Packet:
        return (t, eth(IP(src=s, dst=c) / UDP(sport=53, dport=port) / Raw(payload)))

    def query(t: float, port: int) -> Packet:
        return (t, eth(IP(src=c, dst=s) / UDP(sport=port, dport=53) / Raw(b"\x42\x42query")))

    def seg(t: float, flags: str, seq: int, ack: int, payload: bytes = b"", to_server: bool = False) -> Packet:
        a, b, p, q = (c, s, 40100, 53) if to_server else (s, c, 53, 40100)
        return (t, eth(IP(src=a, dst=b) / TCP(sport=p, dport=q, flags=flags, seq=seq, ack=ack) / Raw(payload)))

    return [
        query(0.0, 50100), udp(0.001, 50100, chain),
        udp(0.0011, 50100, chain),  # the same answer on another interface
        query(0.01, 50101), udp(0.011, 50101, aaaa),
        query(1.0, 50102), udp(1.001, 50102, dns_answer("nope.example.", "A", [], rcode=dns.rcode.NXDOMAIN)),
        query(1.1, 50103), udp(1.101, 50103, dns_answer("flaky.example.", "A", [], rcode=dns.rcode.SERVFAIL)),
        query(2.0, 50104), udp(2.001, 50104, big_udp),
        (2.01, eth(IP(src=c, dst=s) / TCP(sport=40100, dport=53, flags="S", seq=100))),
        seg(2.011, "SA", 9000, 101),
        seg(2.012, "A", 101, 9001, to_server=True),
        seg(2.013, "PA", 101, 9001, b"\x00\x1dquery-for-big-example-0000000", to_server=True),
        seg(2.014, "PA", 9001, 131, stream[:half]),
        seg(2.015, "PA", 9001, 131, stream[:half]),  # retransmitted
        seg(2.016, "PA", 9001 + half, 131, stream[half:]),
        seg(2.017, "FA", 9001 + len(stream), 131),
        query(3.0, 50105), udp(3.001, 50105, bytes(loop)),
        query(3.1, 50106), udp(3.101, 50106, bad_name),
        (4.0, eth(IPv6(src=SERVER6, dst=CLIENT6) / UDP(sport=53, dport=50107)
                  / Raw(dns_answer("v6.example.", "AAAA", [("v6.example.", 0, "AAAA", "2001:db8::6")])))),
    ]


def cut_pcap(packets: list[Packet], snaplen: int) -> bytes:
    """A classic pcap whose records keep at most ``snaplen`` bytes of each packet."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)]
    for t, data in packets:
        us = round(t * 1_000_000)
        kept = data[:snaplen]
        out.append(struct.pack("<IIII", T0 + us // 1_000_000, us % 1_000_000, len(kept), len(data)))
        out.append(kept)
    return b"".join(out)


# --------------------------------------------------------------------------- writers


def pcap(packets: list[Packet], linktype: int = 1, order: str = "<", nano: bool = False) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for t, data in packets:
        ns = T0 * 1_000_000_000 + round(t * 1_000_000) * 1000  # whole microseconds
        sec, frac = divmod(ns, 1_000_000_000)
        out.append(struct.pack(order + "IIII", sec, frac if nano else frac // 1000,
                               len(data), len(data)))
        out.append(data)
    return b"".join(out)


def _opt(code: int, value: bytes, order: str) -> bytes:
    pad = b"\0" * (-len(value) % 4)
    return struct.pack(order + "HH", code, len(value)) + value + pad


def _block(btype: int, body: bytes, order: str) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", total)


def shb(order: str = "<") -> bytes:
    return _block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
                  + _opt(4, b"flowpol make_pcaps", order) + _opt(0, b"", order), order)


def idb(linktype: int, order: str = "<", tsresol: int | None = None, tsoffset: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += _opt(9, bytes([tsresol]), order)
    if tsoffset:
        opts += _opt(14, struct.pack(order + "q", tsoffset), order)
    if opts:
        opts += _opt(0, b"", order)
    return _block(1, struct.pack(order + "HHI", linktype, 0, 262144) + opts, order)


def epb(ifid: int, units: int, data: bytes, order: str = "<") -> bytes:
    return _block(6, struct.pack(order + "IIIII", ifid, units >> 32, units & 0xFFFFFFFF,
                                 len(data), len(data)) + data, order)


def spb(data: bytes, order: str = "<") -> bytes:
    return _block(3, struct.pack(order + "I", len(data)) + data, order)


def multi_interface_pcapng(order: str = "<") -> bytes:
    """Three interfaces with different link types and time resolutions, plus blocks a
    reader must skip (name resolution, statistics)."""
    t = T0 + 10
    syn = IP(src=CLIENT, dst=SERVICE) / TCP(sport=40060, dport=80, flags="S", seq=1)
    dns = IP(src=CLIENT, dst=SERVICE) / UDP(sport=40061, dport=53) / Raw(b"q")
    v6 = IPv6(src=CLIENT6, dst=SERVER6) / TCP(sport=40062, dport=443, flags="S", seq=2)
    return b"".join([
        shb(order),
        idb(1, order),  # Ethernet, microseconds (default)
        idb(276, order, tsresol=9),  # SLL2, nanoseconds
        idb(101, order, tsresol=0x80 | 10, tsoffset=100),  # raw IP, 2^-10 s, +100 s
        _block(4, b"\0" * 4, order),  # name resolution block: skipped
        epb(0, t * 1_000_000 + 250_000, eth(syn), order),
        epb(1, (t + 1) * 1_000_000_000 + 123_456_789, sll2(dns), order),
        epb(2, (t + 2 - 100) * 1024 + 512, raw_ip(v6), order),
        spb(eth(IP(src=CLIENT, dst=SERVICE) / TCP(sport=40063, dport=80, flags="S", seq=3)), order),
        _block(5, struct.pack(order + "III", 0, 0, 0), order),  # statistics: skipped
    ])


def write_all(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    basic = basic_frames()
    files = {
        "ethernet-le-usec.pcap": pcap(basic),
        "ethernet-be-nsec.pcap": pcap(basic, order=">", nano=True),
        "ethernet-be-usec.pcap": pcap(basic, order=">"),
        "ethernet-le-nsec.pcap": pcap(basic, nano=True),
        "linux-sll.pcap": pcap(basic_frames(sll), linktype=113),
        "linux-sll2.pcap": pcap(basic_frames(sll2), linktype=276),
        "raw-ip-101.pcap": pcap(basic_frames(raw_ip), linktype=101),
        "raw-ip-12.pcap": pcap(basic_frames(raw_ip), linktype=12),
        "vlan-qinq.pcap": pcap(vlan_frames()),
        "vxlan-geneve.pcap": pcap(tunnel_frames()),
        "ipv6-ext-headers.pcap": pcap(ipv6_ext_frames()),
        "sctp.pcap": pcap(sctp_frames()),
        "midstream.pcap": pcap(midstream_frames()),
        "multi-interface.pcapng": multi_interface_pcapng(),
        "multi-interface-be.pcapng": multi_interface_pcapng(">"),
        "junk-packets.pcap": pcap(junk_frames()),
        "unsupported-linktype.pcap": pcap(basic[:3], linktype=147),
        "header-only.pcap": pcap([]),
        "dns-answers.pcap": pcap(dns_frames()),
        "dns-snaplen.pcap": cut_pcap(dns_frames()[:2], 96),
        "bad-magic.pcap": b"\x12\x34\x56\x78" + pcap(basic)[4:],
    }
    good = pcap(basic[:4])
    files["truncated-record.pcap"] = good[:-10]  # cut inside the 4th packet's data
    files["truncated-header.pcap"] = good + b"\x01\x02\x03"  # cut inside a record header
    corrupt = bytearray(good)
    first_len = 24 + 16 + len(basic[0][1])
    second_len = 16 + len(basic[1][1])
    struct.pack_into("<I", corrupt, first_len + second_len + 8, 0x7FFFFFFF)  # 3rd caplen
    files["corrupt-length.pcap"] = bytes(corrupt)
    ng = multi_interface_pcapng()
    files["truncated.pcapng"] = ng[:-40]  # inside the statistics/last packet block
    written = []
    for name, data in sorted(files.items()):
        path = out / name
        path.write_bytes(data)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(p)
