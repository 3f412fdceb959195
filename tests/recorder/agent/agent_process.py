"""Run the real `flowpol record` CLI inside a netlab namespace, as the DaemonSet would
run it on a node, and read its stdout (the flow-log lines) and stderr (its messages)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from netlab import Background, NetLab

ROOT = Path(__file__).resolve().parents[3]


class AgentProcess:
    def __init__(self, lab: NetLab, args: Sequence[str], env: dict[str, str] | None = None,
                 netns: str | None = None) -> None:
        env_args = [f"{k}={v}" for k, v in {"PYTHONPATH": str(ROOT), **(env or {})}.items()]
        self.bg: Background = lab.spawn(netns or lab.node_ns, "env", *env_args, sys.executable,
                                        "-m", "generator.cli.main", "record", *args)
        self.stdout = bytearray()
        self.stderr_lines: list[str] = []
        self._readers = [threading.Thread(target=self._pump_out, daemon=True),
                         threading.Thread(target=self._pump_err, daemon=True)]
        for t in self._readers:
            t.start()

    def _pump_out(self) -> None:
        assert self.bg.proc.stdout is not None
        for chunk in iter(lambda: self.bg.proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            self.stdout += chunk

    def _pump_err(self) -> None:
        assert self.bg.proc.stderr is not None
        for raw in self.bg.proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def wait_for(self, text: str, timeout: float = 20.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.stderr_lines) < count:
            if self.bg.proc.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"the agent exited ({self.bg.proc.returncode}) before "
                                     f"{text!r}:\n{self.stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from the agent within {timeout} s:\n"
                                     f"{self.stderr}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig``, wait for the exit, return the exit code."""
        proc = self.bg.proc
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout)
        for t in self._readers:
            t.join(5)
        return proc.returncode
