"""Follow the kernel's connection tracking: ``conntrack -E`` as a subprocess.

``conntrack -E -o timestamp -e NEW,DESTROY`` prints one line per connection start and
end; the lines are parsed by the conntrack reader (recorder/sources/conntrack.py), which
keeps the NEW event of each connection (DESTROY only frees its tuple, so a reused
5-tuple counts again) and turns the reply tuple into ``xlated_ip``/``xlated_port``: the
ClusterIP and service port the client dialled *and* the backend pod and targetPort.

A DESTROY event whose NEW this run never saw is not a connection start: after a
restart every connection the kernel was tracking ends with a DESTROY the new process
sees (a restarted agent with no traffic would count hundreds). The offline reader counts
such a DESTROY, since a file can start in the middle of a stream; here the stream starts
with this process, so ``NewEventsOnly`` keeps those DESTROY lines from the reader and
counts them (``destroy_without_new``). The DESTROY of a connection whose NEW it saw
still reaches the reader, which frees the tuple so that a reuse of the 5-tuple counts
again. (It does not extend the connection's ``last_seen``: the window that counted the
start is usually written by then, and a written segment is never rewritten.)

When the kernel's event queue overflows (a burst faster than conntrack reads), the tool
prints ``WARNING: We have hit ENOBUFS!`` and events are lost; each warning is counted as
``enobufs`` and reported (the netlink buffer is raised with ``-b`` to make it rare).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
import time
from itertools import islice
from typing import BinaryIO, Callable, Sequence

from recorder.errors import UsageError
from recorder.report import ReadReport
from recorder.sources import ReadOptions
from recorder.sources.conntrack import read as read_conntrack

INPUT_NAME = "conntrack:events"
NETLINK_BUFFER = 16 << 20

Emit = Callable[[list], None]
# NEW events remembered until their DESTROY; above the reader's own bound
# (conntrack.MAX_TRACKED_TUPLES, 65536), so a tuple the reader still tracks is known here.
MAX_LIVE_TUPLES = 1 << 17
_TUPLE_FIELDS = (b"src=", b"dst=", b"sport=", b"dport=", b"type=", b"code=", b"id=")
_EVENT_TAGS = (b"[NEW] ", b"[DESTROY] ", b"[UPDATE] ")
_READ = 1 << 16


def event_tuple(line: bytes) -> tuple[bytes, bytes] | None:
    """(event tag, connection key) of a ``conntrack -E`` line, or None for other lines.
    The key is the protocol and the original tuple up to its ``dport=`` (ICMP: its
    addresses, type, code and id): what a connection's NEW and DESTROY lines share
    (DESTROY adds counters after it)."""
    for tag in _EVENT_TAGS:
        at = line.find(tag)
        if at >= 0:
            break
    else:
        return None
    proto_at = at + len(tag)
    start = line.find(b"src=", proto_at)
    if start < 0:
        return None
    proto = line[proto_at:line.find(b" ", proto_at)]
    end = line.find(b" src=", start + 4)  # where the reply tuple starts
    original = line[start:end] if end > 0 else line[start:].rstrip()
    d = original.find(b" dport=")
    if d > 0:
        e = original.find(b" ", d + 7)
        key = original[:e] if e > 0 else original
    else:
        key = b" ".join(t for t in original.split() if t.startswith(_TUPLE_FIELDS))
    return tag[:-1], proto + b" " + key


class NewEventsOnly(io.RawIOBase):
    """``conntrack -E`` output without the DESTROY lines of connections whose NEW this
    stream did not carry (see the module doc); everything else passes unchanged.

    Reads what the pipe has (``read1``): a NEW line is handed on as soon as it arrives,
    and a burst is filtered a chunk at a time rather than a line at a time."""

    def __init__(self, raw: BinaryIO, capacity: int = MAX_LIVE_TUPLES) -> None:
        super().__init__()
        self._raw = raw
        self._read = getattr(raw, "read1", raw.read)
        self._pending = b""
        self._tail = b""  # a line not complete yet
        self._live: dict[bytes, None] = {}
        self._capacity = capacity
        self.destroy_without_new = 0

    def readable(self) -> bool:
        return True

    def _keep(self, line: bytes) -> bool:
        parsed = event_tuple(line)
        if parsed is None:
            return True
        event, key = parsed
        live = self._live
        if event == b"[NEW]":
            live[key] = None
            if len(live) > self._capacity:  # forget the oldest half, in one rebuild
                self._live = dict(islice(live.items(), len(live) // 2, None))
            return True
        if event == b"[DESTROY]":
            if key in live:
                del live[key]
                return True
            self.destroy_without_new += 1
            return False
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        while not self._pending:
            chunk = self._read(_READ)
            if not chunk:  # the end: a last line without its newline
                last, self._tail = self._tail, b""
                if not last:
                    return 0
                self._pending = last if self._keep(last) else b""
                if not self._pending:
                    return 0
                break
            data = self._tail + chunk
            cut = data.rfind(b"\n") + 1
            self._tail = data[cut:]
            keep = self._keep
            self._pending = b"".join([line + b"\n" for line in data[:cut].split(b"\n")[:-1]
                                      if keep(line)])
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def conntrack_command(binary: str = "conntrack") -> list[str]:
    return [binary, "-E", "-o", "timestamp", "-e", "NEW,DESTROY", "-b", str(NETLINK_BUFFER)]


class ConntrackEventsSource:
    name = "conntrack"

    def __init__(self, command: Sequence[str] | None = None,
                 log: Callable[[str], None] = lambda _msg: None) -> None:
        self.command = list(command) if command else conntrack_command()
        self.log = log
        self.report = ReadReport()
        self.enobufs = 0
        self.stderr_tail: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._events: NewEventsOnly | None = None
        self._stderr_thread: threading.Thread | None = None

    def start(self) -> None:
        if shutil.which(self.command[0]) is None:
            raise UsageError(f"the conntrack source needs the `{self.command[0]}` tool "
                             "(Debian: apt-get install conntrack)")
        self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True,
                                               name="conntrack-stderr")
        self._stderr_thread.start()
        # It fails at once without CAP_NET_ADMIN or without nf_conntrack; give it that long.
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline and self._proc.poll() is None:
            time.sleep(0.02)
        if self._proc.poll() is not None:
            self._stderr_thread.join(1.0)
            why = " ".join(self.stderr_tail[-3:]) or f"exit code {self._proc.returncode}"
            raise UsageError(f"`{' '.join(self.command)}` failed: {why}; the conntrack "
                             "source needs CAP_NET_ADMIN and the nf_conntrack module")
        self.log(f"conntrack: following `{' '.join(self.command)}`")

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            if "ENOBUFS" in line:
                self.enobufs += 1
                self.log("warning: conntrack: the kernel dropped events (ENOBUFS); "
                         "connections of this burst may be missing from the conntrack source")
            elif "flow events have been shown" in line:
                continue  # the exit trailer
            else:
                self.stderr_tail = (self.stderr_tail + [line])[-10:]

    def run(self, emit: Emit, stop: threading.Event) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        # The reader blocks on the pipe and yields as each NEW line arrives; a record is
        # handed over at once (holding it for a batch could hold it until the next event).
        self._events = NewEventsOnly(self._proc.stdout)
        stream = io.BufferedReader(self._events, _READ)
        for rec in read_conntrack(stream, INPUT_NAME, self.report, ReadOptions()):
            emit([rec])
        code = self._proc.wait()
        if not stop.is_set():
            why = " ".join(self.stderr_tail[-3:]) or f"exit code {code}"
            raise RuntimeError(f"conntrack -E stopped unexpectedly: {why}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def stats(self) -> dict[str, int]:
        r = self.report
        return {"events": sum(r.lines.values()), "connections": r.total_kept,
                "enobufs": self.enobufs, "skipped": r.total_skipped,
                "destroy_without_new": self._events.destroy_without_new if self._events else 0,
                **{f"conntrack-{k}" if not k.startswith("conntrack") else k: v
                   for k, v in sorted(r.ignored.items())}}
