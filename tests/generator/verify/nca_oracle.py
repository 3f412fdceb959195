"""network-config-analyzer (NCA, np-guard) as an independent NetworkPolicy oracle.

NCA computes, for a whole configuration, the set of allowed connections as a hyper-cube
set over (src_peers, dst_peers, protocols, dst_ports, ...), where peers are integers:
IPv4 addresses as themselves, IPv6 addresses after the IPv4 range, pods after both. We
build one configuration per scenario in-process (the same path as
``nca --connectivity``, without formatting the answer as text) and then answer each probe
by walking the cube layers for one point: far faster than one CLI run per question, and
exact (no parsing of NCA's human-oriented output).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
from pathlib import Path
from typing import Any

import yaml

PROTOCOL_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132}
PROBE_DIMENSIONS = ("src_peers", "dst_peers", "protocols", "dst_ports")


class NcaRejected(Exception):
    """NCA refused the configuration (its parser raised)."""


class NcaOracle:
    def __init__(
        self,
        workdir: Path,
        namespaces: list[dict[str, Any]],
        pods: list[dict[str, Any]],
        policies: list[dict[str, Any]],
    ) -> None:
        import nca.Parsers.GenericYamlParser as nca_parser
        from nca.CoreDS.DimensionsManager import DimensionsManager
        from nca.CoreDS.Peer import BasePeerSet
        from nca.NetworkConfig.NetworkConfigQuery import PolicyConnectionsFilter
        from nca.NetworkConfig.ResourcesHandler import ResourcesHandler

        workdir.mkdir(parents=True, exist_ok=True)
        files = {}
        for name, items in (("namespaces", namespaces), ("pods", pods), ("policies", policies)):
            path = workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}, sort_keys=False))
            files[name] = str(path)
        # NCA keeps every peer it ever saw in process-wide singletons; start clean.
        BasePeerSet.reset()
        DimensionsManager.reset()
        sink = io.StringIO()
        # NCA's parser prints warnings to the sys.stderr it imported; keep them in ``sink``.
        saved_stderr = nca_parser.stderr
        nca_parser.stderr = sink
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                config = ResourcesHandler().get_network_config(
                    np_list=[files["policies"]],
                    ns_list=[files["namespaces"]],
                    pod_list=[files["pods"]],
                    resource_list=None,
                )
                conns = config.allowed_connections(
                    res_conns_filter=PolicyConnectionsFilter.only_all_allowed_connections()
                )
        except SyntaxError as e:
            raise NcaRejected(str(e)) from None
        finally:
            nca_parser.stderr = saved_stderr
        if len(config.policies_container.policies) != len(policies):
            raise NcaRejected(
                f"NCA parsed {len(config.policies_container.policies)} of {len(policies)} policies:\n"
                + sink.getvalue()[-2000:]
            )
        self.props = conns.all_allowed_conns
        extra = set(self.props.active_dimensions) - set(PROBE_DIMENSIONS)
        assert not extra, f"NCA answer depends on dimensions we do not probe: {extra}"
        base = BasePeerSet()
        self._pod_index = {
            peer.full_name(): base.min_pod_index + index for peer, index in base.peer_to_index.items()
        }
        self._min_ipv6 = base.min_ipv6_index
        missing = {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods} - set(self._pod_index)
        assert not missing, f"NCA dropped pods {sorted(missing)[:5]}"

    def peer_index(self, peer: str) -> int:
        """A pod as ``namespace/name`` or an IP address to NCA's peer number."""
        index = self._pod_index.get(peer)
        if index is not None:
            return index
        ip = ipaddress.ip_address(peer)
        return int(ip) if ip.version == 4 else self._min_ipv6 + int(ip)

    def allowed(self, src: str, dst: str, protocol: str, port: int) -> bool:
        point = {
            "src_peers": self.peer_index(src),
            "dst_peers": self.peer_index(dst),
            "protocols": PROTOCOL_NUMBERS[protocol],
            "dst_ports": port,
        }
        return _contains(self.props, point)


def _contains(cubes: Any, point: dict[str, int]) -> bool:
    dims = cubes.active_dimensions
    if not dims:
        return True  # the whole space
    value = point[dims[0]]
    for elem, sub in cubes.layers.items():
        if any(iv.start <= value <= iv.end for iv in elem.interval_set):
            return True if len(dims) == 1 else _contains(sub, point)
    return False
