"""A real git-over-ssh server on loopback for tests: OpenSSH's sshd on 127.0.0.1 with
its own host key, accepting one client key, serving the bare repositories under a
directory (``ssh://USER@127.0.0.1:PORT/<dir>/<repo>.git``).

    with GitSshServer(tmp_path / "sshd") as srv:
        srv.url(bare_repo_path)          # the remote URL
        srv.write_credentials(directory) # ssh-privatekey + known_hosts, as the Secret has them

Needs root (sshd) and openssh-server; it runs as the current user's login, with a
config that reads nothing of the system's.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GitSshServer:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = _free_port()
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "GitSshServer":
        host_key, client_key = self.root / "host_ed25519", self.root / "client_ed25519"
        for key in (host_key, client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True)
        authorized = self.root / "authorized_keys"
        shutil.copy(f"{client_key}.pub", authorized)
        authorized.chmod(0o600)
        config = self.root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {authorized}\nPidFile {self.root / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\n"
            f"AllowUsers {self.user}\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        self._proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"sshd exited: {self._proc.stderr.read().decode()}")
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)

    def url(self, bare: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{bare}"

    def write_credentials(self, directory: Path) -> None:
        """The files of a kubernetes.io/ssh-auth Secret plus known_hosts."""
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.root / "client_ed25519", directory / "ssh-privatekey")
        (directory / "ssh-privatekey").chmod(0o440)  # as a Secret volume with fsGroup mounts it
        host_pub = (self.root / "host_ed25519.pub").read_text().split()
        (directory / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
