"""Live capture of connection starts on the node's pod interfaces.

Sockets: one AF_PACKET socket per pod interface (auto-discovered by name: ``veth*``,
``cali*``, ``lxc*``, ... or an explicit list), or one unbound socket for ``any``. The
filter is compiled by scapy (libpcap's ``pcap_compile``) and attached in the kernel
(SO_ATTACH_FILTER), so only connection starts cross into Python:

* IPv4 TCP SYN without ACK: ``tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn``;
* IPv6 TCP SYN without ACK: libpcap's ``tcp[...]`` accessor is IPv4-only, so the flags
  are read at fixed IPv6 offsets: next header ``ip6[6] == 6`` and the TCP flags byte at
  40 + 13 = ``ip6[53]`` (packets with IPv6 extension headers before TCP are not matched);
* every UDP packet (IPv4 and IPv6): which one starts a flow is decided in user space;
* SCTP INIT chunks (``sctp[12] == 1``, ``ip6[52] == 1``);
* TCP segments from port 53: DNS answers over TCP (UDP answers pass as UDP). Answers
  become name records (recorder/sources/dnsmsg.py), aggregated per window like flows.

Frames are read raw (scapy's packet dissection costs ~100x more than the kernel
filter lets through; see benchmarks/bench_record.py) with kernel timestamps
(SO_TIMESTAMPNS) and decoded by the pcap reader's decoder (recorder/sources/pcap.py),
so live and offline captures count connections the same way: a SYN seen on several
interfaces (client veth, bridge, server veth) counts once, UDP packets of one 5-tuple
within the UDP window count once, replies not at all.

kube-proxy's DNAT gives one more sighting a different 5-tuple: the client's veth sees
``client -> ClusterIP:port``, the backend's veth ``client -> pod:targetPort``. Both carry
the same client port and TCP initial sequence number (UDP: client address, port and
payload), so they are paired here: the earlier sighting stays the record and the later
one fills ``xlated_ip``/``xlated_port``, as conntrack's reply tuple would. A start is held
``hold_ns`` (default ``NAT_HOLD_NS``, 3.5 s) waiting for its twin: the twin is the same
SYN after the NAT, and it can reach the backend's veth seconds later (see NAT_HOLD_NS).

Pods come and go: an rtnetlink link-change subscription triggers rediscovery at once
(plus a periodic one), so a new pod's interface is captured within milliseconds of
appearing. Packets the kernel had to drop (socket buffer full) are read from
PACKET_STATISTICS and reported as ``kernel_drops``: never silent.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import selectors
import socket
import struct
import threading
import time
import zlib
from typing import Callable, Sequence

from recorder.aggregate import RecentTable
from recorder.errors import UsageError
from recorder.schema import FlowRecord
from recorder.sources import ReadOptions
from recorder.sources.fastrecord import flow_record_maker
from recorder.sources.pcap import PacketDecoder, _BadPacket

CONNECTION_START_FILTER = (
    "(tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn)"
    " or (ip6 and ip6[6] == 6 and ip6[53] & 0x12 == 0x02)"
    " or udp"
    " or (ip and sctp and sctp[12] == 1)"
    " or (ip6 and ip6[6] == 132 and ip6[52] == 1)"
    " or (tcp src port 53)"
)

# Interfaces that carry pod traffic on common CNIs: bridge/flannel/kindnet/cilium veths,
# Calico, Cilium, AWS VPC CNI, GKE, Azure, and the bridges of bridge-based CNIs.
DEFAULT_PATTERNS = ("veth*", "cali*", "lxc*", "eni*", "gke*", "azv*", "cni0", "cbr0")
ANY = "any"

# Headers plus the payload of a DNS answer: UDP answers up to the 1232-byte EDNS buffer
# most resolvers offer since DNS Flag Day 2020, behind Ethernet, VLAN and IPv6 headers.
# A longer answer is counted (dns-beyond-snaplen); the client then asks over TCP.
SNAPLEN = 2048
DEFAULT_RCVBUF = 32 << 20
READ_BATCH = 512  # frames read from one socket before looking at the others
REDISCOVER_S = 5.0
# How long a start waits for its NAT twin. The DNATed SYN can sit in the node's
# neighbour queue until the backend's address resolves: 1 s per unanswered solicitation,
# up to 3 (and an IPv6 interface whose link-local address is still in duplicate address
# detection sends none, so a fresh node or bridge takes 1-2 s: seen live, 2.04 s). When
# resolution fails or the SYN is lost behind the NAT, the twin is a retransmission, at
# 1 s then 3 s. 3.5 s covers both; the agent loop's ``late_ns`` is above it, so a held
# start still lands in its window.
NAT_HOLD_NS = 3_500_000_000

_ETH_P_ALL = 0x0003
_SO_ATTACH_FILTER = 26
_SO_RCVBUFFORCE = 33
_SO_TIMESTAMPNS = 35
_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_NETLINK_ROUTE = 0
_RTMGRP_LINK = 1
_ARPHRD_ETHER = 1
_ARPHRD_LOOPBACK = 772
_PACKET_OUTGOING = 4
_ETHERNET_FRAMED = frozenset({_ARPHRD_ETHER, _ARPHRD_LOOPBACK})
_CMSG_SPACE = socket.CMSG_SPACE(16)
_TIMESPEC = struct.Struct("qq").unpack
_VLAN = frozenset({0x8100, 0x88A8, 0x9100})

# The pcap decoder's record constructor, with this source's name.
_make_capture_record = flow_record_maker(
    "first_seen", "last_seen", "protocol", "src_ip", "dst_ip", "dst_port", "src_port",
    "inferred", "input", source_format="capture",
)

Emit = Callable[[list], None]


def compile_filter(expression: str = CONNECTION_START_FILTER):  # noqa: ANN201
    """The BPF program of ``expression`` for Ethernet framing (scapy -> libpcap)."""
    try:
        from scapy.arch.common import compile_filter as scapy_compile
        from scapy.error import Scapy_Exception
    except ImportError as e:  # pragma: no cover - scapy is a dependency
        raise UsageError(f"the capture source needs scapy: {e}") from None
    try:
        return scapy_compile(expression, linktype=1)
    except (ImportError, OSError, Scapy_Exception) as e:
        raise UsageError(
            f"cannot compile the capture filter ({e}); the capture source needs libpcap "
            "(Debian: apt-get install libpcap0.8)") from None


def pod_interfaces(patterns: Sequence[str] = DEFAULT_PATTERNS) -> list[str]:
    """Interfaces of this network namespace whose names match ``patterns``, sorted."""
    return sorted(name for _, name in socket.if_nameindex()
                  if any(fnmatch.fnmatchcase(name, p) for p in patterns))


def twin_key(frame: bytes) -> tuple | None:
    """What the two sightings of one connection start on both sides of a NAT share.

    TCP: client port and initial sequence number (kube-proxy's NAT rewrites neither;
    SNAT to the node keeps the port too). UDP: client address, port and payload.
    SCTP: client port and initiate tag. None for anything else.
    """
    et = frame[12] << 8 | frame[13]
    off = 14
    while et in _VLAN:
        et = frame[off + 2] << 8 | frame[off + 3]
        off += 4
    if et == 0x0800:
        proto = frame[off + 9]
        l4 = off + (frame[off] & 15) * 4
        src = frame[off + 12:off + 16]
    elif et == 0x86DD:
        proto = frame[off + 6]
        l4 = off + 40
        src = frame[off + 8:off + 24]
    else:
        return None
    if proto == 6:
        return (6, frame[l4:l4 + 2], frame[l4 + 4:l4 + 8])
    if proto == 17:
        return (17, src, frame[l4:l4 + 2], zlib.crc32(frame[l4 + 8:]))
    if proto == 132:
        return (132, frame[l4:l4 + 2], frame[l4 + 16:l4 + 20])
    return None


class NatTwins:
    """Holds each new connection start ``hold_ns`` to merge its NAT twin into it.

    A twin is seen at another point (interface, direction) than the start it pairs
    with: a client sending the same datagram from one port to several servers sends
    them all out of its own interface, and those stay separate connections. The hold
    covers neighbour resolution on the backend side and two SYN retransmissions (see
    NAT_HOLD_NS): the twin may be a retransmission of a start lost behind the NAT.
    A TCP/SCTP twin from the same client later
    still (the start was already handed on) is folded without its translation: counted
    once, not twice.
    """

    def __init__(self, hold_ns: int = NAT_HOLD_NS, capacity: int = 65536,
                 remember_ns: int = 10_000_000_000) -> None:
        self.hold_ns = hold_ns
        self.capacity = capacity
        self.remember_ns = remember_ns
        # key -> [record, arrival ns, where seen]; oldest first
        self._pending: dict[tuple, list] = {}
        self._done = RecentTable(capacity)  # key -> (arrival ns, client) of a start handed on
        self.paired = 0  # starts that got their translated destination from a twin
        self.twins = 0  # sightings folded into another (counted once)
        self.late = 0  # ... of which arrived after the start was handed on

    def add(self, rec: FlowRecord, key: tuple | None, now: int, out: list,
            seen_at: object = None) -> None:
        """``seen_at``: where the packet was seen, e.g. (interface, outgoing)."""
        if key is None:
            out.append(rec)
            return
        entry = self._pending.get(key)
        if entry is not None and entry[2] == seen_at:
            out.append(rec)  # same point: another connection that happens to share the key
            return
        if entry is None:
            done = self._done.get(key) if key[0] != 17 else None
            if done is not None and now - done[0] <= self.remember_ns and done[1] == rec.src_ip:
                self.twins += 1
                self.late += 1
                return
            self._pending[key] = [rec, now, seen_at]
            if len(self._pending) > self.capacity:
                self.expire(None, out, limit=len(self._pending) - self.capacity)
            return
        self.twins += 1
        first, later = (entry[0], rec) if entry[0].first_seen <= rec.first_seen else (rec, entry[0])
        if first.xlated_ip is None and (later.dst_ip, later.dst_port) != (first.dst_ip, first.dst_port):
            first = dataclasses.replace(first, xlated_ip=later.dst_ip,
                                        xlated_port=later.dst_port)
            self.paired += 1
        entry[0] = first

    def expire(self, now: int | None, out: list, limit: int | None = None) -> None:
        """Move starts held long enough (all when ``now`` is None) to ``out``."""
        pending = self._pending
        done = []
        for key, (rec, arrived, _) in pending.items():
            if (now is not None and now - arrived < self.hold_ns) or (
                    limit is not None and len(done) >= limit):
                break
            done.append((key, (arrived, rec.src_ip)))
            out.append(rec)
        for key, seen in done:
            del pending[key]
            self._done.put(key, seen)

    def __len__(self) -> int:
        return len(self._pending)


class CaptureSource:
    """See the module docstring. ``start()`` opens the sockets (errors are UsageError),
    ``run()`` reads until ``stop`` is set, handing batches of FlowRecords to ``emit``."""

    name = "capture"

    def __init__(self, interfaces: Sequence[str] = (), patterns: Sequence[str] = DEFAULT_PATTERNS,
                 bpf_filter: str = CONNECTION_START_FILTER, options: ReadOptions = ReadOptions(),
                 hold_ns: int = NAT_HOLD_NS, rcvbuf: int = DEFAULT_RCVBUF,
                 log: Callable[[str], None] = lambda _msg: None) -> None:
        self.any = ANY in interfaces
        if self.any and len(interfaces) > 1:
            raise UsageError("--interface any already captures every interface; "
                             "give it alone")
        self.explicit = tuple(i for i in interfaces if i != ANY)
        self.patterns = tuple(patterns) if not interfaces else ()
        self.bpf_filter = bpf_filter
        self.rcvbuf = rcvbuf
        self.log = log
        self.decoder = PacketDecoder("capture", options)
        self.decoder.make = _make_capture_record
        self.decoder.dns.source_format = "capture"
        self.twins = NatTwins(hold_ns)
        self.frames = 0
        self.kernel_drops = 0
        self.kernel_packets = 0
        self.non_ethernet = 0
        self.malformed = 0
        self.opened: list[str] = []  # every interface ever captured, in order
        self._program = None
        self._sockets: dict[str, socket.socket] = {}
        self._index: dict[str, int] = {}  # interface name -> index when its socket opened
        self._selector = selectors.DefaultSelector()
        self._netlink: socket.socket | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ sockets

    def start(self) -> None:
        self._program = compile_filter(self.bpf_filter)
        if self.any:
            self._open(ANY)
            return
        present = {name for _, name in socket.if_nameindex()}
        missing = [i for i in self.explicit if i not in present]
        if missing:
            raise UsageError(
                f"--interface {missing[0]}: no such network interface here; "
                f"interfaces: {', '.join(sorted(present))}")
        try:
            self._netlink = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_ROUTE)
            self._netlink.bind((0, _RTMGRP_LINK))
            self._netlink.setblocking(False)
            self._selector.register(self._netlink, selectors.EVENT_READ, None)
        except OSError as e:  # periodic rediscovery still works
            self.log(f"warning: no link notifications ({e}); rediscovering every "
                     f"{REDISCOVER_S:.0f} s")
            self._netlink = None
        self.rediscover()
        if not self._sockets and self.patterns:
            self.log("capture: no pod interface yet (patterns "
                     f"{' '.join(self.patterns)}); waiting for pods")

    def _wanted(self, name: str) -> bool:
        if self.explicit:
            return name in self.explicit
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def rediscover(self) -> None:
        present = {name: index for index, name in socket.if_nameindex()}
        # A name whose index changed is a new interface (a pod replaced between two
        # looks): its old socket is bound to a link that no longer exists.
        for name in sorted(n for n, i in self._index.items() if present.get(n) != i):
            self._close(name)
        for name in sorted(present):
            if name not in self._sockets and self._wanted(name):
                try:
                    self._open(name)
                    self._index[name] = present[name]
                except OSError as e:  # gone again, or not up yet: next notification
                    self.log(f"capture: cannot open {name}: {e.strerror}")

    def _open(self, name: str) -> None:
        from scapy.arch.linux import sock_fprog

        program = self._program
        proto = socket.htons(_ETH_P_ALL)
        # Unbound with protocol 0 the socket receives nothing, so no packet slips in
        # before the filter; `any` stays unbound (every interface) and is drained.
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0 if name != ANY else proto)
        try:
            s.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER,
                         bytes(sock_fprog(program.bf_len, program.bf_insns)))
            if name != ANY:
                s.bind((name, _ETH_P_ALL))
            s.setblocking(False)
            if name == ANY:
                self._drain(s)
            try:
                s.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, self.rcvbuf)
            except OSError:  # without CAP_NET_ADMIN: capped by net.core.rmem_max
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            s.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except BaseException:
            s.close()
            raise
        self._sockets[name] = s
        self._selector.register(s, selectors.EVENT_READ, name)
        self.opened.append(name)
        self.log(f"capture: listening on {name}")

    @staticmethod
    def _drain(s: socket.socket) -> None:
        while True:
            try:
                s.recv(1, socket.MSG_TRUNC)
            except BlockingIOError:
                return

    def _close(self, name: str) -> None:
        self._index.pop(name, None)
        s = self._sockets.pop(name)
        self._account(s)
        self._selector.unregister(s)
        s.close()
        self.log(f"capture: {name} is gone")

    def _account(self, s: socket.socket) -> None:
        """Add the kernel's counters (reset on every read) to the totals."""
        try:
            packets, drops = struct.unpack("II", s.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8))
        except OSError:
            return
        with self._lock:
            self.kernel_packets += packets
            self.kernel_drops += drops

    def interfaces(self) -> list[str]:
        return sorted(self._sockets)

    def close(self) -> None:
        for name in list(self._sockets):
            s = self._sockets.pop(name)
            self._account(s)
            s.close()
        if self._netlink is not None:
            self._netlink.close()
            self._netlink = None
        self._selector.close()
        if self._program is not None:
            from scapy.arch.common import free_filter

            free_filter(self._program)
            self._program = None

    # ------------------------------------------------------------------ reading

    def run(self, emit: Emit, stop: threading.Event) -> None:
        out: list = []
        next_rediscover = time.monotonic() + REDISCOVER_S
        next_account = time.monotonic() + 1.0
        select = self._selector.select
        try:
            while not stop.is_set():
                # The clock is read before looking at the sockets: a twin stamped before
                # ``now`` is then already in its socket's buffer and read below, so a
                # start never leaves in the same pass its twin (on another interface's
                # socket) arrives.
                now = time.time_ns()
                for key, _ in select(0.05):
                    if key.data is None:
                        self._link_changed()
                    else:
                        self._read(key.fileobj, out)  # type: ignore[arg-type]
                self.twins.expire(now, out)
                if out:
                    emit(out)
                    out = []
                mono = time.monotonic()
                if mono >= next_account:
                    next_account = mono + 1.0
                    for s in list(self._sockets.values()):
                        self._account(s)
                if not self.any and mono >= next_rediscover:
                    next_rediscover = mono + REDISCOVER_S
                    self.rediscover()
            # Frames already in the socket buffers (bounded: a flood never ends), then
            # every held start.
            for s in list(self._sockets.values()):
                self._read(s, out, limit=64 * READ_BATCH)
            self.twins.expire(None, out)
            if out:
                emit(out)
        finally:
            self.close()

    def _link_changed(self) -> None:
        assert self._netlink is not None
        try:
            while self._netlink.recv(65536):
                pass
        except BlockingIOError:
            pass
        self.rediscover()

    def _read(self, s: socket.socket, out: list, limit: int = READ_BATCH) -> None:
        recvmsg = s.recvmsg
        handle = self.handle
        n = 0
        while n < limit:
            try:
                frame, anc, _flags, addr = recvmsg(SNAPLEN, _CMSG_SPACE)
            except BlockingIOError:
                break
            except OSError:  # the interface went away under us
                break
            n += 1
            if addr[3] not in _ETHERNET_FRAMED:
                self.non_ethernet += 1
                continue
            ts = 0
            for _level, kind, data in anc:
                if kind == _SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC(data)
                    ts = sec * 1_000_000_000 + nsec
            handle(frame, addr[0], ts or time.time_ns(), out, addr[2] == _PACKET_OUTGOING)
        self.frames += n

    def handle(self, frame: bytes, interface: str, ts: int, out: list,
               outgoing: bool = False) -> None:
        """One Ethernet frame seen on ``interface`` at ``ts`` (ns), leaving through it
        when ``outgoing``."""
        dec = self.decoder
        dec.path = "capture:" + interface
        try:
            rec = dec.packet(1, frame, 0, len(frame), ts, 0)
        except (_BadPacket, IndexError):
            self.malformed += 1
            return
        if rec is None:
            return
        if type(rec) is list:  # a DNS answer's name records, after the flow's if any
            if type(rec[0]) is not FlowRecord:
                out += rec
                return
            out += rec[1:]
            rec = rec[0]
        self.twins.add(rec, None if rec.inferred else twin_key(frame), ts, out,
                       (interface, outgoing))

    def stats(self) -> dict[str, int]:
        ignored = {("capture-" + k[5:] if k.startswith("pcap-") else k): v
                   for k, v in sorted(self.decoder.counts.items())}
        dns = dict(sorted(self.decoder.dns.counts.items()))
        return {"frames": self.frames, "kernel_packets": self.kernel_packets,
                "kernel_drops": self.kernel_drops, "nat_twins": self.twins.twins,
                "nat_paired": self.twins.paired, "nat_late_twins": self.twins.late, "non_ethernet": self.non_ethernet,
                "malformed": self.malformed, **ignored, **dns}
