"""A ``kubernetes`` API client from a kubeconfig or the in-cluster service account.

Shared by everything that talks to a cluster (the recorder's pod watch and ``flowpol
collect``; ``generator/inventory/live.py`` may import it from here, since recorder must
not import generator). Errors are ClusterError with what to do about them.
"""

from __future__ import annotations

import os
from typing import Any

from recorder.errors import ClusterError


def kubeconfig_files(kubeconfig: str | None) -> list[str]:
    spec = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    files = [os.path.expanduser(p) for p in spec.split(os.pathsep) if p]
    if kubeconfig:
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise ClusterError(f"{missing[0]}: no such kubeconfig file; pass the path of an "
                               "existing kubeconfig with --kubeconfig")
    return [f for f in files if os.path.isfile(f)]


def configuration() -> Any:
    """A client Configuration that sends bearer tokens on every client version.

    kubernetes 36.0.0 looks the token up as ``api_key['BearerToken']`` while its own
    kubeconfig and in-cluster loaders store ``api_key['authorization']``, so every
    token-authenticated request went out anonymous (kubernetes-client/python#2582,
    fixed in 36.0.1). Fall back to the loaders' key when the generated lookup finds none.
    """
    from kubernetes import client

    class Configuration(client.Configuration):
        def auth_settings(self) -> dict:
            auth = super().auth_settings()
            if not auth and "authorization" in self.api_key:
                auth["BearerToken"] = {
                    "type": "api_key", "in": "header", "key": "authorization",
                    "value": self.get_api_key_with_prefix("authorization"),
                }
            return auth

    return Configuration()


def api_client(kubeconfig: str | None = None, context: str | None = None) -> tuple[Any, str]:
    """(ApiClient, context name). In a pod without a kubeconfig: the service account
    ("in-cluster")."""
    from kubernetes import client, config
    from kubernetes.config import kube_config
    from kubernetes.config.config_exception import ConfigException

    files = kubeconfig_files(kubeconfig)
    if not files:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
            cfg = configuration()
            try:
                config.load_incluster_config(client_configuration=cfg)
            except ConfigException as e:
                raise ClusterError(f"in-cluster configuration failed: {e}") from None
            return client.ApiClient(cfg), "in-cluster"
        raise ClusterError(
            "no kubeconfig found ($KUBECONFIG is unset or names no file, and ~/.kube/config "
            "does not exist); pass one with --kubeconfig FILE or set KUBECONFIG"
        )
    where = os.pathsep.join(files)
    try:
        merged = kube_config.KubeConfigMerger(where).config
        raw = merged.value if merged is not None else None
    except Exception as e:  # yaml.YAMLError, OSError, ... from a corrupt file
        raise ClusterError(f"{where}: cannot read the kubeconfig ({' '.join(str(e).split())})"
                           ) from None
    if not isinstance(raw, dict):
        raise ClusterError(f"{where}: not a kubeconfig (no configuration found); check it "
                           "with `kubectl config view`")
    contexts = [getattr(c, "value", c) for c in raw.get("contexts") or []]
    names = sorted(str(c.get("name", "")) for c in contexts if isinstance(c, dict))
    current = raw.get("current-context") or None
    if context is not None and context not in names:
        raise ClusterError(f"context {context!r} is not in {where}; it has "
                           f"{', '.join(names) or 'no contexts'}. Choose one with --context")
    if context is None and not current:
        raise ClusterError(f"{where} has no current-context; choose one of "
                           f"{', '.join(names) or '(none)'} with --context")
    context_name = context or str(current)
    cfg = configuration()  # its own, not the process-wide default
    try:
        config.load_kube_config(config_file=where, context=context_name,
                                client_configuration=cfg, persist_config=False)
    except (ConfigException, ValueError, KeyError, TypeError) as e:
        raise ClusterError(f"{where}: context {context_name!r} cannot be used ({e}); check "
                           "it with `kubectl config view`") from None
    return client.ApiClient(cfg), context_name


def root_cause(e: BaseException) -> str:
    """The innermost reason of a urllib3/socket error, short."""
    reason = getattr(e, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = reason.reason
    text = str(reason or e)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return text
