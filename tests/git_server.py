"""A real git server on loopback for tests: git's own ``git http-backend`` (smart HTTP,
clone and push) behind a small CGI gateway with HTTP basic authentication.

    with GitHttpServer(tmp_path / "srv", user="bot", token="s3cret") as srv:
        bare = srv.create_repo("policies.git", files={"shop.yaml": "..."}, branch="main")
        srv.url("policies.git")        # http://127.0.0.1:PORT/policies.git
        srv.branches("policies.git")   # {"main": "<sha>", ...}
        srv.pushes                     # receive-pack requests that were accepted

Only 127.0.0.1; every request without the right credentials gets 401 (so a client
that sends none is asked for them, as a forge does).
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


def run_git(*args: str, cwd: Path | None = None, env: dict | None = None) -> str:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    full_env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                     "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
                     "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost"})
    full_env.update(env or {})
    done = subprocess.run(["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout


class GitHttpServer:
    def __init__(self, root: Path, user: str = "flowpol-bot", token: str = "test-token"):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.user, self.token = user, token
        self.pushes: list[str] = []
        self.unauthorized = 0
        self._httpd: ThreadingHTTPServer | None = None

    def __enter__(self) -> "GitHttpServer":
        server = self

        class Handler(_CgiHandler):
            git_server = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def url(self, repo: str) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{repo}"

    def create_repo(self, name: str, files: dict[str, str], branch: str = "main") -> Path:
        """A bare repository whose ``branch`` holds ``files`` (one commit)."""
        bare = self.root / name
        run_git("init", "--quiet", "--bare", "--initial-branch", branch, str(bare))
        work = self.root / f".{name}.seed"
        run_git("init", "--quiet", "--initial-branch", branch, str(work))
        for rel, text in files.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(text)
        run_git("add", "-A", cwd=work)
        run_git("commit", "--quiet", "-m", "policies", cwd=work)
        run_git("push", "--quiet", str(bare), f"{branch}:{branch}", cwd=work)
        return bare

    def branches(self, name: str) -> dict[str, str]:
        out = run_git("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads",
                      cwd=self.root / name)
        return dict(line.split(" ", 1) for line in out.splitlines())

    def show(self, name: str, rev: str, path: str) -> str:
        return run_git("show", f"{rev}:{path}", cwd=self.root / name)

    def log_message(self, name: str, rev: str) -> str:
        return run_git("log", "-1", "--format=%B", rev, cwd=self.root / name)

    def changed_files(self, name: str, rev: str) -> list[str]:
        return run_git("diff", "--name-only", f"{rev}~1", rev, cwd=self.root / name).split()


class _CgiHandler(BaseHTTPRequestHandler):
    git_server: GitHttpServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return (user, password) == (self.git_server.user, self.git_server.token)

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def _cgi(self) -> None:
        srv = self.git_server
        if not self._authorized():
            srv.unauthorized += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        url = urlsplit(self.path)
        body = b""
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update({
            "GIT_PROJECT_ROOT": str(srv.root), "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "REQUEST_METHOD": self.command, "PATH_INFO": url.path,
            "QUERY_STRING": url.query, "REMOTE_USER": srv.user, "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
        })
        for header, var in (("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                            ("Git-Protocol", "GIT_PROTOCOL")):
            if self.headers.get(header):
                env[var] = self.headers[header]
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                              timeout=120)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        if url.path.endswith("/git-receive-pack") and status == 200:
            srv.pushes.append(url.path)
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
