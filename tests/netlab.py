"""A tiny Kubernetes-like node built from Linux network namespaces, for tests.

Real parts, no mocks: a *node* namespace holds a bridge (``br0``, 10.99.0.1/24 and
fd99::1/64 by default) and kube-proxy-style iptables rules in the ``nat`` table
(``KUBE-SERVICES -> KUBE-SVC-* -> KUBE-SEP-*`` DNAT, ``KUBE-MARK-MASQ`` /
``KUBE-POSTROUTING`` MASQUERADE). Each *pod* is a namespace with ``eth0``, one veth
into the bridge, a /32 (and /128) address and a default route via the node. Because
pods have host routes only, every packet between pods - not just traffic to a
ClusterIP - is routed through the node namespace, so DNAT happens in the node's
PREROUTING and the node's conntrack table sees both directions, with no dependence on
``br_netfilter``. ICMP redirects are off so pods never learn a shortcut.

All addresses live inside namespaces this module creates: nothing leaves them, nothing
in the host namespace is touched. Names carry the creating PID and a random suffix, so
parallel runs never clash; :func:`cleanup_stale` removes leftovers of dead runs.

Usage::

    from netlab import NetLab, ServicePort, require_root

    def test_something(tmp_path):
        require_root()
        with NetLab() as lab:
            client = lab.add_pod("client")
            web = lab.add_pod("web")
            svc = lab.add_service("web", "10.96.0.10", [ServicePort("TCP", 80, 8080)], [web])
            with lab.serve(web, "TCP", 8080), lab.conntrack_events(tmp_path / "ev.txt"):
                assert lab.connect(client, "TCP", svc.cluster_ip, 80, count=3) == 3
            dump = lab.conntrack_list()            # `conntrack -L` text (stdout+stderr)

Tests that use this module must be marked ``@pytest.mark.root`` and call
:func:`require_root` (skips when not root, fails when ``CI=true``).
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Sequence

NETNS_PREFIX = "fpl"  # every namespace this module creates starts with this
_NETNS_DIR = Path("/run/netns")
_REQUIRED_TOOLS = ("ip", "iptables-restore", "ip6tables-restore", "conntrack", "tcpdump")


# --------------------------------------------------------------------------- guards


def missing_prerequisites() -> str | None:
    """Why this machine cannot run a lab, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, conntrack)"
    missing = [t for t in _REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return "missing tools: " + ", ".join(missing)
    return None


def require_root() -> None:
    """Skip the calling test when a lab cannot run here; fail instead when CI=true.

    CI must never silently skip the tests against real producers.
    """
    import pytest

    why = missing_prerequisites()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the network-namespace lab cannot run: {why}")
    pytest.skip(why)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One Service port: clients use ``port``, the backend listens on ``target_port``."""

    protocol: str  # "TCP" | "UDP" | "SCTP"
    port: int
    target_port: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    netns: str  # the namespace's name (use with `ip netns exec`)
    ip: str  # IPv4, a /32 on eth0
    ip6: str | None  # IPv6 (/128 on eth0) when the lab has IPv6
    node_veth: str  # the veth end inside the node namespace (capture here)


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    cluster_ip: str
    ports: tuple[ServicePort, ...]
    backends: tuple[Pod, ...]
    svc_chain: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Background:
    """A process running in a namespace; ``stop()`` is idempotent."""

    proc: subprocess.Popen
    output: Path | None = None
    stop_signal: int = signal.SIGTERM

    def stop(self, timeout: float = 5.0) -> int | None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(self.stop_signal)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        return self.proc.returncode


# --------------------------------------------------------------------------- helpers


def _run(cmd: Sequence[str], *, input: str | None = None, check: bool = True,
         timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(cmd), input=input, capture_output=True, text=True,
                         timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(
            f"netlab: `{' '.join(cmd)}` failed ({res.returncode}): {res.stderr.strip()}"
        )
    return res


def _chain_suffix(*parts: str) -> str:
    # kube-proxy names chains by a hash of service/port/endpoint; same idea, 16 chars.
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def cleanup_stale() -> list[str]:
    """Delete lab namespaces left behind by runs whose process is gone."""
    removed: list[str] = []
    if not _NETNS_DIR.is_dir():
        return removed
    pattern = re.compile(rf"^{NETNS_PREFIX}(\d+)x[0-9a-f]+-")
    for entry in sorted(_NETNS_DIR.iterdir()):
        m = pattern.match(entry.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            _run(["ip", "netns", "del", entry.name], check=False)
            removed.append(entry.name)
    return removed


# Python one-liners run inside pod namespaces (with this interpreter, no extra deps).
_SERVER = r"""
import socket, sys
proto, port, fam = sys.argv[1], int(sys.argv[2]), sys.argv[3]
af = socket.AF_INET6 if fam == "6" else socket.AF_INET
def v6only(s):
    if fam == "6":  # so an IPv4 server on the same port can coexist
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
if proto == "UDP":
    s = socket.socket(af, socket.SOCK_DGRAM); v6only(s)
    s.bind(("", port)); print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(65535); s.sendto(data, peer)
else:
    kind = socket.SOCK_STREAM
    pr = socket.IPPROTO_SCTP if proto == "SCTP" else 0
    s = socket.socket(af, kind, pr)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); v6only(s)
    s.bind(("", port)); s.listen(128); print("ready", flush=True)
    while True:
        c, _ = s.accept()
        c.settimeout(5)
        try:
            data = c.recv(65535)
            if data: c.sendall(data)
        except OSError:
            pass
        c.close()
"""

_CLIENT = r"""
import socket, sys, time
proto, host, port, count, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
af = socket.AF_INET6 if ":" in host else socket.AF_INET
ok = 0
for i in range(count):
    try:
        if proto == "UDP":
            s = socket.socket(af, socket.SOCK_DGRAM); s.settimeout(3)
            s.sendto(b"q%d" % i, (host, port)); s.recvfrom(65535)
        else:
            pr = socket.IPPROTO_SCTP if proto == "SCTP" else 0
            s = socket.socket(af, socket.SOCK_STREAM, pr); s.settimeout(3)
            s.connect((host, port)); s.sendall(b"q%d" % i); s.recv(65535)
        ok += 1
    except OSError as e:
        print("error", e, file=sys.stderr)
    finally:
        s.close()
    if gap: time.sleep(gap)
print(ok)
"""


_PING = r"""
import os, socket, struct, sys
host, count = sys.argv[1], int(sys.argv[2])
v6 = ":" in host
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                  socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
s.settimeout(2)
ident = os.getpid() & 0xFFFF
ok = 0
for seq in range(1, count + 1):
    body = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, seq) + b"flowpol!"  # even length: no checksum padding
    if not v6:  # the kernel fills in the ICMPv6 checksum, not the ICMPv4 one
        total = sum(struct.unpack("!%dH" % (len(body) // 2), body))
        total = (total >> 16) + (total & 0xFFFF); total += total >> 16
        body = body[:2] + struct.pack("!H", ~total & 0xFFFF) + body[4:]
    s.sendto(body, (host, 0))
    try:
        while True:
            data, _ = s.recvfrom(2048)
            icmp = data if v6 else data[(data[0] & 15) * 4:]
            if icmp[0] == (129 if v6 else 0) and struct.unpack("!H", icmp[4:6])[0] == ident:
                ok += 1
                break
    except OSError:
        pass
print(ok)
"""


# --------------------------------------------------------------------------- the lab


class NetLab:
    """One node namespace with a bridge, pods, services and tools around them.

    Use as a context manager; teardown (processes killed, namespaces deleted) is
    guaranteed on exit, on exceptions, and at interpreter exit as a last resort.

    ``pod_cidr`` must be a /24-or-larger private range: the node takes ``.1``, pods get
    ``.10``, ``.11``, ... unless given an explicit ``ip``. ``masquerade_all`` makes every
    Service connection SNAT to the node's bridge IP (kube-proxy ``--masquerade-all``), so
    conntrack's reply tuple points at the node instead of the client.
    """

    def __init__(
        self,
        pod_cidr: str = "10.99.0.0/24",
        pod_cidr6: str | None = "fd99::/64",
        *,
        masquerade_all: bool = False,
        conntrack_accounting: bool = True,
    ) -> None:
        self.pod_net = ipaddress.ip_network(pod_cidr)
        self.pod_net6 = ipaddress.ip_network(pod_cidr6) if pod_cidr6 else None
        self.node_ip = str(self.pod_net.network_address + 1)
        self.node_ip6 = str(self.pod_net6.network_address + 1) if self.pod_net6 else None
        self.masquerade_all = masquerade_all
        self.conntrack_accounting = conntrack_accounting
        self.run_id = f"{NETNS_PREFIX}{os.getpid()}x{secrets.token_hex(3)}"
        self.node_ns = f"{self.run_id}-node"
        self.pods: dict[str, Pod] = {}
        self.services: dict[str, Service] = {}
        self._namespaces: list[str] = []
        self._procs: list[Background] = []
        self._next_host = 10
        self._veth_seq = 0
        self._started = False

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> NetLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self._started:
            return
        why = missing_prerequisites()
        if why:
            raise RuntimeError(f"netlab: {why}")
        cleanup_stale()
        self._started = True
        atexit.register(self.close)
        try:
            self._add_netns(self.node_ns)
            n = self.node_ns
            self._ip(n, "link", "set", "lo", "up")
            self._ip(n, "link", "add", "br0", "type", "bridge")
            self._ip(n, "addr", "add", f"{self.node_ip}/{self.pod_net.prefixlen}", "dev", "br0")
            if self.node_ip6:
                self._ip(n, "-6", "addr", "add",
                         f"{self.node_ip6}/{self.pod_net6.prefixlen}", "dev", "br0", "nodad")
            self._ip(n, "link", "set", "br0", "up")
            sysctls = {
                "net.ipv4.ip_forward": "1",
                "net.ipv6.conf.all.forwarding": "1",
                "net.ipv4.conf.all.send_redirects": "0",
                "net.ipv4.conf.default.send_redirects": "0",
                "net.ipv4.conf.br0.send_redirects": "0",
                "net.netfilter.nf_conntrack_acct": "1" if self.conntrack_accounting else "0",
                "net.netfilter.nf_conntrack_timestamp": "1",
            }
            for key, value in sysctls.items():
                self.node_exec("sysctl", "-q", "-w", f"{key}={value}", check=False)
            self._install_base_rules()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop every process this lab started, then delete its namespaces."""
        for bg in reversed(self._procs):
            bg.stop()
        self._procs.clear()
        for ns in reversed(self._namespaces):
            _run(["ip", "netns", "del", ns], check=False)
        self._namespaces.clear()
        if self._started:
            atexit.unregister(self.close)
            self._started = False

    # ------------------------------------------------------------ low level

    def _add_netns(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)

    def _ip(self, ns: str, *args: str) -> None:
        _run(["ip", "-n", ns, *args])

    def exec(self, ns: str, *cmd: str, check: bool = True, input: str | None = None,
             timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside namespace ``ns`` and wait for it."""
        return _run(["ip", "netns", "exec", ns, *cmd], check=check, input=input,
                    timeout=timeout)

    def node_exec(self, *cmd: str, check: bool = True, input: str | None = None,
                  timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return self.exec(self.node_ns, *cmd, check=check, input=input, timeout=timeout)

    def pod_exec(self, pod: Pod, *cmd: str, check: bool = True,
                 timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return self.exec(pod.netns, *cmd, check=check, timeout=timeout)

    def spawn(self, ns: str, *cmd: str, stdout: IO[bytes] | int | None = subprocess.PIPE,
              stderr: IO[bytes] | int | None = subprocess.PIPE, output: Path | None = None,
              stop_signal: int = signal.SIGTERM) -> Background:
        """Start a background process in ``ns``; it is stopped at teardown at the latest."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=stdout,
                                stderr=stderr)
        bg = Background(proc, output, stop_signal)
        self._procs.append(bg)
        return bg

    # ------------------------------------------------------------ pods

    def _alloc_ip(self) -> tuple[str, str | None]:
        host = self._next_host
        self._next_host += 1
        ip = str(self.pod_net.network_address + host)
        ip6 = str(self.pod_net6.network_address + host) if self.pod_net6 else None
        return ip, ip6

    def add_pod(self, name: str, ip: str | None = None, ip6: str | None = None) -> Pod:
        """Create a pod namespace wired into the bridge. ``ip`` may reuse a deleted pod's IP."""
        if name in self.pods:
            raise ValueError(f"netlab: pod {name!r} exists; delete it first")
        auto4, auto6 = self._alloc_ip()
        ip = ip or auto4
        if self.pod_net6 is not None:
            ip6 = ip6 or (str(self.pod_net6.network_address
                              + int(ipaddress.ip_address(ip)) - int(self.pod_net.network_address))
                          if ip != auto4 else auto6)
        else:
            ip6 = None
        for p in self.pods.values():
            if p.ip == ip:
                raise ValueError(f"netlab: {ip} is held by pod {p.name!r}")
        ns = f"{self.run_id}-{name}"[:200]
        self._add_netns(ns)
        self._veth_seq += 1
        veth = f"veth{self._veth_seq}"
        # Created inside the node namespace, so interface names cannot clash with the host.
        self._ip(self.node_ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                 "netns", ns)
        self._ip(self.node_ns, "link", "set", veth, "master", "br0", "up")
        self._ip(ns, "link", "set", "lo", "up")
        self._ip(ns, "addr", "add", f"{ip}/32", "dev", "eth0")
        if ip6:
            self._ip(ns, "-6", "addr", "add", f"{ip6}/128", "dev", "eth0", "nodad")
        self._ip(ns, "link", "set", "eth0", "up")
        self._ip(ns, "route", "add", self.node_ip, "dev", "eth0", "scope", "link")
        self._ip(ns, "route", "add", "default", "via", self.node_ip, "dev", "eth0")
        if ip6 and self.node_ip6:
            self._ip(ns, "-6", "route", "add", self.node_ip6, "dev", "eth0")
            self._ip(ns, "-6", "route", "add", "default", "via", self.node_ip6, "dev", "eth0")
        self.exec(ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.accept_redirects=0",
                  check=False)
        pod = Pod(name, ns, ip, ip6, veth)
        self.pods[name] = pod
        return pod

    def delete_pod(self, pod: Pod) -> None:
        """Stop the pod's processes and delete its namespace (its IP becomes free)."""
        for bg in [b for b in self._procs if pod.netns in b.proc.args]:
            bg.stop()
            self._procs.remove(bg)
        _run(["ip", "netns", "del", pod.netns], check=False)
        if pod.netns in self._namespaces:
            self._namespaces.remove(pod.netns)
        self.pods.pop(pod.name, None)

    # ------------------------------------------------------------ services (kube-proxy)

    def _install_base_rules(self) -> None:
        for tool, cidr in (("iptables-restore", str(self.pod_net)),
                           ("ip6tables-restore", str(self.pod_net6) if self.pod_net6 else None)):
            if cidr is None:
                continue
            rules = "\n".join([
                "*nat",
                ":KUBE-SERVICES - [0:0]",
                ":KUBE-MARK-MASQ - [0:0]",
                ":KUBE-POSTROUTING - [0:0]",
                '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
                '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
                '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
                "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
                "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
                "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
                "-A KUBE-POSTROUTING -j MASQUERADE",
                "COMMIT",
                "",
            ])
            self.node_exec(tool, "--noflush", input=rules)

    def add_service(self, name: str, cluster_ip: str, ports: Sequence[ServicePort],
                    backends: Sequence[Pod]) -> Service:
        """Program kube-proxy-style DNAT for ``cluster_ip`` (IPv4 or IPv6) to ``backends``.

        Backends are picked at random per connection (``-m statistic``), as kube-proxy does.
        """
        v6 = ":" in cluster_ip
        tool = "ip6tables-restore" if v6 else "iptables-restore"
        cidr = str(self.pod_net6 if v6 else self.pod_net)
        lines = ["*nat"]
        body: list[str] = []
        chains: dict[str, str] = {}
        plen = 128 if v6 else 32
        for sp in ports:
            proto = sp.protocol.lower()
            svc_chain = "KUBE-SVC-" + _chain_suffix(name, cluster_ip, sp.protocol, str(sp.port))
            chains[f"{sp.protocol}/{sp.port}"] = svc_chain
            lines.append(f":{svc_chain} - [0:0]")
            comment = f'-m comment --comment "default/{name}:{sp.name or sp.port}"'
            body.append(f"-A KUBE-SERVICES -d {cluster_ip}/{plen} -p {proto} -m {proto} "
                        f"--dport {sp.port} {comment} -j {svc_chain}")
            if self.masquerade_all:
                body.append(f"-A {svc_chain} -p {proto} {comment} -j KUBE-MARK-MASQ")
            else:  # kube-proxy marks traffic from outside the cluster CIDR
                body.append(f"-A {svc_chain} ! -s {cidr} -d {cluster_ip}/{plen} -p {proto} "
                            f"{comment} -j KUBE-MARK-MASQ")
            n = len(backends)
            for i, pod in enumerate(backends):
                bip = pod.ip6 if v6 else pod.ip
                if bip is None:
                    raise ValueError(f"netlab: pod {pod.name} has no IPv6 address")
                sep = "KUBE-SEP-" + _chain_suffix(svc_chain, bip, str(sp.target_port))
                lines.append(f":{sep} - [0:0]")
                pick = (f"-m statistic --mode random --probability {1.0 / (n - i):.11f} "
                        if i < n - 1 else "")
                body.append(f"-A {svc_chain} {comment} {pick}-j {sep}")
                body.append(f"-A {sep} -s {bip}/{plen} {comment} -j KUBE-MARK-MASQ")
                dest = f"[{bip}]:{sp.target_port}" if v6 else f"{bip}:{sp.target_port}"
                body.append(f"-A {sep} -p {proto} -m {proto} {comment} -j DNAT "
                            f"--to-destination {dest}")
        self.node_exec(tool, "--noflush", input="\n".join(lines + body + ["COMMIT", ""]))
        svc = Service(name, cluster_ip, tuple(ports), tuple(backends), chains)
        self.services[name] = svc
        return svc

    def iptables_save(self, v6: bool = False) -> str:
        return self.node_exec("ip6tables-save" if v6 else "iptables-save", "-t", "nat").stdout

    # ------------------------------------------------------------ traffic

    def serve(self, pod: Pod, protocol: str, port: int, ipv6: bool = False) -> Server:
        """Start an echo server (TCP, UDP or SCTP) in ``pod``; returns once it listens.

        The returned :class:`Server` is a context manager that stops it; otherwise it is
        stopped at teardown.
        """
        bg = self.spawn(pod.netns, sys.executable, "-c", _SERVER, protocol.upper(), str(port),
                        "6" if ipv6 else "4")
        assert bg.proc.stdout is not None
        line = bg.proc.stdout.readline()
        if line.strip() != b"ready":
            err = bg.proc.stderr.read().decode(errors="replace") if bg.proc.stderr else ""
            bg.stop()
            raise RuntimeError(f"netlab: server {protocol}/{port} in {pod.name} failed: {err}")
        return Server(bg, self)

    def connect(self, pod: Pod, protocol: str, host: str, port: int, count: int = 1,
                gap: float = 0.0) -> int:
        """Open ``count`` separate connections (new source port each) from ``pod``.

        Each sends a few bytes and waits for the echo. Returns how many got an answer.
        """
        res = self.pod_exec(pod, sys.executable, "-c", _CLIENT, protocol.upper(), host,
                            str(port), str(count), str(gap), timeout=30 + count * 4)
        return int(res.stdout.strip() or 0)

    def ping(self, pod: Pod, host: str, count: int = 1) -> int:
        """Send ``count`` ICMP (or ICMPv6) echo requests from ``pod``; returns replies seen."""
        res = self.pod_exec(pod, sys.executable, "-c", _PING, host, str(count),
                            timeout=10 + count * 3)
        return int(res.stdout.strip() or 0)

    # ------------------------------------------------------------ observers

    def conntrack_list(self, *args: str, family: str = "ipv4") -> str:
        """``conntrack -L [args]`` in the node namespace: stdout then the stderr trailer."""
        res = self.node_exec("conntrack", "-L", "-f", family, *args, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"netlab: conntrack -L failed: {res.stderr.strip()}")
        return res.stdout + res.stderr

    def conntrack_flush(self) -> None:
        self.node_exec("conntrack", "-F", check=False)

    @contextmanager
    def conntrack_events(self, path: Path, *args: str) -> Iterator[Background]:
        """Record ``conntrack -E -o timestamp [args]`` (all families) from the node into ``path``.

        On exit the recorder is stopped and the file is complete.
        """
        out = open(path, "wb")
        try:
            bg = self.spawn(self.node_ns, "conntrack", "-E", "-o", "timestamp", *args,
                            stdout=out, stderr=subprocess.STDOUT, output=path)
            _wait_for_netlink_socket(bg.proc.pid)
            try:
                yield bg
                time.sleep(0.2)  # let the last events reach the listener
            finally:
                bg.stop()
        finally:
            out.close()

    @contextmanager
    def tcpdump(self, path: Path, iface: str, ns: str | None = None,
                filter: Sequence[str] = (), extra: Sequence[str] = ()) -> Iterator[Background]:
        """Record ``tcpdump -w path`` on ``iface`` in ``ns`` (default: the node namespace).

        For a pod's node-side veth use ``iface=pod.node_veth``; for the pod's own view use
        ``ns=pod.netns, iface="eth0"``; ``iface="any"`` gives Linux cooked v2 (SLL2) frames,
        ``extra=("-y", "LINUX_SLL")`` v1 frames. SCTP needs the kernel's sctp module
        (``serve`` raises when sockets cannot be created).
        """
        # --immediate-mode: with TPACKET_V3, packets still in an unretired ring block are
        # lost when tcpdump stops, so short tests would write empty files without it.
        bg = self.spawn(ns or self.node_ns, "tcpdump", "-U", "--immediate-mode", "-n",
                        "-i", iface, "-w", str(path), *extra, *filter,
                        stdout=subprocess.DEVNULL, output=path, stop_signal=signal.SIGINT)
        assert bg.proc.stderr is not None
        seen: list[str] = []
        while True:  # `-i any` first prints "data link type LINUX_SLL2", then "listening on"
            line = bg.proc.stderr.readline().decode(errors="replace")
            seen.append(line.strip())
            if "listening on" in line:
                break
            if not line:
                bg.stop()
                raise RuntimeError(f"netlab: tcpdump did not start: {' '.join(seen)}")
        try:
            yield bg
            time.sleep(0.2)
        finally:
            bg.stop()


class Server:
    """A started server: a context manager that stops it, or leave it to teardown."""

    def __init__(self, bg: Background, lab: NetLab) -> None:
        self.bg = bg
        self.lab = lab

    def __enter__(self) -> Background:
        return self.bg

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.bg.stop()
        if self.bg in self.lab._procs:
            self.lab._procs.remove(self.bg)


def _wait_for_netlink_socket(pid: int, timeout: float = 5.0) -> None:
    # conntrack -E subscribes when it opens its netlink socket; events before that are
    # lost, so wait until the socket exists (plus a little slack for the bind).
    deadline = time.monotonic() + timeout
    fd_dir = Path(f"/proc/{pid}/fd")
    while time.monotonic() < deadline:
        try:
            targets = [os.readlink(fd_dir / fd) for fd in os.listdir(fd_dir)]
        except OSError:
            targets = []
        # `ip netns exec` execs conntrack in place, so the pid is conntrack's own.
        if any(t.startswith("socket:") for t in targets) and _comm(pid) == "conntrack":
            time.sleep(0.1)
            return
        time.sleep(0.02)
    raise RuntimeError("netlab: conntrack -E did not start listening")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- extra helpers
# Added for the recorder agent's tests (tests/recorder/agent): run Python code, e.g. a
# loopback server, inside a lab namespace without leaving the test process.


def call_in_netns(netns: str, fn, *args, **kwargs):  # noqa: ANN001, ANN201
    """Call ``fn(*args, **kwargs)`` on a thread that has joined network namespace ``netns``
    and return its result (exceptions propagate). Sockets it creates belong to that
    namespace for their whole life, whichever thread uses them later; threads it starts
    inherit the namespace. The calling thread's namespace is untouched."""
    import ctypes
    import threading

    libc = ctypes.CDLL(None, use_errno=True)
    clone_newnet = 0x40000000
    result: dict = {}

    def body() -> None:
        try:
            fd = os.open(str(_NETNS_DIR / netns), os.O_RDONLY)
            try:
                if libc.setns(fd, clone_newnet) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            result["error"] = e

    t = threading.Thread(target=body, name=f"netns-{netns}")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
