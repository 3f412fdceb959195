"""Is the cluster's CNI Cilium? What the snapshot and the inputs say about it.

The kubernetes dialect warns about rules Cilium will not match (ipBlocks of node and
API-server addresses) only when something says the CNI is Cilium: the ``cilium``
DaemonSet (or a DaemonSet labelled ``k8s-app: cilium``), Cilium policy objects in the
snapshot, or Hubble flows among the inputs.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from generator.inventory.model import Inventory


def cilium_evidence(inventory: Inventory, input_formats: Mapping[str, str] = {},
                    snapshot_warnings: Iterable[str] = ()) -> tuple[str, ...]:
    out = []
    agents = sorted(f"{c.namespace}/{c.name}" for c in inventory.controllers
                    if c.kind == "DaemonSet" and (c.name == "cilium"
                                                  or ("k8s-app", "cilium") in c.labels
                                                  or ("k8s-app", "cilium") in c.template_labels))
    if agents:
        out.append(f"DaemonSet {', '.join(agents)} in the snapshot")
    # the snapshot loader counts kinds it does not use in a warning
    if any("CiliumNetworkPolicy" in w or "CiliumClusterwideNetworkPolicy" in w
           for w in snapshot_warnings):
        out.append("Cilium policy objects in the snapshot")
    hubble = sorted(p for p, f in input_formats.items() if f == "hubble")
    if hubble:
        out.append(f"Hubble flows in {len(hubble)} input(s)")
    return tuple(out)
