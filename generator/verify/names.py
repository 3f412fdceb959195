"""DNS name bindings as the evaluator takes them: which names an address had, when.

A ``NameBinding`` says that ``name`` resolved to ``address`` from ``valid_from`` to
``valid_to`` (ns; the answer's time plus its TTL and any grace period, decided by whoever
learned it), for the pod ``client`` (``namespace/name``) that asked, or for anyone when
``client`` is None. Cilium allows a ``toFQDNs`` peer by the addresses its DNS proxy saw
answered for the name, per endpoint, while the TTL holds (Cilium docs, "DNS based"), so a
connection matches a name only when a binding holds at the connection's time.

``NamedAddress`` is an address endpoint that carries the names bound to it for one
connection: a ``str`` (the address), so every evaluator takes it as an address.

``pattern_matches`` is Cilium's ``toFQDNs.matchPattern``, as its agent compiles a pattern
(pkg/fqdn/matchpattern: Sanitize, ToAnchoredRegexp, escapeRegexpCharacters): names and
patterns are compared in lower case as fully qualified names; a pattern of stars alone
(``*``, ``**.``) matches every name; a leading run of two or more stars followed by ``.``
matches one or more whole labels (``**.example.com``: ``a.example.com``,
``a.b.example.com``, not ``example.com``); any other run of stars matches zero or more
of ``[-a-z0-9_]`` and so never crosses a dot (``*.example.com`` matches ``www.example.com``
only; ``*example.com`` matches ``example.com`` and ``myexample.com``, not
``www.example.com``); ``.`` is literal. The CRD's own description of ``matchPattern``
(a leftmost ``*`` "matches all subdomains as well as the name to the right") disagrees
with its own example 2 and with the code; the code decides.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
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


_DNS_CHARS = "[-a-z0-9_]"
# what the CRD accepts as a matchPattern (and Cilium's allowedPatternChars), at most 255
_PATTERN = re.compile(r"([-a-zA-Z0-9_*]+\.?)+")


def valid_pattern(pattern: str) -> bool:
    return len(pattern) <= 255 and _PATTERN.fullmatch(pattern) is not None


def matches_every_name(pattern: str) -> bool:
    """Cilium's isDNSWildcard: stars alone, with or without a trailing dot."""
    core = pattern.strip()
    core = core[:-1] if core.endswith(".") else core
    return bool(core) and set(core) == {"*"}


@lru_cache(maxsize=1024)
def _pattern_regex(pattern: str) -> re.Pattern:
    p = normal_name(pattern.strip())
    if matches_every_name(pattern):
        return re.compile(rf"{_DNS_CHARS}+(\.{_DNS_CHARS}+)*|")
    out, i = [], 0
    stars = len(p) - len(p.lstrip("*"))
    if stars >= 2 and p[stars:stars + 1] == ".":
        out.append(rf"{_DNS_CHARS}+(\.{_DNS_CHARS}+)*\.")  # one or more whole labels
        i = stars + 1
    while i < len(p):
        if p[i] == "*":
            while i + 1 < len(p) and p[i + 1] == "*":
                i += 1
            out.append(f"{_DNS_CHARS}*")
        else:
            out.append(re.escape(p[i]))
        i += 1
    return re.compile("".join(out))


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether Cilium's ``matchPattern: pattern`` admits ``name`` (see the module doc)."""
    return _pattern_regex(pattern).fullmatch(normal_name(name)) is not None


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
