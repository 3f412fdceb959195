"""Reader for conntrack text: ``conntrack -L`` / ``-E`` output and /proc/net/nf_conntrack.

One reader for every layout the tool and the kernel print (docs/importers-conntrack-pcap.md):

* ``conntrack -L`` plain, ``-o extended`` and /proc/net/nf_conntrack (``ipv4     2 ``
  prefix), ``-o id`` (``id=N`` at the end), ``-o ktimestamp`` (``[start=...]``),
  ``-o xml`` (one ``<flow>`` per line);
* ``conntrack -E`` streams: ``[NEW]``/``[UPDATE]``/``[DESTROY]`` right-aligned, with
  or without the ``-o timestamp`` ``[epoch.usec]<TAB>`` prefix;
* the stderr trailer ``conntrack v1.4.x (conntrack-tools): N flow entries ...``.

The original tuple is the client's view: ``src`` is the client and ``dst:dport`` the
address it dialled (a ClusterIP and service port). The reply tuple's ``src:sport`` is
where the kernel really sent it (backend pod and targetPort after DNAT); it becomes
``xlated_ip``/``xlated_port`` when it differs. The reply's ``dst`` is ignored on
purpose: after masquerade it is a node IP, and the client is still the original src.

A connection counts once per file: an event stream contributes its ``[NEW]`` (or the
first event seen for a tuple whose NEW was missed), repeated dumps of a live
connection contribute the first line. Lines without a time (``-L``, ``-E`` without
``-o timestamp``) get ``options.dump_time`` or the file's mtime and
``time_known=False``; ``[start=...]``/``<when>`` stamps are read as UTC.

Speed: the usual ``-L`` line takes a fast path (one regular expression, ``_LIST_LINE``)
that yields exactly what the general token parser would; every other line, and any
line the fast path is unsure of, goes through the general parser.
"""

from __future__ import annotations

import calendar
import io
import ipaddress
import os
import re
import time
import xml.etree.ElementTree as ET
from itertools import islice
from typing import BinaryIO, Callable, Iterator

from recorder.listed import ListedRows, Row
from recorder.report import ReadReport
from recorder.schema import FlowRecord, LogRecord
from recorder.sources.base import ReadOptions, Source, numbered_lines
from recorder.sources.fastrecord import flow_record_maker
from recorder.timefmt import check_time_ns

_NS = 1_000_000_000

# conntrack's l4 protocol names -> the schema's protocol names.
_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP", "icmp": "ICMP", "icmpv6": "ICMPv6"}
_PROTOCOL_NUMBERS = {"tcp": "6", "udp": "17", "sctp": "132", "icmp": "1", "icmpv6": "58"}
# Other l4 names conntrack prints; valid lines, but nothing a NetworkPolicy can name.
_OTHER_PROTOCOLS = frozenset({"unknown", "udplite", "dccp", "gre"})
_PORTED = frozenset({"TCP", "UDP", "SCTP"})
# What precedes src= in every line of a connection of this protocol ("tcp      6 ...").
_MARKERS = {protocol: f"{name} " for name, protocol in _PROTOCOLS.items()}
_EVENTS = {"[NEW]": "new", "[UPDATE]": "update", "[DESTROY]": "destroy"}
_L3 = frozenset({"ipv4", "ipv6"})
# First token -> index of the protocol name, for lines without [time]/[EVENT] prefixes.
_HEAD_OFFSETS = {**{name: 0 for name in (*_PROTOCOLS, *_OTHER_PROTOCOLS)}, "ipv4": 2, "ipv6": 2}
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

# The fast path: ``conntrack -L`` / nf_conntrack lines of TCP, UDP and SCTP as conntrack
# and the kernel print them (optional ``ipv4     2 `` prefix, timeout, state, counters,
# zones, [UNREPLIED], flags), read with one match instead of the token walk in read().
# Tokens are separated by single spaces and nothing the pattern accepts can hold other
# whitespace (ports are digits, addresses must pass _ip()), so a matched line splits
# into exactly the tokens the general parser reads and the "key" group is the raw tuple
# text it keys on. Lines the pattern does not match, or whose ports or addresses are
# invalid, go to the general parser, which decides and words the skip; so does
# -o ktimestamp (only the flags may be bracketed after the reply tuple).
_LIST_LINE = re.compile(  # optional parts as "(?:...|)": cheaper than "(?:...)?" in sre
    r"(?:ipv[46] +[0-9]+ +|)(tcp +6|udp +17|sctp +132) (?:[0-9]+ |)(?:[A-Z_]+ |)"
    r"(?P<key>src=([^ ]+) dst=([^ ]+) sport=([0-9]+) dport=([0-9]+)) "
    r"(?:zone-orig=[0-9]+ |)(?:packets=[0-9]+ bytes=[0-9]+ |)(?:\[UNREPLIED\] |)"
    r"src=([^ ]+) dst=[0-9a-fA-F.:]+ sport=([0-9]+) "
    r"[^[]*(?:\[ASSURED\][^[]*|)(?:\[(?:HW_)?OFFLOAD\][^[]*|)\Z"
)
# The matched protocol group's first letter -> protocol (the pattern pairs name and number).
_LIST_PROTOCOLS = {name[0]: (_PROTOCOLS[name], _MARKERS[_PROTOCOLS[name]])
                   for name in ("tcp", "udp", "sctp")}

# Bounded memory: tuples remembered to count a connection once. An entry leaves on
# DESTROY; beyond this many live tuples the oldest is forgotten (the kernel's own
# default table size is of this order).
MAX_TRACKED_TUPLES = 65536
_ROWS_BATCH = 4096
_MAX_CACHE = 65536


# --------------------------------------------------------------------------- sniff


def _looks_like_line(text: str) -> bool:
    tokens = text.split(None, 8)
    i = 0
    if tokens and tokens[0].startswith("[") and tokens[0][1:2].isdigit():
        i += 1  # -o timestamp
    if i < len(tokens) and tokens[i] in _EVENTS:
        i += 1
    if i + 1 < len(tokens) and tokens[i] in _L3 and tokens[i + 1].isdigit():
        i += 2
    if i + 1 >= len(tokens):
        return False
    name = tokens[i]
    return (
        (name in _PROTOCOLS or name in _OTHER_PROTOCOLS)
        and tokens[i + 1].isdigit()
        and " src=" in text
        and " dst=" in text
    )


def sniff(head: bytes) -> bool:
    """True when one of the first lines is a conntrack line, XML flow or trailer."""
    text = head[:16384].decode("utf-8", "replace")
    if text.lstrip().startswith("<?xml") and "<conntrack>" in text:
        return True
    for n, line in enumerate(text.splitlines()):
        if n >= 40:
            break
        line = line.strip()
        if not line:
            continue
        if line.startswith("<flow") and '<meta direction="original">' in line:
            return True
        if line.startswith("conntrack v") and "(conntrack-tools)" in line:
            return True
        if _looks_like_line(line):
            return True
    return False


# --------------------------------------------------------------------------- helpers


class _BadLine(Exception):
    """A line that is not conntrack output; the message is the skip reason's detail."""


_ip_cache: dict[str, str] = {}


def _canonical_ip(text: str) -> str | None:
    if ":" not in text:  # IPv4 without the cost of ipaddress (cache misses are common)
        parts = text.split(".")
        if len(parts) == 4 and all(
            p.isdigit() and p.isascii() and len(p) <= 3 and int(p) <= 255
            and (p[0] != "0" or p == "0")
            for p in parts
        ):
            return text
        return None
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return None


def _ip(text: str) -> str:
    """Validated, canonical address (the kernel's /proc file prints IPv6 uncompressed).

    Hot path callers try ``_ip_cache.get`` first; invalid addresses are not cached.
    """
    ip = _ip_cache.get(text)
    if ip is None:
        ip = _canonical_ip(text)
        if ip is None:
            raise _BadLine(f"not an IP address: {text!r}")
        if len(_ip_cache) >= _MAX_CACHE:
            _ip_cache.clear()
        _ip_cache[text] = ip
    return ip


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _BadLine(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise _BadLine(f"port out of range: {value}")
    return value


# Service ports and targetPorts as text -> int (few, seen on every line; the client's
# ephemeral port is parsed instead).
_port_cache: dict[str, int] = {}


def _cached_port(text: str) -> int:
    """A port from its digits (fast path: callers try ``_port_cache`` first)."""
    value = int(text)
    if value > 65535:
        raise _BadLine(f"port out of range: {value}")
    if len(_port_cache) >= _MAX_CACHE:
        _port_cache.clear()
    _port_cache[text] = value
    return value


def _validated(dport: str, rsport: str, src: str, dst: str, rsrc: str
               ) -> tuple[int, int, str, str, str]:
    """The fast path's ports and addresses when one is not cached yet; _BadLine if bad."""
    return _cached_port(dport), _cached_port(rsport), _ip(src), _ip(dst), _ip(rsrc)


def _value(token: str, key: str) -> str:
    # Tuples are printed in a fixed order (src dst sport dport / type code id).
    if not token.startswith(key):
        raise _BadLine(f"expected {key}... but found {token!r}")
    return token[len(key):]


def _in_range(ns: int) -> int:
    try:
        return check_time_ns(ns)
    except ValueError as e:
        raise _BadLine(str(e)) from None


def _epoch_prefix(token: str) -> int:
    """``[1795743601.579947]`` (-o timestamp) -> ns."""
    if len(token) == 19 and token[11] == "." and token[18] == "]":
        digits = token[1:11] + token[12:18]  # conntrack prints %ld.%06ld
        if digits.isdigit():
            return _in_range(int(digits) * 1000)  # ten digits of seconds reach 2286
    if not token.endswith("]"):
        raise _BadLine(f"bad timestamp {token!r}")
    sec, _, frac = token[1:-1].partition(".")
    if not (sec.isdigit() and (not frac or frac.isdigit()) and len(frac) <= 9):
        raise _BadLine(f"bad timestamp {token!r}")
    return _in_range(int(sec) * _NS + (int(frac) * 10 ** (9 - len(frac)) if frac else 0))


_ctime_cache: dict[str, int] = {}


def _ctime(text: str) -> int:
    """``Fri Nov 27 01:41:40 2026`` (conntrack's ktimestamp, read as UTC) -> ns."""
    ns = _ctime_cache.get(text)
    if ns is None:
        parts = text.split()
        try:
            _wday, mon, day, hms, year = parts
            hh, mm, ss = hms.split(":")
            secs = calendar.timegm((int(year), _MONTHS[mon], int(day), int(hh), int(mm),
                                    int(ss), 0, 0, 0))
        except (ValueError, KeyError):
            raise _BadLine(f"bad time stamp {text!r}") from None
        ns = _in_range(secs * _NS)
        if len(_ctime_cache) >= _MAX_CACHE:
            _ctime_cache.clear()
        _ctime_cache[text] = ns
    return ns


def _bracketed(line: str, key: str, start: int) -> str | None:
    i = line.find(key, start)
    if i < 0:
        return None
    j = line.find("]", i)
    if j < 0:
        raise _BadLine(f"unterminated {key}...]")
    return line[i + len(key):j]


def _file_time(stream: BinaryIO, path: str) -> int:
    try:
        return os.fstat(stream.fileno()).st_mtime_ns
    except (OSError, AttributeError, io.UnsupportedOperation):
        pass
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return time.time_ns()


# --------------------------------------------------------------------------- parsing

# A parsed line: (event or None, protocol, src, dst, sport, dport, rsrc, rsport,
#                 first_seen or None, last_seen or None)
_Parsed = tuple[str | None, str, str, str, int | None, int | None, str, int | None,
                int | None, int | None]


def _parse_head(head: list[str]) -> tuple[int | None, str | None, int]:
    """Prefixes before the protocol name: (-o timestamp ns, event, index of the name)."""
    when: int | None = None
    event: str | None = None
    i = 0
    n = len(head)
    if n and head[0][0] == "[":
        event = _EVENTS.get(head[0])
        if event is None:
            when = _epoch_prefix(head[0])
            if n > 1:
                event = _EVENTS.get(head[1])
                i = 2 if event is not None else 1
            else:
                i = 1
        else:
            i = 1
    if n > i + 1 and head[i] in _L3:
        i += 2
    if n < i + 2:
        raise _BadLine("missing protocol name and number")
    return when, event, i


def _kernel_times(line: str, start_at: int) -> tuple[int | None, int | None]:
    """``-o ktimestamp``: ``[start=...]`` and, on DESTROY events, ``[stop=...]``."""
    start = _bracketed(line, "[start=", start_at)
    if not start:
        return None, None
    first = _ctime(start)
    stop = _bracketed(line, "[stop=", start_at)
    return first, (_ctime(stop) if stop else first)


def _parse_xml(line: str) -> _Parsed | str:
    end = line.rfind("</flow>")
    if end < 0:
        raise _BadLine("unterminated <flow> element")
    try:
        flow = ET.fromstring(line[: end + 7])
    except ET.ParseError as e:
        raise _BadLine(f"invalid XML: {e}") from None
    ev = flow.get("type")
    event = ev if ev in ("new", "update", "destroy") else None
    tuples: dict[str, tuple[str, str, str, str | None, str | None, str | None]] = {}
    first: int | None = None
    for meta in flow.iter("meta"):
        direction = meta.get("direction")
        if direction in ("original", "reply"):
            l3 = meta.find("layer3")
            l4 = meta.find("layer4")
            if l3 is None or l4 is None:
                raise _BadLine(f"<meta direction={direction!r}> without layer3/layer4")
            tuples[direction] = (
                l3.findtext("src") or "", l3.findtext("dst") or "",
                l4.get("protoname") or "", l4.findtext("sport"), l4.findtext("dport"),
                l4.findtext("type"),
            )
        elif direction == "independent":
            start = meta.findtext("timestamp/start")
            if start:
                if not start.isdigit():
                    raise _BadLine(f"bad timestamp start {start!r}")
                first = int(start)
    if "original" not in tuples or "reply" not in tuples:
        raise _BadLine("a <flow> needs an original and a reply <meta>")
    src, dst, name, sport_t, dport_t, type_t = tuples["original"]
    rsrc_t, rdst_t, _, rsport_t, _, _ = tuples["reply"]
    protocol = _PROTOCOLS.get(name)
    if protocol is None:
        if name:
            return name
        raise _BadLine("no protoname in <layer4>")
    when = flow.find("when")
    if first is None and when is not None:
        try:
            first = calendar.timegm(tuple(int(when.findtext(k) or "x") for k in (  # type: ignore[arg-type]
                "year", "month", "day", "hour", "min", "sec")) + (0, 0, 0)) * _NS
        except ValueError:
            raise _BadLine("bad <when> element") from None
        first = _in_range(first)
    if protocol in _PORTED:
        if sport_t is None or dport_t is None or rsport_t is None:
            raise _BadLine(f"{name} flow without ports")
        sport, dport, rsport = _port(sport_t), _port(dport_t), _port(rsport_t)
    else:
        sport, rsport = None, None
        dport = _port(type_t) if type_t is not None else None
    _ip(rdst_t)
    return (event, protocol, _ip(src), _ip(dst), sport, dport, _ip(rsrc_t), rsport,
            first, first)


# --------------------------------------------------------------------------- reader


def _forget_oldest_half(tracked: dict[object, str]) -> dict[object, str]:
    # Rebuilt rather than popped one by one: popping a dict's front leaves dummies
    # that make every later next(iter(d)) slower.
    return dict(islice(tracked.items(), len(tracked) // 2, None))


def _other_line(line: str, path: str, lineno: int, report: ReadReport) -> _Parsed | None:
    """XML flows, document structure, trailer and tool messages; anything else is junk."""
    if line.startswith("<flow"):
        return _xml_or_skip(line, path, lineno, report)
    if line.startswith("conntrack v") and line.endswith("have been shown."):
        report.ignore("conntrack-trailer")  # the stderr summary line
        return None
    if line.startswith("nfct_labelmap_new:"):
        report.ignore("conntrack-message")  # -o labels without connlabel.conf
        return None
    report.skip(path, lineno, "not-conntrack", _excerpt("not a conntrack entry", line))
    return None


def read(
    stream: BinaryIO, path: str, report: ReadReport, options: ReadOptions
) -> Iterator[LogRecord]:
    lines = kept = repeats = listed = 0
    dump_time: int | None = options.dump_time
    # Connections counted already, oldest first: the original tuple's text (from src=
    # to the end of dport=, identical in every event and dump line of a connection)
    # -> its protocol name and a space, as found before src=; ICMP uses a parsed tuple.
    tracked: dict[object, str] = {}
    # latin-1 never fails to decode: binary junk becomes a garbage line, counted and
    # skipped, instead of aborting the rest of the file.
    text = io.TextIOWrapper(stream, encoding="latin-1", newline=None)
    make = _make_record
    ip_cache = _ip_cache
    head_offsets = _HEAD_OFFSETS
    protocols = _PROTOCOLS
    ported = _PORTED
    max_tracked = MAX_TRACKED_TUPLES
    match_list_line = _LIST_LINE.match
    list_protocols = _LIST_PROTOCOLS
    port_cache = _port_cache
    make_listed = None
    # With listed_batches, the fast path's lines go out as ListedRows of this many.
    rows: list[Row] | None = [] if options.listed_batches else None
    protocol: str | None
    sport: int | None
    dport: int | None
    rsport: int | None
    try:
        for lineno, line in numbered_lines(text.readline, path, report, end=""):
            # -L lines start with a protocol or family name (lowercase), -E lines with
            # "[" or spaces: one comparison spares event streams the failing match.
            m = match_list_line(line) if line >= "a" else None
            if m is not None:
                name, key, a, b, sp, dp, r, rsp = m.groups()
                if key in tracked and tracked[key] in line[: m.start("key")]:
                    lines += 1
                    repeats += 1
                    continue
                try:
                    try:
                        dport = port_cache[dp]
                        rsport = port_cache[rsp]
                        src = ip_cache[a]
                        dst = ip_cache[b]
                        rsrc = ip_cache[r]
                    except KeyError:  # a port or address not seen before
                        dport, rsport, src, dst, rsrc = _validated(dp, rsp, a, b, r)
                    sport = int(sp)  # ephemeral: parsed, a cache would hold every port
                    if sport > 65535:
                        raise _BadLine("port out of range")
                except (_BadLine, ValueError):
                    pass  # the general parser below skips it, in its own words
                else:
                    listed += 1  # a line read and a record kept
                    protocol, tracked[key] = list_protocols[name[0]]
                    if len(tracked) > max_tracked:
                        tracked = _forget_oldest_half(tracked)
                    if make_listed is None:
                        if dump_time is None:
                            dump_time = _file_time(stream, path)
                        make_listed = _listed_record_maker(dump_time, path)
                    if rows is not None:
                        if rsrc != dst or rsport != dport:
                            rows.append((protocol, src, dst, dport, sport, rsrc, rsport))
                        else:
                            rows.append((protocol, src, dst, dport, sport, None, None))
                        if len(rows) >= _ROWS_BATCH:
                            done, rows = rows, []
                            yield ListedRows(dump_time, "conntrack", path, False, done)
                    elif rsrc != dst or rsport != dport:
                        yield make_listed(protocol, src, dst, dport, sport, rsrc, rsport)
                    else:
                        yield make_listed(protocol, src, dst, dport, sport, None, None)
                    continue
            i1 = line.find("src=")
            if i1 > 0:
                lines += 1
                # Repeats (UPDATE/DESTROY events, re-dumped entries) are recognised from
                # the raw tuple text before any parsing: they are most of an event stream.
                d = line.find(" dport=", i1)
                if d > 0:
                    e = line.find(" ", d + 7)
                    raw_key: object = line[i1:e] if e > 0 else line[i1:].rstrip()
                    marker = tracked.get(raw_key)  # type: ignore[arg-type]
                    if marker is not None:
                        head_text = line[:i1]
                        if marker in head_text:  # the same protocol ("tcp ", "udp ", ...)
                            if "[DESTROY]" in head_text:
                                del tracked[raw_key]
                            repeats += 1
                            continue
                else:
                    raw_key = None
                # The full parse: one split, fixed token positions, no regex. Token
                # order is fixed by conntrack: [prefixes] proto num [timeout] [state]
                # src dst sport dport [counters, flags] src dst sport dport [...].
                t = line.split()
                try:
                    k = head_offsets.get(t[0])
                    if k is None:
                        if t[0][0] != "[":
                            raise _BadLine("not a conntrack entry")
                        when, event, k = _parse_head(t)
                    else:
                        when = event = None
                    name = t[k]
                    protocol = protocols.get(name)
                    if protocol is None:
                        if name in _OTHER_PROTOCOLS or t[k + 1].isdigit():
                            report.ignore(f"conntrack-protocol:{name}")
                            continue
                        raise _BadLine(f"unknown protocol {name!r}")
                    if t[k + 1] != _PROTOCOL_NUMBERS[name]:
                        raise _BadLine(f"{name} with protocol number {t[k + 1]!r}")
                    # Timeout and state (digits, capitals), counters and flags are
                    # skipped by first letter: only src= starts with "s" there.
                    i = k + 2
                    while t[i][0] != "s":
                        i += 1
                    if i > k + 4 or t[i][:4] != "src=":
                        raise _BadLine("unexpected words before src=")
                    j = i + 4
                    while t[j][0] != "s":
                        j += 1
                    if protocol in ported:
                        if raw_key is None:
                            raise _BadLine("no dport= in the original tuple")
                        # int() and the address checks reject a token of the wrong kind.
                        sport = int(t[i + 2][6:])
                        dport = int(t[i + 3][6:])
                        rsport = int(t[j + 2][6:])
                        if not 0 <= (sport | dport | rsport) <= 65535:  # type: ignore[operator]
                            raise _BadLine("port out of range")
                        key = raw_key
                    else:  # ICMP: the request type stands in for the port
                        sport = None
                        dport = rsport = _port(_value(t[i + 2], "type="))
                        key = (protocol, t[i], t[i + 1], t[i + 2], t[i + 4])  # id= too
                    a = t[i][4:]
                    src = ip_cache.get(a) or _ip(a)
                    a = t[i + 1][4:]
                    dst = ip_cache.get(a) or _ip(a)
                    a = t[j]
                    if a[:4] != "src=":
                        raise _BadLine("no reply tuple")
                    a = a[4:]
                    rsrc = ip_cache.get(a) or _ip(a)
                    if when is not None:
                        first = last = when
                        time_known = True
                    elif "[start=" in line:  # -o ktimestamp
                        first, last = _kernel_times(line, i)  # type: ignore[assignment]
                        time_known = True
                    else:
                        time_known = False
                except (_BadLine, IndexError, ValueError) as err:
                    reason = str(err) if isinstance(err, _BadLine) else "malformed entry"
                    report.skip(path, lineno, "not-conntrack", _excerpt(reason, line.strip()))
                    continue
                if raw_key is None and key in tracked:  # ICMP repeats
                    if event == "destroy":
                        del tracked[key]
                    repeats += 1
                    continue
            else:
                line = line.strip()
                if not line:
                    continue
                lines += 1
                if line.startswith(("<?xml", "<conntrack>", "</conntrack>")):
                    lines -= 1  # XML document structure, not an item
                    continue
                parsed = _other_line(line, path, lineno, report)
                if parsed is None:
                    continue
                event, protocol, src, dst, sport, dport, rsrc, rsport, first, last = parsed
                time_known = first is not None
                key = (protocol, src, dst, sport, dport)
                if key in tracked:
                    if event == "destroy":
                        del tracked[key]
                    repeats += 1
                    continue

            if event != "destroy":
                tracked[key] = _MARKERS[protocol]
                if len(tracked) > max_tracked:
                    tracked = _forget_oldest_half(tracked)
            if not time_known:
                if dump_time is None:
                    dump_time = _file_time(stream, path)
                first = last = dump_time
            kept += 1
            if rows:  # the fast path's rows came first
                done, rows = rows, []
                yield ListedRows(dump_time, "conntrack", path, False, done)  # type: ignore[arg-type]
            if rsrc != dst or rsport != dport:
                yield make(first, last, protocol, src, dst, dport, sport, rsrc, rsport,
                           path, time_known)
            else:
                yield make(first, last, protocol, src, dst, dport, sport, None, None,
                           path, time_known)
        if rows:
            done, rows = rows, []
            yield ListedRows(dump_time, "conntrack", path, False, done)  # type: ignore[arg-type]
    except Exception:
        # What was read before the failure is still handed out, as records would have been.
        if rows:
            done, rows = rows, []
            yield ListedRows(dump_time, "conntrack", path, False, done)  # type: ignore[arg-type]
        raise
    finally:
        text.detach()
        if repeats:
            report.ignore("conntrack-repeat", repeats)  # UPDATE/DESTROY/re-dumps
        report.lines[path] += lines + listed
        report.kept[path] += kept + listed


_make_record = flow_record_maker(
    "first_seen", "last_seen", "protocol", "src_ip", "dst_ip", "dst_port", "src_port",
    "xlated_ip", "xlated_port", "input", "time_known", source_format="conntrack",
)


def _listed_record_maker(dump_time: int, path: str) -> Callable[..., FlowRecord]:
    """The fast path's record maker: one file's dump time and name built in."""
    return flow_record_maker(
        "protocol", "src_ip", "dst_ip", "dst_port", "src_port", "xlated_ip", "xlated_port",
        first_seen=dump_time, last_seen=dump_time, input=path, time_known=False,
        source_format="conntrack",
    )


def _excerpt(reason: str, line: str) -> str:
    return f"{reason}: {line if len(line) <= 120 else line[:117] + '...'}"


def _xml_or_skip(line: str, path: str, lineno: int, report: ReadReport) -> _Parsed | None:
    try:
        parsed = _parse_xml(line)
    except (_BadLine, ValueError) as e:
        report.skip(path, lineno, "not-conntrack", _excerpt(str(e), line))
        return None
    if type(parsed) is str:
        report.ignore(f"conntrack-protocol:{parsed}")
        return None
    return parsed  # type: ignore[return-value]


SOURCE = Source(
    name="conntrack",
    description="conntrack -L/-E text or XML, /proc/net/nf_conntrack",
    sniff=sniff,
    read=read,
)
