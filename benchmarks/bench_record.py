"""Benchmark: new connections per second `flowpol record` captures with zero loss.

    sudo /work/venv/bin/python benchmarks/bench_record.py [--rates 1000,2000,5000,...]
        [--seconds 5] [--variants] [--flood 1000000] [--json out.json]

Needs root (network namespaces). Builds a netlab node (tests/netlab.py) with a sender
pod and a sink pod. The sender injects TCP SYNs (valid checksums, distinct source
ports) at a fixed rate from its eth0; the node forwards them to the sink, which answers
RST (no listener). On the sender's node-side veth, at the same time and with the same
kernel filter (recorder/agent/capture.py CONNECTION_START_FILTER):

* the agent: `flowpol record --source capture --interface VETH --out FLOWLOG`, pinned to
  CPU 0 (``taskset``), so "one core" is literal;
* tcpdump with the same filter and the same 32 MiB buffer (`-B`), pinned to CPU 1 with
  the sender.

Per rate: SYNs sent, connections the agent recorded (sum of record counts), packets
tcpdump captured, kernel drops of both, the agent's CPU while the traffic ran (utime +
stime from /proc, as a fraction of one core, and per 1,000 connections/s) and its memory
(VmRSS, VmHWM). "Zero loss" = recorded == sent.

``--variants`` measures other ways to read the same socket with scapy at a saturating
rate, each pinned to CPU 0 for the same traffic: scapy ``sniff()`` (full dissection),
scapy ``L2ListenSocket.recv_raw`` (no dissection) and scapy with ``conf.use_pcap``
(libpcap through ctypes), against the agent's own capture loop.

``--flood N``: N SYNs from N distinct (source address, source port) pairs to 20,000
destination ports (more distinct aggregation keys than ``--max-keys 100000``), VmRSS
sampled while they arrive: memory must stay flat, overflow must be counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from netlab import NetLab  # noqa: E402

from recorder.agent.capture import CONNECTION_START_FILTER  # noqa: E402

PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
SINK_PORT = 80

# Runs in the sender's namespace: SYNs at a fixed rate, valid IPv4 and TCP checksums.
SENDER = r"""
import socket, struct, sys, time
iface, src_mac, dst_mac, srcs, dst, dlo, dhi, rate, count = sys.argv[1:10]
src_ips = [socket.inet_aton(a) for a in srcs.split(",")]
dst_ip = socket.inet_aton(dst)
dlo, dhi, rate, count = int(dlo), int(dhi), float(rate), int(count)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00"
def fold(x):
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x
def words(b):
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))
ports = 64512
span = dhi - dlo + 1
ip_base = words(struct.pack("!BBHHHBBH", 0x45, 0, 40, 0, 0x4000, 64, 6, 0)) + words(dst_ip)
# Every SYN its own initial sequence number, as real clients pick them.
tcp_base = words(dst_ip) + 6 + 20 + words(struct.pack("!IBBHHH", 0, 0x50, 0x02, 64240, 0, 0))
sent = 0
start = time.perf_counter()
while sent < count:
    due = min(count, int((time.perf_counter() - start) * rate) + 1)
    while sent < due:
        i = sent
        src = src_ips[(i // ports) % len(src_ips)]
        sport = 1024 + i % ports
        dport = dlo + i % span
        sw = words(src)
        ipc = 0xFFFF - fold(ip_base + sw)
        seq = (i * 2654435761 + 1) & 0xFFFFFFFF
        tcpc = 0xFFFF - fold(tcp_base + sw + sport + dport + (seq >> 16) + (seq & 0xFFFF))
        frame = (eth + struct.pack("!BBHHHBBH", 0x45, 0, 40, 0, 0x4000, 64, 6, ipc) + src + dst_ip
                 + struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 0x50, 0x02, 64240, tcpc, 0))
        s.send(frame)
        sent += 1
    time.sleep(0.0005)
print(sent, time.perf_counter() - start, flush=True)
"""

# Runs in the node's namespace: one way of reading the capture, counting SYNs.
VARIANT = r"""
import sys, time, select, socket
variant, iface, filt, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
n = 0
print("ready", flush=True)
end = time.time() + seconds
if variant == "scapy-sniff":
    from scapy.all import sniff, TCP
    def count(p):
        global n
        if TCP in p and p[TCP].flags & 0x12 == 0x02:
            n += 1
    sniff(iface=iface, filter=filt, prn=count, store=False, timeout=seconds)
else:
    from scapy.config import conf
    if variant == "scapy-pcap":
        conf.use_pcap = True
        from scapy.arch.libpcap import L2pcapListenSocket as Sock
    else:
        from scapy.arch.linux import L2ListenSocket as Sock
    s = Sock(iface=iface, filter=filt)
    if variant == "scapy-l2listen":
        s.ins.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE, as the agent
    while time.time() < end:
        if not select.select([s], [], [], 0.1)[0]:
            continue
        while True:
            cls, raw, ts = s.recv_raw()
            if raw is None:
                break
            n += 1
            if variant == "scapy-pcap":
                break  # one per select: libpcap reads ahead in its own buffer
            try:
                if not select.select([s], [], [], 0)[0]:
                    break
            except ValueError:
                break
print(n, flush=True)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_kib(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+)", status, re.M).group(1))  # noqa: E731
    return get("VmRSS"), get("VmHWM")


class Bench:
    def __init__(self) -> None:
        self.lab = NetLab(pod_cidr6=None)
        self.lab.start()
        self.sender = self.lab.add_pod("sender")
        self.sink = self.lab.add_pod("sink")
        self.veth = self.sender.node_veth
        self.src_mac = self._mac(self.sender.netns, "eth0")
        self.dst_mac = self._mac(self.lab.node_ns, "br0")
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-record-"))
        # Make sure the node can resolve the sink before the first SYN.
        self.lab.ping(self.sender, self.sink.ip, 1)

    def _mac(self, ns: str, dev: str) -> str:
        out = self.lab.exec(ns, "cat", f"/sys/class/net/{dev}/address").stdout
        return out.strip()

    def close(self) -> None:
        self.lab.close()

    # -- pieces

    def send(self, rate: float, count: int, srcs: list[str] | None = None,
             dports: tuple[int, int] = (SINK_PORT, SINK_PORT)) -> tuple[int, float]:
        res = self.lab.exec(self.sender.netns, "taskset", "-c", "1", PY, "-c", SENDER, "eth0",
                            self.src_mac, self.dst_mac, ",".join(srcs or [self.sender.ip]),
                            self.sink.ip, str(dports[0]), str(dports[1]), str(rate), str(count),
                            timeout=count / max(rate, 1) * 3 + 60)
        sent, elapsed = res.stdout.split()
        return int(sent), float(elapsed)

    def start_agent(self, out: Path, extra: list[str] = (), source: str = "capture"
                    ) -> subprocess.Popen:
        where = ["--interface", self.veth] if source == "capture" else []
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.node_ns, "taskset", "-c", "0", "env",
             f"PYTHONPATH={ROOT}", PY, "-m", "generator.cli.main", "record", "--source",
             source, *where, "--out", str(out), *extra],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        lines: list[str] = []
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "capture: listening on" in line or "conntrack: following" in line:
                break
        else:
            raise RuntimeError("the agent did not start: " + "".join(lines))
        proc.early_lines = lines  # type: ignore[attr-defined]
        return proc

    def stop_agent(self, proc: subprocess.Popen) -> str:
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()  # type: ignore[union-attr]
        proc.wait(60)
        return "".join(proc.early_lines) + rest  # type: ignore[attr-defined]

    def start_tcpdump(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.node_ns, "taskset", "-c", "1", "tcpdump", "-n",
             "-i", self.veth, "-B", str(32 << 10), "-w", "/dev/null", CONNECTION_START_FILTER],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        for line in proc.stderr:  # type: ignore[union-attr]
            if "listening on" in line:
                break
        return proc

    @staticmethod
    def stop_tcpdump(proc: subprocess.Popen) -> tuple[int, int]:
        proc.send_signal(signal.SIGINT)
        text = proc.stderr.read()  # type: ignore[union-attr]
        proc.wait(30)
        captured = int(re.search(r"(\d+) packets? captured", text).group(1))
        dropped = int(re.search(r"(\d+) packets? dropped by kernel", text).group(1))
        return captured, dropped

    def recorded(self, out: Path) -> int:
        from recorder.report import ReadReport
        from recorder.schema import FlowRecord
        from recorder.sources import read_inputs

        return sum(r.count for r in read_inputs([str(out)], ReadReport())
                   if isinstance(r, FlowRecord) and r.protocol == "TCP" and r.dst_ip == self.sink.ip)

    def sources(self, count: int) -> list[str]:
        """Enough client addresses that no 5-tuple repeats (64,512 ports each): a real
        client never reuses one within seconds, and the agent rightly counts a repeated
        SYN once."""
        return [f"10.99.0.{100 + i}" for i in range(-(-count // 64512))]

    # -- trials

    def rate_trial(self, rate: int, seconds: float, source: str = "capture") -> dict:
        out = self.tmp / f"rate-{source}-{rate}.jsonl"
        agent = self.start_agent(out, ["--window", "1s"], source)
        dump = self.start_tcpdump()
        time.sleep(0.5)
        count = int(rate * seconds)
        cpu0 = cpu_seconds(agent.pid)
        sent, elapsed = self.send(rate, count, self.sources(count))
        time.sleep(1.0)  # let the socket buffer drain
        cpu1 = cpu_seconds(agent.pid)
        rss, hwm = memory_kib(agent.pid)
        captured, tcpdump_drops = self.stop_tcpdump(dump)
        log = self.stop_agent(agent)
        drops = int(re.search(r"(?:kernel_drops|enobufs)=(\d+)", log).group(1))
        recorded = self.recorded(out)
        cpu = (cpu1 - cpu0) / (elapsed + 1.0)
        achieved = sent / elapsed
        return {"source": source, "rate": rate, "achieved_rate": round(achieved), "sent": sent,
                "recorded": recorded, "agent_kernel_drops": drops, "tcpdump_captured": captured,
                "tcpdump_kernel_drops": tcpdump_drops, "zero_loss": recorded == sent,
                "agent_cpu_core_fraction": round(cpu, 3),
                "agent_cpu_per_1000_cps": round(cpu / (achieved / 1000), 4),
                "agent_rss_mib": round(rss / 1024, 1), "agent_hwm_mib": round(hwm / 1024, 1)}

    def variant_trial(self, variant: str, rate: int, seconds: float) -> dict:
        count = int(rate * seconds)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.node_ns, "taskset", "-c", "0", "env",
             f"PYTHONPATH={ROOT}", "HOME=/tmp", PY, "-c", VARIANT, variant, self.veth,
             CONNECTION_START_FILTER, str(seconds + 4)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
        time.sleep(1.0)  # the socket is open (sniff sets up inside)
        cpu0 = cpu_seconds(proc.pid)
        sent, elapsed = self.send(rate, count, self.sources(count))
        cpu1 = cpu_seconds(proc.pid)
        out, err = proc.communicate(timeout=seconds + 60)
        try:
            got = int(out.split()[-1])
        except (IndexError, ValueError):
            return {"variant": variant, "rate": rate, "error": err.strip()[-300:]}
        return {"variant": variant, "rate": rate, "sent": sent, "processed": got,
                "loss_percent": round(100 * (sent - got) / sent, 1),
                "cpu_core_fraction": round((cpu1 - cpu0) / elapsed, 3)}

    def flood(self, total: int, rate: int) -> dict:
        out = self.tmp / "flood.jsonl"
        agent = self.start_agent(out, ["--window", "600s", "--max-keys", "100000"])
        srcs = self.sources(total)
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not done.is_set():
                samples.append((round(time.monotonic() - t0, 1), memory_kib(agent.pid)[0]))
                time.sleep(1.0)

        sampler = threading.Thread(target=sample)
        sampler.start()
        sent, elapsed = self.send(rate, total, srcs, dports=(1, 20000))
        time.sleep(2.0)
        done.set()
        sampler.join()
        rss, hwm = memory_kib(agent.pid)
        log = self.stop_agent(agent)
        overflow = int(re.search(r"(\d+) over the key cap", log).group(1))
        drops = int(re.search(r"kernel_drops=(\d+)", log).group(1))
        seen = int(re.search(r"aggregation: (\d+) observation", log).group(1))
        recorded = self.recorded(out)
        quarter = len(samples) // 4
        return {"syns": sent, "distinct_source_pairs": sent, "rate": round(sent / elapsed),
                "agent_observations": seen, "recorded_in_flow_log": recorded,
                "overflow_counted": overflow, "kernel_drops": drops,
                "recorded_plus_overflow_plus_drops": recorded + overflow + drops,
                "rss_mib_first_quarter": round(samples[quarter][1] / 1024, 1) if samples else None,
                "rss_mib_end": round(rss / 1024, 1), "hwm_mib": round(hwm / 1024, 1),
                "rss_samples_mib": [(t, round(k / 1024, 1)) for t, k in samples]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="1000,2000,5000,10000,20000,40000")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--conntrack", action="store_true",
                    help="Also sweep the rates with --source conntrack (drops = ENOBUFS).")
    ap.add_argument("--variants", action="store_true")
    ap.add_argument("--variant-rates", default="5000,10000,20000,40000")
    ap.add_argument("--flood", type=int, default=0)
    ap.add_argument("--flood-rate", type=int, default=20000)
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_record: needs root (network namespaces, packet sockets)")
    bench = Bench()
    results: dict = {"cpus": os.cpu_count(), "filter": CONNECTION_START_FILTER}
    try:
        results["rates"] = []
        print(f"{'src':4} {'rate':>7} {'achieved':>8} {'sent':>7} {'agent':>7} {'drops':>6} "
              f"{'tcpdump':>7} {'t.drops':>7} {'cpu':>6} {'cpu/1k':>7} {'rss MiB':>7}")
        sweeps = [("capture", rate) for rate in (int(r) for r in args.rates.split(",") if r)]
        if args.conntrack:
            sweeps += [("conntrack", rate) for rate in (int(r) for r in args.rates.split(",") if r)]
        for source, rate in sweeps:
            r = bench.rate_trial(rate, args.seconds, source)
            results["rates"].append(r)
            print(f"{source[:4]} {r['rate']:>7} {r['achieved_rate']:>8} {r['sent']:>7} {r['recorded']:>7} "
                  f"{r['agent_kernel_drops']:>6} {r['tcpdump_captured']:>7} "
                  f"{r['tcpdump_kernel_drops']:>7} {r['agent_cpu_core_fraction']:>6} "
                  f"{r['agent_cpu_per_1000_cps']:>7} {r['agent_rss_mib']:>7}", flush=True)
        for source in dict.fromkeys(s for s, _ in sweeps):
            lossless = [r["achieved_rate"] for r in results["rates"]
                        if r["zero_loss"] and r["source"] == source]
            results[f"max_zero_loss_rate_{source}"] = max(lossless) if lossless else 0
            print(f"{source}: highest rate recorded with zero loss: "
                  f"{results[f'max_zero_loss_rate_{source}']}/s")
        if args.variants:
            results["variants"] = []
            for rate in (int(r) for r in args.variant_rates.split(",") if r):
                for variant in ("scapy-sniff", "scapy-l2listen", "scapy-pcap"):
                    v = bench.variant_trial(variant, rate, min(args.seconds, 3.0))
                    results["variants"].append(v)
                    print(json.dumps(v), flush=True)
        if args.flood:
            results["flood"] = bench.flood(args.flood, args.flood_rate)
            f = {k: v for k, v in results["flood"].items() if k != "rss_samples_mib"}
            print(json.dumps(f), flush=True)
            print("rss samples (s, MiB):", results["flood"]["rss_samples_mib"])
    finally:
        bench.close()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
