"""The token `flowpol collect` shows the recorders (``X-Flowpol-Token``,
recorder/agent/readers.py): a segment reader's, never the user's own credential.

* ``--token-file FILE``: a token someone else issued, read again whenever the file
  changes. In the tightening CronJob this is the pod's projected ServiceAccount token
  (``audience: flowpol-recorder``), which the kubelet renews before it expires.
* Otherwise a TokenRequest for the collector ServiceAccount (``--service-account``,
  default ``flowpol-system/flowpol-collector``) through the API server collect already
  talks to: audience ``flowpol-recorder``, ten minutes (the shortest the API server
  grants: "may not specify a duration less than 10 minutes", its TokenRequest
  validation), requested again shortly before it expires. The caller needs ``create``
  on ``serviceaccounts/token`` for that ServiceAccount; the API server decides.
"""

from __future__ import annotations

import json
import os
import stat
import time
from typing import Any, Callable

from recorder.agent.readers import AUDIENCE
from recorder.errors import ClusterError, UsageError
from recorder.timefmt import parse_time

DEFAULT_SERVICE_ACCOUNT = "flowpol-system/flowpol-collector"
REQUESTED_SECONDS = 600
MAX_TOKEN_FILE_BYTES = 65536


class TokenSource:
    """``token()``: the token to send now."""

    def token(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class FileToken(TokenSource):
    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple | None = None
        self._token = ""

    def describe(self) -> str:
        return f"the token in {self.path}"

    def token(self) -> str:
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise UsageError(f"--token-file {self.path}: cannot read it ({e.strerror})") from None
        regular = stat.S_ISREG(st.st_mode)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        # A pipe (e.g. <(kubectl create token ...)) can be read once only.
        if self._token and (not regular or key == self._seen):
            return self._token
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_TOKEN_FILE_BYTES + 1)
        except OSError as e:
            raise UsageError(f"--token-file {self.path}: cannot read it ({e.strerror})") from None
        text = raw.decode("ascii", "replace").strip()
        if not text or len(raw) > MAX_TOKEN_FILE_BYTES or any(c.isspace() for c in text):
            raise UsageError(f"--token-file {self.path}: does not hold one token (give the "
                             f"file of a ServiceAccount token for audience {AUDIENCE})")
        self._seen, self._token = key, text
        return text


def parse_service_account(text: str) -> tuple[str, str]:
    from recorder.agent.readers import parse_readers

    user = parse_readers(text, "--service-account")
    if len(user) != 1:
        raise UsageError(f"--service-account {text!r}: give one ServiceAccount as "
                         "NAMESPACE/NAME")
    _, _, ns, name = user[0].split(":", 3)
    return ns, name


class RequestedToken(TokenSource):
    """A TokenRequest for ``namespace/name``, renewed a minute before it expires."""

    def __init__(self, api: Any, namespace: str, name: str, server: str, context: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.api = api  # kubernetes ApiClient
        self.namespace = namespace
        self.name = name
        self.server = server
        self.context = context
        self.clock = clock
        self._token = ""
        self._renew_at = 0.0

    def describe(self) -> str:
        return f"a token of ServiceAccount {self.namespace}/{self.name} (TokenRequest)"

    def token(self) -> str:
        if self._token and self.clock() < self._renew_at:
            return self._token
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        from recorder.kube import root_cause

        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [AUDIENCE], "expirationSeconds": REQUESTED_SECONDS}}
        sa = f"{self.namespace}/{self.name}"
        try:
            resp = client.CoreV1Api(self.api).create_namespaced_service_account_token(
                self.name, self.namespace, body, _preload_content=False,
                _request_timeout=(10, 60))
            status = json.loads(resp.data).get("status") or {}
        except ApiException as e:
            try:
                message = json.loads(e.body).get("message", "") if e.body else ""
            except (ValueError, AttributeError):
                message = ""
            detail = f": {message}" if message else ""
            if e.status in (401, 403):
                raise ClusterError(
                    f"not allowed to get a token of ServiceAccount {sa} on {self.server} "
                    f"(context {self.context!r}, {e.status}{detail}); reading segments needs "
                    f"create on serviceaccounts/token for it (the flowpol-collect Role, see "
                    "recorder/deploy/README.md, \"Collect\"), or pass --token-file") from None
            if e.status == 404:
                raise ClusterError(
                    f"no ServiceAccount {sa} on {self.server}{detail}; is the recorder "
                    "deployed (kubectl apply -k recorder/deploy)? Name the recorders' reader "
                    "with --service-account") from None
            raise ClusterError(f"cannot get a token of ServiceAccount {sa} on {self.server}: "
                               f"{e.status} {e.reason}{detail}") from None
        except (Urllib3Error, OSError) as e:
            raise ClusterError(f"cannot reach the API server {self.server} of context "
                               f"{self.context!r} to get a token of ServiceAccount {sa} "
                               f"({root_cause(e)})") from None
        except ValueError:
            raise ClusterError(f"{self.server} answered the TokenRequest for {sa} with "
                               "something that is not JSON") from None
        token, expires = status.get("token"), status.get("expirationTimestamp")
        if not isinstance(token, str) or not token:
            raise ClusterError(f"{self.server} answered the TokenRequest for {sa} without a "
                               "token")
        now = self.clock()
        try:
            lifetime = parse_time(expires) / 1e9 - now if isinstance(expires, str) else 0.0
        except ValueError:
            lifetime = 0.0
        lifetime = lifetime if lifetime > 0 else REQUESTED_SECONDS
        self._token = token
        self._renew_at = now + max(lifetime - 60.0, lifetime / 2)
        return token


def token_source(token_file: str | None, service_account: str, api: Any, server: str,
                 context: str) -> TokenSource:
    if token_file:
        return FileToken(token_file)
    ns, name = parse_service_account(service_account)
    return RequestedToken(api, ns, name, server, context)
