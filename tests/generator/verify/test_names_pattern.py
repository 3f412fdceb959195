"""Cilium's matchPattern as its agent compiles it (pkg/fqdn/matchpattern), on the
examples the CRD documents (tests/schemas, toFQDNs.matchPattern) and the cases its code
decides."""

from __future__ import annotations

import pytest

from generator.verify.names import matches_every_name, pattern_matches, valid_pattern

# (pattern, name, matches)
CRD_EXAMPLES = [
    # 1. `*.cilium.io` matches subdomains of cilium at that level
    ("*.cilium.io", "www.cilium.io", True), ("*.cilium.io", "blog.cilium.io", True),
    ("*.cilium.io", "cilium.io", False), ("*.cilium.io", "google.com", False),
    # 2. `*cilium.io` matches cilium.io and names ending in "cilium.io" without a "."
    ("*cilium.io", "cilium.io", True), ("*cilium.io", "subcilium.io", True),
    ("*cilium.io", "sub-cilium.io", True), ("*cilium.io", "www.cilium.io", False),
    ("*cilium.io", "blog.cilium.io", False),
    # 3. `sub*.cilium.io`
    ("sub*.cilium.io", "sub.cilium.io", True), ("sub*.cilium.io", "subdomain.cilium.io", True),
    ("sub*.cilium.io", "www.cilium.io", False), ("sub*.cilium.io", "blog.cilium.io", False),
    ("sub*.cilium.io", "cilium.io", False), ("sub*.cilium.io", "google.com", False),
    # 4. `**.cilium.io` matches all multilevel subdomains
    ("**.cilium.io", "app.cilium.io", True), ("**.cilium.io", "test.app.cilium.io", True),
    ("**.cilium.io", "cilium.io", False),
]

CODE_CASES = [
    ("*", "anything.example.com", True), ("**.", "a.b", True), ("***", "x", True),
    ("*.", "example.com", True),  # stars alone, with a trailing dot: every name
    ("***.cilium.io", "a.b.cilium.io", True),  # two or more leading stars and a dot
    ("a**b.example.com", "axxb.example.com", True),  # a run of stars is one star
    ("a**b.example.com", "ax.xb.example.com", False),
    ("Api.Example.COM.", "api.example.com", True),  # case and the trailing dot
    ("api.example.com", "API.EXAMPLE.COM.", True),
    ("api.example.com", "apixexample.com", False),  # "." is literal
    ("*.example.com", "under_score.example.com", True),
]


@pytest.mark.parametrize(("pattern", "name", "want"), CRD_EXAMPLES + CODE_CASES)
def test_pattern(pattern: str, name: str, want: bool) -> None:
    assert pattern_matches(pattern, name) is want


def test_every_name_and_validity() -> None:
    assert matches_every_name("*") and matches_every_name("**.") and not matches_every_name("*.a")
    assert valid_pattern("*.example.com") and valid_pattern("**.a-b_c.io.")
    assert not valid_pattern("a..b") and not valid_pattern("a b") and not valid_pattern("[a]")
    assert not valid_pattern("a" * 256) and not valid_pattern("")
