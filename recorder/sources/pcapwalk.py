"""Bulk work for the classic pcap reader (recorder/sources/pcap.py): where the records
of a buffer start, and which of them are TCP packets that may be passed over with one
table lookup. numpy does both for a whole buffer at once; what it finds is checked, so
the result is exactly what walking the records one by one gives.

Record starts: a classic pcap record header is (ts_sec, ts_frac, caplen, wirelen) in the
file's byte order (https://www.tcpdump.org/manpages/pcap-savefile.5.html). Following
the caplen fields one record at a time costs a Python step per packet, more than the
rest of the reading of a packet that is passed over. Instead, every offset whose upper
16 bits of ts_sec equal those of the first record (18 hours of capture) and whose
caplen is below 65,536 is a candidate; the records are a chain through candidates
(each one's end is the next one's start), and only the chain counts: a candidate that
is no record start (bytes in a payload that look like a header) is never reached, and
a record start that is no candidate (a capture crossing the 18-hour mark, a packet of
64 KiB or more) is walked to with a Python step. So the offsets returned are those of
the one-by-one walk, whatever the bytes.

Skippable packets: ``tcp_codes`` marks the packets the reader's one-lookup test applies
to. The test and its conditions are the same as in ``PacketDecoder.packet``; a
marked packet whose connection is not in the table goes the general way.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import numpy as np

MAX_CANDIDATE_CAPLEN = 0xFFFF  # upper half of caplen zero: one more 16-bit test

# link type -> (length of the link header, offset of its ethertype or -1 when the
# link header has none: raw IP, where the IPv4 version/IHL byte is enough)
_LINK = {1: (14, 12), 113: (16, 14), 276: (20, 0), 101: (0, -1), 12: (0, -1),
         14: (0, -1), 228: (0, -1)}
ETHERNET = 1


def bulk_linktype(linktype: int) -> bool:
    return linktype in _LINK


def record_starts(buf: bytes, pos: int, size: int, big_endian: bool,
                  max_record: int) -> tuple[Any, int]:
    """(offsets, end): the starts of the consecutive complete records of ``buf[:size]``
    from ``pos`` (a record start) as an int64 array, and where the first record that is
    not complete in the buffer (or whose caplen exceeds ``max_record``) starts."""
    sec_off, hi_off = (0, 8) if big_endian else (2, 10)
    if size - pos < 16:
        return np.empty(0, np.int64), pos
    byteorder = "big" if big_endian else "little"
    sec_hi = int.from_bytes(buf[pos + sec_off:pos + sec_off + 2], byteorder)
    dtype = ">u2" if big_endian else "<u2"
    parts = []
    for q in (0, 1):  # offsets of each parity: 16-bit fields at even distances
        lo, hi = (pos - q + 1) // 2, (size - 16 - q) // 2
        if hi < lo:
            continue
        words = np.frombuffer(buf, dtype, count=(size - q) // 2, offset=q)
        m = np.flatnonzero(words[lo + sec_off // 2:hi + 1 + sec_off // 2] == sec_hi)
        m += lo
        m = m[words[m + hi_off // 2] == 0]
        parts.append(m * 2 + q)
    cand = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
    octets = np.frombuffer(buf, np.uint8, count=size)
    if big_endian:
        caplen = octets[cand + 10].astype(np.int64) << 8 | octets[cand + 11]
    else:
        caplen = octets[cand + 9].astype(np.int64) << 8 | octets[cand + 8]
    nxt = cand + 16 + caplen
    # a run ends where a record's end is not the next candidate
    breaks = np.flatnonzero(nxt[:-1] != cand[1:]).tolist()
    breaks.append(len(cand) - 1)
    start_at, end_at = cand.item, nxt.item
    count = len(cand)
    out: list[Any] = []
    walked: list[int] = []
    unpack = int.from_bytes
    ci = 0  # the candidates before it are behind pos
    while True:
        while ci < count and start_at(ci) < pos:
            ci += 1
        if ci < count and start_at(ci) == pos:
            j = breaks[bisect_left(breaks, ci)]
            if end_at(j) > size:  # the run's last record is cut by the buffer's end
                if j > ci:
                    _flush(out, walked)
                    out.append(cand[ci:j])
                pos = start_at(j)
                break
            _flush(out, walked)
            out.append(cand[ci:j + 1])
            pos = end_at(j)
            ci = j + 1
            continue
        if pos + 16 > size:
            break
        field = pos + 8
        length = unpack(buf[field:field + 4], byteorder)
        if length > max_record or pos + 16 + length > size:
            break
        walked.append(pos)
        pos += 16 + length
    _flush(out, walked)
    offsets = np.concatenate(out) if out else np.empty(0, np.int64)
    return offsets, pos


def _flush(out: list[Any], walked: list[int]) -> None:
    if walked:
        out.append(np.array(walked, np.int64))
        walked.clear()


# kinds of the records that are decoded, for the reader's dispatch
GENERAL, TCP_SYN, UDP, UDP_DNS = 0, 1, 2, 3
_TUNNEL_PORTS = (4789, 8472, 6081)  # VXLAN, Geneve: PacketDecoder decapsulates them


def classify(buf: bytes, offsets: Any, end: int, linktype: int) -> tuple[list[int], int]:
    """(codes, key_delta) for the records at ``offsets`` (the last one ending at
    ``end``), one code per record:

    * ``>= 0``: the offset of a TCP packet's table key (addresses and ports, 12 bytes);
      the packet is passed over when that key is in the current TCP table, which is
      ``PacketDecoder.packet``'s one-lookup test: IPv4 without options, first fragment,
      TCP with its flags byte captured; for Ethernet (its fast path) without a SYN or
      with an ACK, for the other link types without a SYN. Record offset = code -
      ``key_delta``.
    * ``< 0``: ``~(index << 2 | kind)``, a record to decode: ``kind`` says which of
      ``PacketDecoder.packet``'s Ethernet fast-path branches it takes (TCP_SYN: a SYN
      without ACK; UDP, UDP_DNS: a datagram not to a tunnel port, from port 53 for the
      latter), GENERAL when not known to take one.
    """
    link, et_off = _LINK[linktype]
    n = len(offsets)
    caplen = np.empty(n, np.int64)
    caplen[:-1] = offsets[1:] - offsets[:-1] - 16
    if n:
        caplen[-1] = end - offsets[-1] - 16
    ip = 16 + link  # from the record start
    key_delta = ip + 12
    octets = np.frombuffer(buf, np.uint8)
    ethernet = linktype == ETHERNET
    # the IPv4 header without options and the 8 bytes after it are captured; 14 for
    # a TCP flags byte
    fast = caplen >= link + 28
    sel = offsets[fast]
    ok = octets[sel + ip] == 0x45
    if et_off >= 0:
        ok &= octets[sel + 16 + et_off] == 0x08
        ok &= octets[sel + 17 + et_off] == 0x00
    ok &= (octets[sel + ip + 6] & 0x1F | octets[sel + ip + 7]) == 0
    proto = octets[sel + ip + 9]
    kind = np.zeros(n, np.int64)
    if ethernet:
        # the Ethernet fast path: 48 bytes for any, 54 for TCP
        ok &= caplen[fast] >= 48
        udp = ok & (proto == 17)
        l4 = sel + ip + 20
        dport = octets[l4 + 2].astype(np.int64) << 8 | octets[l4 + 3]
        for port in _TUNNEL_PORTS:
            udp &= dport != port
        dns = (octets[l4] == 0) & (octets[l4 + 1] == 53)
        k = np.zeros(len(sel), np.int64)
        k[udp] = UDP
        k[udp & dns] = UDP_DNS
        ok &= proto == 6
        ok &= caplen[fast] >= 54
        flags = octets[np.minimum(sel + ip + 33, len(octets) - 1)]  # masked when beyond
        syn = ok & ((flags & 0x12) == 0x02)
        k[syn] = TCP_SYN
        kind[fast] = k
        ok &= ~syn
    else:
        ok &= proto == 6
        ok &= caplen[fast] >= link + 34
        flags = octets[np.minimum(sel + ip + 33, len(octets) - 1)]
        ok &= (flags & 0x02) == 0
    skip = np.zeros(n, bool)
    skip[fast] = ok
    codes = np.where(skip, offsets + key_delta, ~(np.arange(n) << 2 | kind))
    return codes.tolist(), key_delta
