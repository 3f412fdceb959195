"""Follow the kernel's connection tracking: ``conntrack -E`` as a subprocess.

``conntrack -E -o timestamp -e NEW,DESTROY`` prints one line per connection start and
end; the lines are parsed by the conntrack reader (recorder/sources/conntrack.py), which
keeps the NEW event of each connection (DESTROY only frees its tuple, so a reused
5-tuple counts again) and turns the reply tuple into ``xlated_ip``/``xlated_port``: the
ClusterIP and service port the client dialled *and* the backend pod and targetPort.

When the kernel's event queue overflows (a burst faster than conntrack reads), the tool
prints ``WARNING: We have hit ENOBUFS!`` and events are lost; each warning is counted as
``enobufs`` and reported (the netlink buffer is raised with ``-b`` to make it rare).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from typing import Callable, Sequence

from recorder.errors import UsageError
from recorder.report import ReadReport
from recorder.sources import ReadOptions
from recorder.sources.conntrack import read as read_conntrack

INPUT_NAME = "conntrack:events"
NETLINK_BUFFER = 16 << 20

Emit = Callable[[list], None]


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
        for rec in read_conntrack(self._proc.stdout, INPUT_NAME, self.report, ReadOptions()):
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
                **{f"conntrack-{k}" if not k.startswith("conntrack") else k: v
                   for k, v in sorted(r.ignored.items())}}
