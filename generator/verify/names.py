"""DNS name bindings as the evaluator takes them: which names an address had, when.

A ``NameBinding`` says that ``name`` resolved to ``address`` from ``valid_from`` to
``valid_to`` (ns; the answer's time plus its TTL and any grace period, decided by whoever
learned it), for the pod ``client`` (``namespace/name``) that asked, or for anyone when
``client`` is None. Cilium allows a ``toFQDNs`` peer by the addresses its DNS proxy saw
answered for the name, per endpoint, while the TTL holds (Cilium docs, "DNS based"), so a
connection matches a name only when a binding holds at the connection's time.

``NamedAddress`` is an address endpoint that carries the names bound to it for one
connection: a ``str`` (the address), so every evaluator takes it as an address.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, slots=True)
class NameBinding:
    name: str  # lower case, no trailing dot
    address: str
    valid_from: int
    valid_to: int
    client: str | None = None  # "namespace/pod" that asked; None: anyone


class NamedAddress(str):
    """An address and the DNS names bound to it at the time of one connection."""

    names: frozenset[str]

    def __new__(cls, address: str, names: frozenset[str]) -> "NamedAddress":
        obj = super().__new__(cls, address)
        obj.names = names
        return obj


def normal_name(name: str) -> str:
    return name.rstrip(".").lower()


class NameBindings:
    """Bindings by address, asked for the names an address had at a time."""

    def __init__(self, bindings: Iterable[NameBinding] = ()) -> None:
        by_address: dict[str, list[NameBinding]] = {}
        for b in bindings:
            by_address.setdefault(b.address, []).append(
                NameBinding(normal_name(b.name), b.address, b.valid_from, b.valid_to, b.client))
        self._by_address = {a: sorted(bs, key=lambda b: b.valid_from)
                            for a, bs in by_address.items()}
        self._starts = {a: [b.valid_from for b in bs] for a, bs in self._by_address.items()}
        # one NamedAddress object per (address, names): endpoints are looked up by identity
        self._endpoints: dict[tuple[str, frozenset[str]], NamedAddress] = {}

    def __bool__(self) -> bool:
        return bool(self._by_address)

    def names(self, address: str, at: int, client: str | None = None) -> frozenset[str]:
        found = self._by_address.get(address)
        if not found:
            return frozenset()
        end = bisect_right(self._starts[address], at)
        return frozenset(b.name for b in found[:end]
                         if b.valid_to >= at and (b.client is None or b.client == client))

    def endpoint(self, address: str, at: int, client: str | None = None) -> str:
        names = self.names(address, at, client)
        if not names:
            return address
        key = (address, names)
        hit = self._endpoints.get(key)
        if hit is None:
            hit = self._endpoints[key] = NamedAddress(address, names)
        return hit
