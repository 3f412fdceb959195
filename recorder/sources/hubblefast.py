"""The kept lines of a Hubble capture without parsing the whole line.

A line the byte tests keep (a new connection) costs ~7 us parsed: orjson builds every
object of the ~1.4 kB line, then the endpoints become EndpointHints. Yet a capture
repeats a few thousand endpoints and a few thousand tails endlessly; only the time,
the ports and the addresses change. So a line in the exact form Hubble prints is cut
into pieces at keys that cannot occur inside a JSON string (their quotes would be
escaped) and each piece is looked up by its bytes:

    {"flow":{HEAD,"l4":{"TCP":{PORTS,"flags":{"SYN":true}}},"source":SRC,
     "destination":DST,"Type":...REST...},"node_name":"n1"[,"time":"..."]}

* HEAD and PORTS are matched by ``_LINE`` with exact JSON (no escapes, no control
  characters, no leading zeros, only the characters a time, uuid, MAC and address
  can hold): the time, verdict, addresses, protocol and ports come from its groups.
* SRC, DST and the REST (everything after DST, without the wrapper's trailing time,
  which the record never uses: the flow's own time comes first) are each parsed by
  orjson the first time their bytes are seen, and cached.

Every piece is a complete JSON value on its own, and the line is their
concatenation, so the line is exactly as valid as its pieces; a piece cut in the
wrong place (a key inside a nested object) leaves an object open and fails to parse.
Whatever this path does not handle exactly like ``_Reader.from_object`` - another
field order, camelCase, a port of zero, other TCP flags, keys in REST that would
override HEAD or the endpoints, a reply, a socket trace, a UDP packet from port 53
without ``is_reply`` - returns None and the line takes the parsed path. A test holds both paths to the same answer
on every asset, every sample and on mutated lines.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import orjson

from recorder.schema import EndpointHints, FlowRecord, ServiceRef
from recorder.timefmt import parse_time

_PORT = rb"(0|[1-9][0-9]{0,4})"
_LINE = re.compile(
    rb'\{"flow":\{"time":"([0-9TZtz:.+-]++)",(?:"uuid":"[0-9a-fA-F-]*+",)?+'
    rb'"verdict":"([A-Z_]++)",'
    rb'(?:"ethernet":\{"source":"[0-9a-fA-F:]*+","destination":"[0-9a-fA-F:]*+"\},)?+'
    # IP in flow.proto's declaration order (protojson's): source, source_xlated (SNAT,
    # newer Cilium), destination, ipVersion, encrypted
    rb'"IP":\{"source":"([0-9a-fA-F.:]++)"(?:,"source_xlated":"[0-9a-fA-F.:]*+")?+,'
    rb'"destination":"([0-9a-fA-F.:]++)","ipVersion":"IPv[46]"(?:,"encrypted":true)?+\},'
    rb'"l4":\{"(?:(TCP)":\{"source_port":' + _PORT + rb',"destination_port":' + _PORT
    + rb',"flags":\{"SYN":true\}\}\}|(UDP|SCTP)":\{"source_port":' + _PORT
    + rb',"destination_port":' + _PORT + rb'\}\}),"source":'
)
_DESTINATION = b',"destination":'
_TYPE = b',"Type":"'
_WRAPPER_TIME = b',"time":"'
_TIME_TEXT = re.compile(rb"[0-9TZtz:.+-]*+")
# Keys of HEAD and the endpoints: REST must not set them again (the last one wins).
_SET_BEFORE_REST = frozenset({"time", "uuid", "verdict", "ethernet", "IP", "l4", "source",
                              "destination", "x"})
_CACHE_LIMIT = 20_000  # entries per table; a cluster has far fewer distinct pieces
_MISS = object()

# What REST says, for lines it does not send to the parsed path:
# (node, service, source names, destination names, is_reply absent)
_Rest = tuple[Any, Any, Any, Any, bool]


def _bounded_put(table: dict, key: Any, value: Any) -> None:
    if len(table) >= _CACHE_LIMIT:
        table.clear()
    table[key] = value


class FastLines:
    """``record(line)`` -> the FlowRecord of a kept line, or None for the parsed path.

    ``hints(endpoint, names)`` builds EndpointHints (raising ValueError, TypeError or
    AttributeError on a bad endpoint); ``strings`` interns text like the parsed path;
    ``new_record`` is the reader's FlowRecord maker."""

    def __init__(self, hints: Callable[[Any, Any], EndpointHints], strings: dict[str, str],
                 new_record: Callable[..., FlowRecord]) -> None:
        self._hints = hints
        self._strings = strings
        self._new_record = new_record
        self._rests: dict[bytes, _Rest | None] = {}
        self._ends: dict[tuple[bytes, Any], EndpointHints | None] = {}

    def record(self, raw: bytes) -> FlowRecord | None:
        m = _LINE.match(raw)
        if m is None:
            return None
        src_start = m.end()
        dst_at = raw.find(_DESTINATION, src_start)
        if dst_at < 0:
            return None
        dst_start = dst_at + len(_DESTINATION)
        rest_at = raw.find(_TYPE, dst_start)
        if rest_at < 0:
            return None
        rest = self._rest(raw, rest_at)
        if rest is None:
            return None
        node, service, src_names, dst_names, direction_unknown = rest
        src = self._end(raw[src_start:dst_at], src_names)
        dst = self._end(raw[dst_start:rest_at], dst_names)
        if src is None or dst is None:
            return None
        time_text, verdict, src_ip, dst_ip, tcp, tcp_sport, tcp_dport, proto, sport, dport = \
            m.groups()
        if tcp is not None:
            protocol, src_port, dst_port = "TCP", int(tcp_sport), int(tcp_dport)
        else:
            protocol, src_port, dst_port = proto.decode(), int(sport), int(dport)
            if direction_unknown and src_port == 53 and dst_port != 53:
                return None  # a DNS answer, as the parsed path infers
        if src_port > 65535 or dst_port > 65535:
            return None
        try:
            ns = parse_time(time_text.decode())
        except ValueError:
            return None
        strings = self._strings
        if len(strings) > 200_000:
            strings.clear()
        intern = strings.setdefault
        src_text = src_ip.decode()
        dst_text = dst_ip.decode()
        verdict_text = verdict.decode()
        return self._new_record(
            ns, ns, protocol, intern(src_text, src_text), intern(dst_text, dst_text),
            dst_port, src_port, node, src, dst, service, intern(verdict_text, verdict_text),
        )

    # ------------------------------------------------------------------ pieces

    def _end(self, piece: bytes, names: Any) -> EndpointHints | None:
        key = (piece, names)
        hit = self._ends.get(key, _MISS)
        if hit is not _MISS:
            return hit  # type: ignore[return-value]
        # Parsed again for each new (endpoint, names): rare, and holding the parsed
        # objects would cost more memory than the whole aggregate table.
        try:
            endpoint = orjson.loads(piece)
        except orjson.JSONDecodeError:
            endpoint = None
        hints = None
        if isinstance(endpoint, dict):
            try:
                hints = self._hints(endpoint, list(names) if names else None)
            except (ValueError, TypeError, AttributeError):
                hints = None  # the parsed path reports it
        _bounded_put(self._ends, key, hints)
        return hints

    def _rest(self, raw: bytes, start: int) -> _Rest | None:
        """REST of the line from ``start`` (``,"Type":...``), without a trailing
        wrapper time, parsed once per distinct bytes."""
        end = len(raw) - 1  # the newline
        if raw[-3:-1] == b'"}':
            at = raw.rfind(_WRAPPER_TIME, start)
            if at > 0 and _TIME_TEXT.fullmatch(raw, at + len(_WRAPPER_TIME), end - 2):
                end = at
                piece = raw[start:end] + b"}"
            else:
                piece = raw[start:end]
        else:
            piece = raw[start:end]
        hit = self._rests.get(piece, _MISS)
        if hit is _MISS:
            hit = _parse_rest(piece)
            if hit is not None:
                node, service, src_names, dst_names, unknown = hit
                if type(node) is str:
                    node = self._strings.setdefault(node, node)
                hit = (node, service, src_names, dst_names, unknown)
            _bounded_put(self._rests, piece, hit)
        return hit  # type: ignore[return-value]


def _parse_rest(piece: bytes) -> _Rest | None:
    """The fields of REST the record needs, or None when the parsed path must decide."""
    try:
        obj = orjson.loads(b'{"flow":{"x":0' + piece)
    except orjson.JSONDecodeError:
        return None
    flow = obj.get("flow") if isinstance(obj, dict) else None
    if not isinstance(flow, dict) or flow.get("x", None) != 0 or len(flow) < 2:
        return None  # REST set "flow" again at the wrapper level
    keys = set(flow)
    keys.discard("x")
    if keys & _SET_BEFORE_REST:
        return None
    get = flow.get
    # A reply is the parsed path's business. Without is_reply (Hubble before 1.10) the
    # direction is unknown: ``record`` leaves a UDP/SCTP packet from port 53 to it too
    # (a DNS answer it infers).
    is_reply = get("is_reply")
    if not (is_reply is False or is_reply is None) or "isReply" in flow \
            or get("reply") is True:
        return None
    if get("Type") == "SOCK":
        return None
    node = get("node_name") or get("nodeName")
    if node is None:
        node = obj.get("node_name") or obj.get("nodeName")
    if node is not None and type(node) is not str:
        node = None  # what the parsed path records for a node that is not text
    service = None
    svc = get("destination_service") or get("destinationService")
    if svc:
        if not isinstance(svc, dict) or not svc.get("name"):
            return None
        service = ServiceRef(str(svc.get("namespace", "")), str(svc["name"]))
    src_names = get("source_names") or get("sourceNames")
    dst_names = get("destination_names") or get("destinationNames")
    try:
        src_key = tuple(src_names) if src_names else ()
        dst_key = tuple(dst_names) if dst_names else ()
        hash((src_key, dst_key))
    except TypeError:
        return None
    return node, service, src_key, dst_key, is_reply is None
