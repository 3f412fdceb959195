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

What a packet is: ``classify`` reads the few header bytes ``PacketDecoder.packet``
decides most packets by, for every record of the buffer at once: the TCP packets its
one-lookup test applies to (passed over when their connection is in the table, as
there) and which branch a SYN or a UDP datagram takes. ``decode_batch`` then goes
through the records in order: a TCP packet of a known connection costs one lookup; a
new connection or a UDP datagram is handled as the branch it takes would; everything
else, and every outcome that is not the common one, is left to ``PacketDecoder``.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

# link type -> (length of the link header, offset of its ethertype or -1 when the
# link header has none: raw IP, where the IPv4 version/IHL byte is enough); the keys
# are pcap._WALK_LINKTYPES
_LINK = {1: (14, 12), 113: (16, 14), 276: (20, 0), 101: (0, -1), 12: (0, -1),
         14: (0, -1), 228: (0, -1)}
ETHERNET = 1


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
    if len(breaks) > 64 + count // 8:
        # Mostly false candidates (a clock near 0 and payloads of zeros): passing them
        # one by one would cost more than walking the records.
        ci = count
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


def classify(buf: bytes, offsets: Any, end: int, linktype: int) -> tuple[list[int], list[bytes]]:
    """(codes, keys) for the records at ``offsets`` (the last one ending at ``end``),
    one each per record. A code is ``offset << 2 | kind``: ``kind`` says which of
    ``PacketDecoder.packet``'s Ethernet fast-path branches the packet takes (TCP_SYN: a
    SYN without ACK; UDP, UDP_DNS: a datagram not to a tunnel port, from port 53 for
    the latter), GENERAL when not known to take one.

    A key that is not empty is a TCP packet's table key (addresses and ports): the
    packet is passed over when it is in the current TCP table, which is
    ``PacketDecoder.packet``'s one-lookup test: IPv4 without options, first fragment,
    TCP with its flags byte captured; for Ethernet (its fast path) without a SYN or with
    an ACK, for the other link types without a SYN. (numpy's bytes drop trailing NULs:
    such a key is shorter than any table key, is never found, and its packet goes the
    general way like any packet of an unknown connection.)
    """
    link, et_off = _LINK[linktype]
    n = len(offsets)
    caplen = np.empty(n, np.int64)
    caplen[:-1] = offsets[1:] - offsets[:-1] - 16
    if n:
        caplen[-1] = end - offsets[-1] - 16
    ip = 16 + link  # from the record start
    width = ip + 34  # up to the TCP flags byte
    octets = np.frombuffer(buf, np.uint8)
    if len(octets) < width:
        return (offsets << 2).tolist(), [b""] * n
    # The first ``width`` bytes of every record as one row (a record near the end of
    # the buffer shorter than that: the last ``width`` bytes; the caplen tests below
    # mask every byte a record does not hold).
    rows = as_strided(octets, (len(octets) - width + 1, width), (1, 1), writeable=False)
    rows = rows[np.minimum(offsets, len(octets) - width)]
    # the IPv4 header without options and the 8 bytes after it are captured; 14 for
    # a TCP flags byte
    ok = caplen >= link + 28
    ok &= rows[:, ip] == 0x45
    if et_off >= 0:
        ok &= rows[:, 16 + et_off] == 0x08
        ok &= rows[:, 17 + et_off] == 0x00
    ok &= (rows[:, ip + 6] & 0x1F | rows[:, ip + 7]) == 0
    proto = rows[:, ip + 9]
    flags = rows[:, ip + 33]
    if linktype == ETHERNET:
        # the Ethernet fast path: 48 bytes for any, 54 for TCP
        ok &= caplen >= 48
        udp = ok & (proto == 17)
        dport = rows[:, ip + 22].astype(np.int64) << 8 | rows[:, ip + 23]
        for port in _TUNNEL_PORTS:
            udp &= dport != port
        kind = udp * UDP
        kind[udp & (rows[:, ip + 20] == 0) & (rows[:, ip + 21] == 53)] = UDP_DNS
        ok &= proto == 6
        ok &= caplen >= 54
        syn = ok & ((flags & 0x12) == 0x02)
        kind[syn] = TCP_SYN
        ok &= ~syn
    else:
        kind = np.zeros(n, np.int64)
        ok &= proto == 6
        ok &= caplen >= link + 34
        ok &= (flags & 0x02) == 0
    keys = rows[:, ip + 12:ip + 24]
    keys[~ok] = 0  # b""
    return (offsets << 2 | kind).tolist(), keys.view("S12").ravel().tolist()


def decode_batch(dec: Any, buf: bytes, offsets: Any, end: int, linktype: int, unit: int,
                 unpack_from: Any, report: Any, path: str, counts: list[int]) -> Any:
    """Decode the records at ``offsets`` (complete, the last one ending at ``end``) as
    ``PacketDecoder.packet`` would, one by one, yielding what it returns (a DNS answer's
    bindings one by one). ``unit``: ns per unit of the records' second field (the
    reader's ``dec.conv``, written out). ``counts``: [packets read, packets decoded]
    before the batch, updated when it ends or stops.

    The common outcomes of the Ethernet branches are written out here (a new TCP
    connection, a UDP datagram of a known or a new flow) with what each method does
    step for step; every other outcome calls the method itself."""
    from recorder.sources import pcap

    codes, keys = classify(buf, offsets, end, linktype)
    n0, d0 = counts
    fails = 0
    c = -1  # the record being decoded
    done = False
    generation = pcap.TABLE_GENERATION
    bad = (pcap.BadPacket, IndexError)
    bad_packet = pcap._bad_packet
    packet, tcp_first, udp_first, dns_udp = dec.packet, dec._tcp, dec._udp, dec._dns_udp
    addr, text, make, window = dec.addr, dec.text, dec.make, dec.window
    answers = dec.dns.udp
    tcp, udp = dec.tcp, dec.udp
    try:
        for code, key in zip(codes, keys):
            if key in tcp:
                continue
            kind = code & 3
            c = code >> 2
            sec, frac, caplen, wirelen = unpack_from(buf, c)
            try:
                if kind == GENERAL:
                    rec = packet(linktype, buf, c + 16, c + 16 + caplen, sec, frac)
                    tcp, udp = dec.tcp, dec.udp
                elif kind == TCP_SYN:
                    key = buf[c + 42:c + 54]
                    if (key in tcp or key in dec.tcp_old or len(tcp) >= generation
                            or buf[c + 53] == 53 and not buf[c + 52]):
                        rec = tcp_first(buf, c + 50, c + 42, 4, key, sec, frac)
                        tcp = dec.tcp
                    else:  # _tcp: a connection starts; _connect
                        ts = sec * 1_000_000_000 + frac * unit
                        src_raw = buf[c + 42:c + 46]
                        dst_raw = buf[c + 46:c + 50]
                        tcp[key] = int.from_bytes(buf[c + 54:c + 58], "big")
                        tcp[dst_raw + src_raw + buf[c + 52:c + 54] + buf[c + 50:c + 52]] = -1
                        rec = make(ts, ts, "TCP", addr.get(src_raw) or text(src_raw),
                                   addr.get(dst_raw) or text(dst_raw),
                                   buf[c + 52] << 8 | buf[c + 53],
                                   buf[c + 50] << 8 | buf[c + 51], False, path)
                else:
                    key = buf[c + 42:c + 54]
                    ts = sec * 1_000_000_000 + frac * unit
                    last = udp.get(key)
                    if last is None:
                        last = dec.udp_old.get(key)
                    if last is not None and ts - last <= window:  # _udp: a known flow
                        udp[key] = ts
                        rec = None
                        if kind == UDP_DNS:
                            client_raw = buf[c + 46:c + 50]
                            rec = answers(buf, c + 50, c + 16 + caplen,
                                          addr.get(client_raw) or text(client_raw),
                                          client_raw, ts, path) or None
                    elif len(udp) >= generation:
                        if kind == UDP:
                            rec = udp_first(buf, c + 50, c + 42, 4, key, sec, frac)
                        else:
                            rec = dns_udp(buf, c + 50, c + 42, 4, key, c + 16 + caplen, sec,
                                          frac)
                        udp = dec.udp
                    else:  # _udp: a new flow; _connect
                        src_raw = buf[c + 42:c + 46]
                        dst_raw = buf[c + 46:c + 50]
                        sport = buf[c + 50] << 8 | buf[c + 51]
                        dport = buf[c + 52] << 8 | buf[c + 53]
                        udp[key] = ts
                        udp[dst_raw + src_raw + buf[c + 52:c + 54] + buf[c + 50:c + 52]] = ts
                        src = addr.get(src_raw) or text(src_raw)
                        dst = addr.get(dst_raw) or text(dst_raw)
                        if last is None and dport >= 32768 > sport:  # a reply seen first
                            rec = make(ts, ts, "UDP", dst, src, sport, dport, True, path)
                        else:
                            rec = make(ts, ts, "UDP", src, dst, dport, sport, False, path)
                        if kind == UDP_DNS:
                            names = answers(buf, c + 50, c + 16 + caplen, dst, dst_raw, ts,
                                            path)
                            if names:
                                rec = [rec, *names]
            except bad as e:
                fails += 1  # first: under --strict the report raises
                bad_packet(report, path, n0 + 1 + int(np.searchsorted(offsets, c)), e,
                           caplen < wirelen)
                continue
            if rec is not None:
                if type(rec) is list:  # a DNS answer's bindings
                    yield from rec
                else:
                    yield rec
        done = True
    finally:
        # a consumer that stops at a record stops at its packet
        read = len(offsets) if done else int(np.searchsorted(offsets, c, "right"))
        counts[0], counts[1] = n0 + read, d0 + read - fails
