"""What the Kubernetes API server refuses in names, addresses and CIDRs, mirrored for the
objects flowpol reads from files (snapshots, policy files). Each check returns a message
(what is wrong, and how to fix it) or None; callers add the file, line and field.

Names end up in paths we write (``<out>/<namespace>.yaml``), in YAML and in comments,
so a name the API server would refuse (``../x``, a newline, a NUL) must never get past
loading. Validating here, once, keeps every later use free of escaping.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

# k8s.io/apimachinery/pkg/util/validation/validation.go: dns1123LabelFmt,
# DNS1123LabelMaxLength = 63 (IsDNS1123Label, namespace names: ValidateNamespaceName)
# and dns1123SubdomainFmt, DNS1123SubdomainMaxLength = 253 (IsDNS1123Subdomain, the
# names of most objects: NameIsDNSSubdomain, e.g. ValidateNetworkPolicyName).
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(_LABEL)
_SUBDOMAIN_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*")
LABEL_MAX = 63
SUBDOMAIN_MAX = 253

def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def dns_label_problem(value: Any) -> str | None:
    """Why ``value`` is not an RFC 1123 label (a namespace name), or None."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > LABEL_MAX or not _LABEL_RE.fullmatch(value):
        return (f"{_shown(value)} is not a valid namespace name: at most {LABEL_MAX} lower-case "
                "letters, digits and '-', starting and ending with a letter or digit "
                "(RFC 1123 label, as the API server requires)")
    return None


def dns_subdomain_problem(value: Any) -> str | None:
    """Why ``value`` is not an RFC 1123 subdomain (an object name), or None."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > SUBDOMAIN_MAX or not _SUBDOMAIN_RE.fullmatch(value):
        return (f"{_shown(value)} is not a valid object name: at most {SUBDOMAIN_MAX} "
                "lower-case letters, digits, '-' and '.', each dot-separated part starting and "
                "ending with a letter or digit (RFC 1123 subdomain, as the API server requires)")
    return None


def ip_problem(value: Any) -> str | None:
    """Why ``value`` is not an IP address as the API server accepts one, or None.
    Python's ipaddress already refuses IPv4 octets with leading zeros (as the API
    server's strict validation does, KEP-4858); it accepts an IPv6 zone (``%eth0``),
    which Go's net.ParseIP never does."""
    if not isinstance(value, str):
        return f"must be an IP address string, not {value!r}"
    if "%" not in value:
        try:
            ipaddress.ip_address(value)
            return None
        except ValueError:
            pass
    return f"{_shown(value)} is not an IP address; write e.g. 10.0.0.1 or fd00::1"


def cidr_problem(value: Any) -> str | None:
    """Why ``value`` is not a CIDR as the API server accepts one (an ipBlock), or None.

    Refused as Kubernetes refuses them: an IPv6 zone (``fe80::1%eth0/64``: Go's
    net.ParseCIDR and netip.ParsePrefix refuse any zone), a prefix length with a leading
    zero, sign or space (``/08``: netip.ParsePrefix, "bad bits after slash"), IPv4 octets
    with leading zeros (``010.0.0.0/8``, CVE-2021-29923; KEP-4858). Python's ipaddress
    accepts the first two. Host bits are allowed, as net.ParseCIDR allows them."""
    if not isinstance(value, str) or "/" not in value:
        return f"{value!r} is not a CIDR; write address/prefix, e.g. 10.0.0.0/8 or 10.1.2.3/32"
    address, _, bits = value.partition("/")
    if "%" in address:
        return (f"{_shown(value)} has an IPv6 zone ('%...'), which a CIDR cannot have; "
                "remove it, e.g. fe80::/64")
    if not (bits.isascii() and bits.isdigit()) or (len(bits) > 1 and bits[0] == "0"):
        return (f"{_shown(value)} has a malformed prefix length {bits!r}; write it without "
                "leading zeros, e.g. 10.0.0.0/8")
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as e:
        return f"{_shown(value)} is not a valid CIDR ({e}); e.g. 10.0.0.0/8 or fd00::/64"
    return None


# k8s.io/apimachinery/pkg/util/validation: qualified names and label values.
_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_KEY_RE = re.compile(rf"(({_SUBDOMAIN_RE.pattern})/)?{_NAME}")
_VALUE_RE = re.compile(rf"({_NAME})?")


def label_key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not key:
        return f"label key {key!r} must be a non-empty string"
    prefix, _, name = key.rpartition("/")
    if len(name) > 63 or len(prefix) > 253 or not _KEY_RE.fullmatch(key):
        return (
            f"label key {key!r} is not a valid qualified name: an optional DNS-subdomain "
            "prefix and '/', then up to 63 characters [A-Za-z0-9-_.] starting and ending "
            "alphanumeric"
        )
    return None


def label_value_problem(key: str, value: object) -> str | None:
    if not isinstance(value, str):
        hint = f'write "{str(value).lower()}" in quotes' if isinstance(value, (bool, int, float)) else "use a string"
        return f"label value for {key!r} is {type(value).__name__} {value!r}, not a string; {hint}"
    if len(value) > 63 or not _VALUE_RE.fullmatch(value):
        return (
            f"label value {value!r} for {key!r} is invalid: up to 63 characters "
            "[A-Za-z0-9-_.], starting and ending alphanumeric (or empty)"
        )
    return None


# k8s.io/apimachinery validation.IsValidPortName (IANA_SVC_NAME, RFC 6335) and
# IsValidPortNum.
_PORT_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_LETTER_RE = re.compile("[a-z]")


def port_name_problem(value: str) -> str | None:
    if len(value) > 15 or not _PORT_NAME_RE.fullmatch(value) or "--" in value \
            or not _LETTER_RE.search(value):
        return (f"{_shown(value)} is not a valid port name: up to 15 lower-case letters, "
                "digits and '-', at least one letter, no leading, trailing or double '-'")
    return None


def port_number_problem(value: int) -> str | None:
    return None if 1 <= value <= 65535 else f"{value} is out of range 1-65535"
