"""The flow log: JSON Lines (gzip when the name ends in .gz), schema in docs/flow-schema.md.

Writing is streaming and atomic (temp file in the target's directory, fsync, rename),
and deterministic: sorted keys, no gzip timestamp or file name. Reading lives in
recorder/sources/flowlog.py; this module turns one parsed line into a record.
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import sys
import tempfile
from types import CodeType, FunctionType
from itertools import islice
from pathlib import Path
from typing import IO, Any, Callable, Iterable

import orjson

from recorder.errors import InputError, UsageError
from recorder.schema import (
    PROTOCOLS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    EndpointHints,
    FlowLogHeader,
    FlowRecord,
    IpTimelineRecord,
    LogRecord,
    NO_HINTS,
    NameBinding,
    ServiceRef,
    Workload,
    dns_name,
    dns_ttl,
)
from recorder.timefmt import format_time, parse_time

KINDS = ("header", "flow", "ip", "name")
RECORD_KINDS = ("flow", "ip", "name")
_SCHEMA_DOC = "docs/flow-schema.md"
_WRITE_BATCH = 2048


class RecordError(ValueError):
    """One flow-log line is not a valid record (message without path and line)."""


# ---------------------------------------------------------------------------- write


def _hints_to_dict(h: EndpointHints) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if h.namespace is not None:
        d["namespace"] = h.namespace
    if h.pod is not None:
        d["pod"] = h.pod
    if h.labels:
        d["labels"] = dict(h.labels)
    if h.workload is not None:
        d["workload"] = {"kind": h.workload.kind, "name": h.workload.name}
    if h.peer_kind is not None:
        d["peer_kind"] = h.peer_kind
    if h.names:
        d["names"] = list(h.names)
    return d


def _flow_to_dict(r: FlowRecord) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": "flow",
        "first_seen": format_time(r.first_seen),
        "last_seen": format_time(r.last_seen),
        "count": r.count,
        "protocol": r.protocol,
        "src_ip": r.src_ip,
        "dst_ip": r.dst_ip,
    }
    optional = (
        ("dst_port", r.dst_port),
        ("src_port", r.src_port),
        ("xlated_ip", r.xlated_ip),
        ("xlated_port", r.xlated_port),
        ("node", r.node),
        ("verdict", r.verdict),
    )
    for key, value in optional:
        if value is not None:
            d[key] = value
    if not r.src.is_empty():
        d["src"] = _hints_to_dict(r.src)
    if not r.dst.is_empty():
        d["dst"] = _hints_to_dict(r.dst)
    if r.service is not None:
        d["service"] = _service_to_dict(r.service)
    if r.source_format:
        d["source_format"] = r.source_format
    if r.input:
        d["input"] = r.input
    if r.inferred:
        d["inferred"] = True
    if not r.time_known:
        d["time_known"] = False
    return d


def _ip_to_dict(r: IpTimelineRecord) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": "ip",
        "ip": r.ip,
        "valid_from": format_time(r.valid_from),
        "namespace": r.namespace,
        "pod": r.pod,
    }
    if r.valid_to is not None:
        d["valid_to"] = format_time(r.valid_to)
    if r.labels:
        d["labels"] = dict(r.labels)
    if r.owner is not None:
        d["owner"] = {"kind": r.owner.kind, "name": r.owner.name}
    if r.node is not None:
        d["node"] = r.node
    if r.host_network:
        d["host_network"] = True
    return d


def _name_to_dict(r: NameBinding) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": "name",
        "first_seen": format_time(r.first_seen),
        "last_seen": format_time(r.last_seen),
        "count": r.count,
        "client_ip": r.client_ip,
        "name": r.name,
        "address": r.address,
        "ttl": r.ttl,
    }
    if r.node is not None:
        d["node"] = r.node
    if not r.client.is_empty():
        d["client"] = _hints_to_dict(r.client)
    if r.source_format:
        d["source_format"] = r.source_format
    if r.input:
        d["input"] = r.input
    return d


def header_to_json(h: FlowLogHeader) -> bytes:
    d: dict[str, Any] = {
        "kind": "header",
        "schema": h.schema,
        "version": h.version,
        "revision": h.revision,
        "created_by": h.created_by,
    }
    if h.node is not None:
        d["node"] = h.node
    return orjson.dumps(d, option=orjson.OPT_SORT_KEYS)


def record_to_json(rec: LogRecord) -> bytes:
    """One line of the flow log, without the newline. Deterministic: keys sorted,
    None and empty fields omitted."""
    if type(rec) is FlowRecord:
        return _ENCODER.flow(rec).encode()
    if isinstance(rec, IpTimelineRecord):
        return orjson.dumps(_ip_to_dict(rec), option=orjson.OPT_SORT_KEYS)
    if isinstance(rec, NameBinding):
        return orjson.dumps(_name_to_dict(rec), option=orjson.OPT_SORT_KEYS)
    raise TypeError(f"not a flow-log record: {type(rec).__name__}")


class _FlowEncoder:
    """``orjson.dumps(_flow_to_dict(r), option=OPT_SORT_KEYS)``, byte for byte (tests
    hold it to that), without the dict: a flow log of a busy node has hundreds of
    thousands of lines, and building a dict per line cost more than the rest of
    writing it. Each string and each endpoint or Service object is turned into JSON
    once (by orjson, so escaping is the same) and the pieces are joined in the sorted
    key order."""

    _LIMIT = 65536

    def __init__(self) -> None:
        self._texts: dict[object, str] = {}  # value -> its JSON text
        # id(hints or service) -> (the object, its JSON text): keyed by identity (their
        # hash is computed in Python); holding the object keeps its id from reuse.
        self._objects: dict[int, tuple[object, str]] = {}
        self._times: dict[int, str] = {}  # ns -> format_time(ns)
        # layout (see _shape) -> the code of its line functions
        self._codes: dict[tuple[Any, ...], CodeType] = {}
        # shape (see flow) -> (its line function, the objects of the ids in it)
        self._shapes: dict[tuple[Any, ...], tuple[Callable[..., str], object]] = {}

    def _text(self, value: object) -> str:
        text = self._texts.get(value)
        if text is None:
            text = orjson.dumps(value).decode()
            if len(self._texts) >= self._LIMIT:
                self._texts.clear()
            self._texts[value] = text
        return text

    def _object(self, obj: object, to_dict: Any) -> str:
        hit = self._objects.get(id(obj))
        if hit is None:
            hit = (obj, orjson.dumps(to_dict(obj), option=orjson.OPT_SORT_KEYS).decode())
            if len(self._objects) >= self._LIMIT:
                self._objects.clear()
            self._objects[id(obj)] = hit
        return hit[1]

    def _int(self, value: int) -> str:
        return str(value) if type(value) is int else self._text(value)

    def flow(self, r: FlowRecord) -> str:
        """A line function per shape (which fields are there, and the values of those
        that records of one input share), given the fields records differ in."""
        src, dst, service = r.src, r.dst, r.service
        shape = (id(src), id(dst), id(service), r.node, r.verdict, r.source_format, r.input,
                 r.inferred, r.time_known, r.dst_port is None, r.src_port is None,
                 r.xlated_ip is None, r.xlated_port is None)
        hit = self._shapes.get(shape)
        if hit is None:
            hit = self._shape(r)
            if len(self._shapes) >= self._LIMIT:
                self._shapes.clear()
            self._shapes[shape] = hit
        return hit[0](r.count, r.dst_ip, r.dst_port, r.first_seen, r.last_seen, r.protocol,
                      r.src_ip, r.src_port, r.xlated_ip, r.xlated_port)

    def filler(self, r: FlowRecord) -> Callable[..., str]:
        """``fill(count, dst_ip, dst_port, first_seen, last_seen, protocol, src_ip,
        src_port, xlated_ip, xlated_port)`` -> the line of the record of those fields
        and of ``r``'s shape."""
        return self._shape(r)[0]

    def _time(self, ns: int) -> str:
        text = format_time(ns)
        if len(self._times) >= self._LIMIT:
            self._times.clear()
        self._times[ns] = text
        return text

    def _shape(self, r: FlowRecord) -> tuple[Callable[..., str], object]:
        """The line function of ``r``'s shape, with the objects whose id() a shape holds
        (so that no other object takes their id while it is cached). Shapes are many
        (one per pair of endpoints a source names), their layouts few: the function's
        code is made once per layout and each shape's gets the JSON text of the values
        it fixes as globals (never pasted into the code)."""
        fixed: dict[str, str] = {}
        if r.dst is not NO_HINTS and not r.dst.is_empty():
            fixed["_dst"] = ',"dst":' + self._object(r.dst, _hints_to_dict)
        if r.input:
            fixed["_input"] = ',"input":' + self._text(r.input)
        if r.node is not None:
            fixed["_node"] = ',"node":' + self._text(r.node)
        if r.service is not None:
            fixed["_service"] = ',"service":' + self._object(r.service, _service_to_dict)
        if r.source_format:
            fixed["_source_format"] = ',"source_format":' + self._text(r.source_format)
        if r.src is not NO_HINTS and not r.src.is_empty():
            fixed["_src"] = ',"src":' + self._object(r.src, _hints_to_dict)
        if r.verdict is not None:
            fixed["_verdict"] = ',"verdict":' + self._text(r.verdict)
        layout = (tuple(fixed), bool(r.inferred), not r.time_known, r.dst_port is not None,
                  r.src_port is not None, r.xlated_ip is not None, r.xlated_port is not None)
        code = self._codes.get(layout)
        if code is None:
            code = self._codes[layout] = _line_code(*layout)
        namespace = {"_text": self._text, "_get": self._texts.get, "_tget": self._times.get,
                     "_time": self._time, **fixed}
        return FunctionType(code, namespace), (r.src, r.dst, r.service)


def _line_code(fixed: tuple[str, ...], inferred: bool, time_unknown: bool, dst_port: bool,
               src_port: bool, xlated_ip: bool, xlated_port: bool) -> CodeType:
    """The code of a line function (``_FlowEncoder.filler``) of this layout: one
    f-string in the flow log's key order, the values a shape fixes read from globals
    named in ``fixed``."""
    code: list[str] = []

    def lit(piece: str) -> None:  # this module's own JSON punctuation and key names
        code.append(piece.replace("{", "{{").replace("}", "}}"))

    def glob(name: str) -> None:
        if name in fixed:
            code.append("{" + name + "}")

    def number(name: str) -> None:
        code.append(f"{{({name} if type({name}) is int else _text({name}))}}")

    def text(name: str) -> None:
        code.append(f"{{(_get({name}) or _text({name}))}}")

    def time(name: str) -> None:
        code.append(f'"{{(_tget({name}) or _time({name}))}}"')

    lit('{"count":')
    number("count")
    glob("_dst")
    lit(',"dst_ip":')
    text("dst_ip")
    if dst_port:
        lit(',"dst_port":')
        number("dst_port")
    lit(',"first_seen":')
    time("first")
    if inferred:
        lit(',"inferred":true')
    glob("_input")
    lit(',"kind":"flow","last_seen":')
    time("last")
    glob("_node")
    lit(',"protocol":')
    text("protocol")
    glob("_service")
    glob("_source_format")
    glob("_src")
    lit(',"src_ip":')
    text("src_ip")
    if src_port:
        lit(',"src_port":')
        number("src_port")
    if time_unknown:
        lit(',"time_known":false')
    glob("_verdict")
    if xlated_ip:
        lit(',"xlated_ip":')
        text("xlated_ip")
    if xlated_port:
        lit(',"xlated_port":')
        number("xlated_port")
    lit("}")
    source = ("def fill(count, dst_ip, dst_port, first, last, protocol, src_ip, src_port,"
              " xlated_ip, xlated_port):\n    return f'" + "".join(code) + "'\n")
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - this module's pieces and names only
    return namespace["fill"].__code__  # type: ignore[no-any-return]


def _service_to_dict(s: ServiceRef) -> dict[str, Any]:
    return {"namespace": s.namespace, "name": s.name}


_ENCODER = _FlowEncoder()


def flow_filler(r: FlowRecord) -> Callable[..., str]:
    """The line function of ``r``'s shape (``_FlowEncoder.filler``): given a record's
    count, dst_ip, dst_port, first_seen, last_seen, protocol, src_ip, src_port,
    xlated_ip and xlated_port, ``record_to_json`` of it (as str) if it has that shape."""
    return _ENCODER.filler(r)


class EncodedLines:
    """Flow-log lines already encoded (str, without newlines), for ``write_flow_log``
    in place of records: what ``record_to_json`` gives for the records they stand for."""

    __slots__ = ("lines",)

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines


def _write_encoded(out: IO[bytes], header: FlowLogHeader, encoded: EncodedLines) -> int:
    out.write(header_to_json(header) + b"\n")
    n = 0
    lines = iter(encoded.lines)
    while True:
        batch = list(islice(lines, _WRITE_BATCH))
        if not batch:
            return n
        n += len(batch)
        batch.append("")
        out.write("\n".join(batch).encode())


def _write_lines(out: IO[bytes], header: FlowLogHeader,
                 records: Iterable[LogRecord] | EncodedLines) -> int:
    if type(records) is EncodedLines:
        return _write_encoded(out, header, records)
    out.write(header_to_json(header) + b"\n")
    n = 0
    batch: list[bytes] = []
    for rec in records:
        batch.append(record_to_json(rec))
        n += 1
        if len(batch) >= _WRITE_BATCH:
            batch.append(b"")
            out.write(b"\n".join(batch))
            batch.clear()
    if batch:
        batch.append(b"")
        out.write(b"\n".join(batch))
    return n


def write_flow_log(
    records: Iterable[LogRecord] | EncodedLines, path: str | Path,
    header: FlowLogHeader = FlowLogHeader()
) -> int:
    """Stream ``records`` into a flow log at ``path`` ("-" = stdout); returns how many.

    The file appears complete or not at all: a crash or an error while the records are
    produced leaves any previous file at ``path`` untouched.
    """
    if str(path) == "-":
        out = sys.stdout.buffer
        n = _write_lines(out, header, records)
        out.flush()
        return n
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise UsageError(
            f"{target}: cannot write the flow log: {e.strerror}; "
            "check that the directory exists and is writable"
        ) from None
    try:
        with os.fdopen(fd, "wb") as raw:
            if target.name.endswith(".gz"):
                # mtime=0 and no file name: the same records give the same bytes.
                with gzip.GzipFile(
                    filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0
                ) as gz:
                    n = _write_lines(gz, header, records)  # type: ignore[arg-type]
            else:
                n = _write_lines(raw, header, records)
            raw.flush()
            os.fsync(raw.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)
    return n


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- read


def check_header(obj: dict[str, Any], path: str, line: int) -> FlowLogHeader:
    """Validate a header line; a newer major version is fatal (we would misread it)."""
    schema = obj.get("schema", SCHEMA_NAME)
    if schema != SCHEMA_NAME:
        raise InputError(
            f"header names schema {schema!r}, not {SCHEMA_NAME!r}; "
            "this is not a flowpol flow log (use --format to pick the right reader)",
            path,
            line,
        )
    version = obj.get("version")
    if type(version) is not int or version < 1:
        raise InputError(
            f"header has no valid 'version' (got {version!r}); "
            f"a flow-log header needs an integer version (see {_SCHEMA_DOC})",
            path,
            line,
        )
    if version > SCHEMA_VERSION:
        raise InputError(
            f"flow log schema version {version} is newer than this flowpol understands "
            f"(version {SCHEMA_VERSION}); upgrade flowpol to read it",
            path,
            line,
        )
    node = obj.get("node")
    revision = obj.get("revision")
    return FlowLogHeader(
        schema=SCHEMA_NAME,
        version=version,
        created_by=str(obj.get("created_by", "")),
        node=node if isinstance(node, str) else None,
        # written since revision 2; a log without it is of revision 1
        revision=revision if type(revision) is int and revision >= 1 else 1,
    )


_valid_ips: dict[str, str] = {}
_hints_cache: dict[Any, EndpointHints] = {}
_CACHE_LIMIT = 65536


def _ip(obj: dict[str, Any], key: str, required: bool = True) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise RecordError(f"field {key!r} is missing; add the IP address")
        return None
    if type(v) is not str:
        raise RecordError(f"field {key!r} must be an IP address string, got {v!r}")
    known = _valid_ips.get(v)
    if known is not None:
        return known
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise RecordError(f"field {key!r} is not an IP address: {v!r}") from None
    if len(_valid_ips) >= _CACHE_LIMIT:
        _valid_ips.clear()
    _valid_ips[v] = v
    return v


def _port(obj: dict[str, Any], key: str) -> int | None:
    v = obj.get(key)
    if v is None:
        return None
    if type(v) is not int or not 0 <= v <= 65535:
        raise RecordError(f"field {key!r} must be a port number 0..65535, got {v!r}")
    return v


def _text(obj: dict[str, Any], key: str, required: bool = False) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise RecordError(f"field {key!r} is missing")
        return None
    if type(v) is not str:
        raise RecordError(f"field {key!r} must be a string, got {v!r}")
    return v


def _time(obj: dict[str, Any], key: str, required: bool = True) -> int | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise RecordError(
                f"field {key!r} is missing; write an RFC 3339 time like "
                "2024-01-02T03:04:05.000000000Z"
            )
        return None
    try:
        return parse_time(v)
    except ValueError:
        raise RecordError(
            f"field {key!r} is not an RFC 3339 time: {v!r}; "
            "write it like 2024-01-02T03:04:05.000000000Z"
        ) from None


def _labels(v: Any, key: str) -> tuple[tuple[str, str], ...]:
    if v is None:
        return ()
    if not isinstance(v, dict) or not all(type(x) is str for x in v.values()):
        raise RecordError(f"field {key!r} must be an object of string labels, got {v!r}")
    return tuple(sorted(v.items()))


def _workload(v: Any, key: str) -> Workload | None:
    if v is None:
        return None
    if not isinstance(v, dict) or type(v.get("kind")) is not str or type(v.get("name")) is not str:
        raise RecordError(f"field {key!r} must be {{\"kind\": ..., \"name\": ...}}, got {v!r}")
    return Workload(v["kind"], v["name"])


def _hints(obj: dict[str, Any], key: str) -> EndpointHints:
    v = obj.get(key)
    if v is None or v == {}:
        return NO_HINTS
    if not isinstance(v, dict):
        raise RecordError(f"field {key!r} must be an object, got {v!r}")
    names = v.get("names") or ()
    if not isinstance(names, (list, tuple)) or not all(type(n) is str for n in names):
        raise RecordError(f"field '{key}.names' must be a list of strings, got {names!r}")
    labels = _labels(v.get("labels"), f"{key}.labels")
    workload = _workload(v.get("workload"), f"{key}.workload")
    cache_key = (
        _text(v, "namespace"),
        _text(v, "pod"),
        labels,
        workload,
        _text(v, "peer_kind"),
        tuple(names),
    )
    hit = _hints_cache.get(cache_key)
    if hit is not None:
        return hit
    hints = EndpointHints(
        namespace=cache_key[0],
        pod=cache_key[1],
        labels=labels,
        workload=workload,
        peer_kind=cache_key[4],
        names=cache_key[5],
    )
    if len(_hints_cache) >= _CACHE_LIMIT:
        _hints_cache.clear()
    _hints_cache[cache_key] = hints
    return hints


def _flow(obj: dict[str, Any]) -> FlowRecord:
    protocol = obj.get("protocol")
    if protocol not in PROTOCOLS:
        raise RecordError(
            f"field 'protocol' must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
        )
    first = _time(obj, "first_seen")
    last = _time(obj, "last_seen", required=False)
    assert first is not None
    if last is None:
        last = first
    if last < first:
        raise RecordError("'last_seen' is before 'first_seen'; swap them or fix the times")
    count = obj.get("count", 1)
    if type(count) is not int or count < 1:
        raise RecordError(f"field 'count' must be a positive integer, got {count!r}")
    service = obj.get("service")
    if service is not None:
        if (
            not isinstance(service, dict)
            or type(service.get("namespace")) is not str
            or type(service.get("name")) is not str
        ):
            raise RecordError(
                f"field 'service' must be {{\"namespace\": ..., \"name\": ...}}, got {service!r}"
            )
        service = ServiceRef(service["namespace"], service["name"])
    inferred = obj.get("inferred", False)
    time_known = obj.get("time_known", True)
    if type(inferred) is not bool or type(time_known) is not bool:
        raise RecordError("fields 'inferred' and 'time_known' must be true or false")
    src_ip = _ip(obj, "src_ip")
    dst_ip = _ip(obj, "dst_ip")
    assert src_ip is not None and dst_ip is not None
    return FlowRecord(
        first_seen=first,
        last_seen=last,
        protocol=protocol,
        src_ip=src_ip,
        dst_ip=dst_ip,
        dst_port=_port(obj, "dst_port"),
        src_port=_port(obj, "src_port"),
        xlated_ip=_ip(obj, "xlated_ip", required=False),
        xlated_port=_port(obj, "xlated_port"),
        count=count,
        node=_text(obj, "node"),
        src=_hints(obj, "src"),
        dst=_hints(obj, "dst"),
        service=service,
        verdict=_text(obj, "verdict"),
        source_format=_text(obj, "source_format") or "",
        input=_text(obj, "input") or "",
        inferred=inferred,
        time_known=time_known,
    )


def _ip_record(obj: dict[str, Any]) -> IpTimelineRecord:
    valid_from = _time(obj, "valid_from")
    valid_to = _time(obj, "valid_to", required=False)
    assert valid_from is not None
    if valid_to is not None and valid_to < valid_from:
        raise RecordError("'valid_to' is before 'valid_from'; fix the times")
    host_network = obj.get("host_network", False)
    if type(host_network) is not bool:
        raise RecordError("field 'host_network' must be true or false")
    ip = _ip(obj, "ip")
    namespace = _text(obj, "namespace", required=True)
    pod = _text(obj, "pod", required=True)
    assert ip is not None and namespace is not None and pod is not None
    return IpTimelineRecord(
        ip=ip,
        valid_from=valid_from,
        valid_to=valid_to,
        namespace=namespace,
        pod=pod,
        labels=_labels(obj.get("labels"), "labels"),
        owner=_workload(obj.get("owner"), "owner"),
        node=_text(obj, "node"),
        host_network=host_network,
    )


def _name_record(obj: dict[str, Any]) -> NameBinding:
    first = _time(obj, "first_seen")
    last = _time(obj, "last_seen", required=False)
    assert first is not None
    if last is None:
        last = first
    if last < first:
        raise RecordError("'last_seen' is before 'first_seen'; swap them or fix the times")
    count = obj.get("count", 1)
    if type(count) is not int or count < 1:
        raise RecordError(f"field 'count' must be a positive integer, got {count!r}")
    ttl = obj.get("ttl")
    if type(ttl) is not int or ttl < 0:
        raise RecordError(f"field 'ttl' must be the answer's TTL in seconds (an integer "
                          f"0 or more), got {ttl!r}")
    raw_name = obj.get("name")
    name = dns_name(raw_name)
    if name is None:
        raise RecordError(f"field 'name' must be a DNS name (letters, digits, '-', '_' "
                          f"and dots), got {raw_name!r}")
    client_ip = _ip(obj, "client_ip")
    address = _ip(obj, "address")
    assert client_ip is not None and address is not None
    return NameBinding(
        first_seen=first,
        last_seen=last,
        client_ip=client_ip,
        name=name,
        address=address,
        ttl=dns_ttl(ttl),
        count=count,
        node=_text(obj, "node"),
        client=_hints(obj, "client"),
        source_format=_text(obj, "source_format") or "",
        input=_text(obj, "input") or "",
    )


def parse_record(obj: dict[str, Any]) -> LogRecord:
    """A parsed ``flow``, ``ip`` or ``name`` line -> record. Raises RecordError (no
    path/line)."""
    kind = obj.get("kind")
    if kind == "flow":
        return _flow(obj)
    if kind == "ip":
        return _ip_record(obj)
    if kind == "name":
        return _name_record(obj)
    raise RecordError(f"line kind {kind!r} is not a record; expected 'flow', 'ip' or 'name'")


def json_error_detail(raw: bytes, error: Exception) -> str:
    """Why a JSON line did not parse, in words a user can act on."""
    text = raw.strip(b"\r\n \t")
    if not text.startswith((b"{", b"[")):
        shown = text[:40].decode("utf-8", "replace")
        return f"not JSON: {shown!r}; the line was left out"
    # cut off: the parser ran out of line (JSONDecodeError.pos at its end), not stopped
    # at a byte no JSON has there, as in a "[NEW] tcp ..." line of conntrack -E
    stop = getattr(error, "pos", len(raw))
    if not text.endswith((b"}", b"]")) and stop >= len(raw.rstrip(b"\r\n \t")):
        return "the line is cut off (a truncated write?); it was left out"
    return f"not valid JSON ({error}); the line was left out"


def record_from_dict(obj: dict[str, Any], path: str, line: int) -> LogRecord:
    """Like ``parse_record``, with the error as an InputError naming path:line."""
    try:
        return parse_record(obj)
    except RecordError as e:
        raise InputError(f"{e} (see {_SCHEMA_DOC})", path, line) from None
