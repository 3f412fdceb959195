"""Mutations of one input's bytes, each drawn from a seeded ``random.Random``.

A mutation is *additive* when it only adds junk around the valid records (lines of junk,
garbage at the end, a line of NULs, an over-long line, a bad first line, CRLF endings,
trailing garbage after a gzip stream, a second gzip member): every valid record of the
clean input must then still be kept, which the harness checks against the clean run's
count. Every other mutation (flips, truncation, wrong types, ...) only has to fail
cleanly.
"""

from __future__ import annotations

import gzip
import json
import random
import struct
from dataclasses import dataclass

import yaml

LINE_KINDS = ("hubble", "flowlog", "conntrack-L", "conntrack-E")
JSON_LINE_KINDS = ("hubble", "flowlog")
BINARY_KINDS = ("pcap", "pcapng")


@dataclass(frozen=True, slots=True)
class Mutated:
    data: bytes
    names: tuple[str, ...]   # the mutation classes applied, in order (what a failure is grouped by)
    detail: str              # with their parameters, for the reproducer
    additive: bool


# ----------------------------------------------------------------------------- palettes

JUNK_LINES = (
    b"not a flow", b"{", b"}", b"[]", b"null", b"42", b'"a string"', b"{}",
    b'{"flow": 5}', b'{"flow": {"IP": "x", "l4": []}}', b'{"kind": "flow"}',
    b'{"kind": 7, "count": "many"}', b"<html><body>502 Bad Gateway</body></html>",
    b"\xef\xbb\xbf{}", b"[NEW] tcp 6 120 src=999.1.1.1 dst=::: sport=-1 dport=99999",
    b"tcp      6 x SYN_SENT src= dst=", b"[1795743730.1]\t [DESTROY] udp", b"\t \t",
    b"conntrack v1.4.6 (conntrack-tools): 7 flow entries have been shown.",
)
BAD_UTF8 = (b"\xff\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc",
            b"\xed\xa0\x80")  # the last: an encoded UTF-16 surrogate
INTERESTING_BYTES = (0x00, 0xFF, 0x7F, 0x80, ord('"'), ord("{"), ord("\n"), ord("9"),
                     ord("-"), ord(":"), ord("\\"))
WRONG_VALUES = (0, -1, 2**64, -(2**63) - 1, 1e308, -0.0, 0.5, "", "x", "999.999.999.999",
                "-1", "1e999", [], {}, None, True, False, [1, "a", None], {"a": {"b": []}},
                "A" * 5000, "10.0.0.0/33", "::ffff:1.2.3.4", "2026-13-45T99:99:99Z")
ESCAPE = "/tmp/flowpol-fuzz-escape"  # an absolute path a run must never write (the test looks)
HOSTILE_STRINGS = (
    "a\nkind: Secret", "x\n---\napiVersion: v1\nkind: ClusterRoleBinding",
    "../../flowpol-escape", "../flowpol-escape", ESCAPE, "a/b", "x: y", "- a", "#c", "\u2028",
    "'\"", "{{}}", "*", "&a", "!!python/object/apply:os.system [\"true\"]", "\x00", "é",
    "a" * 300, "", " ", "\t", "\r", "null", "true", "0x1F", "1_000", ".", "..", "NaN",
)


def _junk_line(rng: random.Random) -> bytes:
    pick = rng.random()
    if pick < 0.6:
        return rng.choice(JUNK_LINES)
    if pick < 0.8:
        return bytes(rng.choice([b for b in range(256) if b != 0x0A]) for _ in range(rng.randint(1, 80)))
    return rng.choice(BAD_UTF8) * rng.randint(1, 20)


def _lines(data: bytes) -> list[bytes]:
    # Lines end at "\n" only, as the readers see them: bytes.splitlines also ends one at a
    # lone "\r", and junk put there would be glued to a record's line (not only added).
    lines = data.split(b"\n")
    out = [line + b"\n" for line in lines[:-1]]
    return out + [lines[-1]] if lines[-1] else out


def _boundary(rng: random.Random, lines: list[bytes], first: bool = False) -> int:
    return 0 if first else rng.randint(1, max(1, len(lines)))


# ----------------------------------------------------------------- additive mutations


def junk_lines(rng, data, kind):
    lines = _lines(data)
    n = rng.randint(1, 3)
    for _ in range(n):
        lines.insert(_boundary(rng, lines), _junk_line(rng) + b"\n")
    return b"".join(lines), f"{n} junk line(s) inserted"


def bad_first_line(rng, data, kind):
    line = _junk_line(rng)
    return line + b"\n" + data, f"bad first line {line[:40]!r}"


def append_garbage(rng, data, kind):
    tail = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return data + tail, f"{len(tail)} garbage byte(s) appended"


def nul_line(rng, data, kind):
    lines = _lines(data)
    n = rng.choice((1, 16, 512, 4096, 65536))
    at = _boundary(rng, lines, first=rng.random() < 0.5)
    lines.insert(at, b"\x00" * n + b"\n")
    return b"".join(lines), f"a line of {n} NULs at line {at + 1}"


def huge_line(rng, data, kind):
    lines = _lines(data)
    n = rng.choice((70_000, 1 << 20, 3 << 20))
    body = rng.choice((b"x" * n, b'{"flow": {"time": "' + b"9" * n + b'"}}', b"[" * n, b" " * n))
    at = _boundary(rng, lines, first=rng.random() < 0.3)
    lines.insert(at, body + b"\n")
    return b"".join(lines), f"a {len(body)}-byte line {body[:12]!r}... at line {at + 1}"


def bad_utf8_line(rng, data, kind):
    lines = _lines(data)
    at = _boundary(rng, lines)
    lines.insert(at, rng.choice(BAD_UTF8) * 3 + b"\n")
    return b"".join(lines), f"an invalid UTF-8 line at line {at + 1}"


def blank_lines(rng, data, kind):
    lines = _lines(data)
    at = _boundary(rng, lines)
    lines.insert(at, rng.choice((b"\n", b"\n\n\n", b"   \n")))
    return b"".join(lines), f"blank line(s) at line {at + 1}"


def crlf(rng, data, kind):
    return data.replace(b"\n", b"\r\n"), "CRLF line ends"


def pcap_trailing_garbage(rng, data, kind):
    # a capture cut off while writing: a partial record header, or one that claims
    # more bytes than follow
    choice = rng.randrange(3)
    if choice == 0:
        tail = bytes(rng.randrange(256) for _ in range(rng.randint(1, 15)))
    elif choice == 1:
        tail = struct.pack("<IIII", 1, 2, 1500, 1500) + b"\x00" * rng.randint(0, 100)
    else:
        tail = b"\x00" * rng.randint(16, 600)
    return data + tail, f"{len(tail)} trailing byte(s) (kind {choice})"


# -------------------------------------------------------------- destructive mutations


def bit_flips(rng, data, kind):
    if not data:
        return data, "no bytes to flip"
    b = bytearray(data)
    n = rng.randint(1, 8)
    at = sorted(rng.randrange(len(b)) for _ in range(n))
    for i in at:
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b), f"bits flipped at {at}"


def byte_sets(rng, data, kind):
    if not data:
        return data, "no bytes to set"
    b = bytearray(data)
    at = sorted(rng.randrange(len(b)) for _ in range(rng.randint(1, 8)))
    for i in at:
        b[i] = rng.choice(INTERESTING_BYTES)
    return bytes(b), f"bytes set at {at}"


def truncate(rng, data, kind):
    at = rng.randrange(len(data) + 1)
    return data[:at], f"truncated at byte {at} of {len(data)}"


def cut_range(rng, data, kind):
    a = rng.randrange(len(data) + 1)
    b = min(len(data), a + rng.randint(1, 200))
    return data[:a] + data[b:], f"bytes {a}..{b} cut"


def dup_range(rng, data, kind):
    a = rng.randrange(len(data) + 1)
    b = min(len(data), a + rng.randint(1, 200))
    return data[:b] + data[a:b] + data[b:], f"bytes {a}..{b} doubled"


def nul_block(rng, data, kind):
    # what a crash leaves in a file whose size was written before its data
    a = rng.randrange(len(data) + 1)
    b = min(len(data), a + rng.randint(1, 4096))
    return data[:a] + b"\x00" * (b - a) + data[b:], f"bytes {a}..{b} NUL"


def nul_prefix_glued(rng, data, kind):
    n = rng.choice((1, 8, 4096))
    return b"\x00" * n + data, f"{n} NULs glued to the first line"


def line_shuffle(rng, data, kind):
    lines = _lines(data)
    if len(lines) < 2:
        return data, "too few lines"
    op = rng.choice(("dup", "delete", "swap"))
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if op == "dup":
        lines.insert(j, lines[i] if lines[i].endswith(b"\n") else lines[i] + b"\n")
    elif op == "delete":
        del lines[i]
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines), f"line {op} {i + 1}/{j + 1}"


# -------------------------------------------------------------------- JSON-aware

def _paths(node, prefix=()):
    """Every (path) into a parsed JSON/YAML value, the root excluded."""
    out = []
    stack = [(node, prefix)]
    seen = set()  # YAML aliases can make a loop ("a: &a [*a]")
    while stack:
        n, p = stack.pop()
        if isinstance(n, (dict, list)):
            if id(n) in seen:
                continue
            seen.add(id(n))
        if isinstance(n, dict):
            for k, v in n.items():
                out.append(p + (k,))
                stack.append((v, p + (k,)))
        elif isinstance(n, list):
            for i, v in enumerate(n):
                out.append(p + (i,))
                stack.append((v, p + (i,)))
    return out


def _get_parent(doc, path):
    node = doc
    for k in path[:-1]:
        node = node[k]
    return node


DEEP = "\x00DEEP\x00"  # replaced in the serialised text by deep nesting (no recursion here)


def _mutate_tree(rng: random.Random, doc, op: str | None = None):
    """One structural mutation of a parsed document, in place; its description."""
    paths = _paths(doc)
    if not paths:
        return "empty document"
    path = rng.choice(paths)
    parent = _get_parent(doc, path)
    key = path[-1]
    op = op or rng.choice(("wrong_type", "wrong_type", "remove", "hostile_string", "deep"))
    shown = "/".join(str(p) for p in path)[-120:]
    if op == "remove":
        del parent[key]
    elif op == "hostile_string":
        value = rng.choice(HOSTILE_STRINGS)
        if isinstance(parent, dict) and rng.random() < 0.3:
            # a hostile key, e.g. a label name
            parent[value] = parent.pop(key)
            return f"key {shown} renamed to {value[:40]!r}"
        parent[key] = value
        return f"{shown} = {value[:40]!r}"
    elif op == "deep":
        parent[key] = DEEP
    else:
        value = rng.choice(WRONG_VALUES)
        parent[key] = value
        return f"{shown} = {repr(value)[:40]} ({type(value).__name__})"
    return f"{op} at {shown}"


def _deep_text(rng: random.Random) -> tuple[str, int]:
    depth = rng.choice((200, 1100, 20_000, 200_000))
    return "[" * depth + "]" * depth, depth


def json_tree(rng, data, kind):
    """A structural mutation of one JSON line (hubble, flow log) or of the whole document
    (snapshot)."""
    lines = _lines(data) if kind in JSON_LINE_KINDS else [data]
    candidates = [i for i, line in enumerate(lines) if line.strip().startswith(b"{")]
    if not candidates:
        return data, "no JSON object to mutate"
    i = rng.choice(candidates)
    try:
        doc = json.loads(lines[i])
    except (ValueError, RecursionError):  # an earlier mutation's deep nesting
        return data, "line is not JSON"
    what = _mutate_tree(rng, doc)
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    if DEEP in text or json.dumps(DEEP) in text:
        deep, depth = _deep_text(rng)
        text = text.replace(json.dumps(DEEP), deep)
        what += f" (nesting depth {depth})"
    end = b"\n" if lines[i].endswith(b"\n") else b""
    lines[i] = text.encode("utf-8", "surrogatepass") + end
    where = f"line {i + 1}: " if kind in JSON_LINE_KINDS else ""
    return b"".join(lines), where + what


def json_dup_key(rng, data, kind):
    """A key given twice in one object, the second time with another value (JSON allows
    it; RFC 8259 section 4 leaves the result to the parser)."""
    lines = _lines(data) if kind in JSON_LINE_KINDS else [data]
    i = rng.randrange(len(lines))
    line = lines[i]
    starts = [j for j in range(len(line)) if line[j:j + 2] == b'{"']
    if not starts:
        return data, "no object to duplicate a key in"
    j = rng.choice(starts)
    end = line.find(b'"', j + 2)
    key = line[j + 1:end + 1]
    value = json.dumps(rng.choice(WRONG_VALUES)).encode()
    lines[i] = line[:j + 1] + key + b":" + value + b"," + line[j + 1:]
    return b"".join(lines), f"line {i + 1}: key {key.decode(errors='replace')} given twice"


def rename_identifier(rng, data, kind):
    """One name (a namespace, a pod, a label key or value) renamed to a hostile string
    everywhere it occurs in a snapshot, so the objects still refer to each other and
    the name reaches the policies, their file names and the reports."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return data, "not JSON"
    names = set()
    for item in doc.get("items", []) if isinstance(doc, dict) else []:
        meta = item.get("metadata") if isinstance(item, dict) else None
        if not isinstance(meta, dict):
            continue
        for key in ("name", "namespace"):
            if isinstance(meta.get(key), str):
                names.add(meta[key])
        labels = meta.get("labels")
        if isinstance(labels, dict):
            names.update(k for k in labels if isinstance(k, str))
            names.update(v for v in labels.values() if isinstance(v, str))
    if not names:
        return data, "no names"
    old = rng.choice(sorted(names))
    new = rng.choice(HOSTILE_STRINGS)
    text = data.replace(json.dumps(old).encode(), json.dumps(new).encode())
    return text, f"{old!r} renamed to {new[:40]!r} everywhere"


# -------------------------------------------------------------------- YAML-aware

def yaml_tree(rng, data, kind):
    try:
        docs = [d for d in yaml.safe_load_all(data) if d is not None]
    except (yaml.YAMLError, RecursionError, ValueError):
        return data, "not YAML"
    if not docs:
        return data, "no documents"
    i = rng.randrange(len(docs))
    what = _mutate_tree(rng, docs[i])
    try:
        text = yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=rng.random() < 0.5)
    except (yaml.YAMLError, RecursionError):  # e.g. an alias loop an earlier mutation added
        return data, "not serialisable"
    if DEEP in text or repr(DEEP) in text:
        deep, depth = _deep_text(rng)
        text = "\n".join(deep if DEEP in line else line for line in text.split("\n"))
        text = text.replace(json.dumps(DEEP), deep)
        what += f" (nesting depth {depth})"
    return text.encode("utf-8", "surrogatepass"), f"document {i + 1}: {what}"


def yaml_dup_key(rng, data, kind):
    """A mapping key given twice (YAML 1.2 section 3.2.1.1 says keys are unique; PyYAML
    keeps the last)."""
    lines = _lines(data)
    keyed = [i for i, line in enumerate(lines)
             if b":" in line and not line.lstrip().startswith((b"#", b"-"))]
    if not keyed:
        return data, "no key line"
    i = rng.choice(keyed)
    line = lines[i]
    indent = line[:len(line) - len(line.lstrip())]
    key = line.lstrip().split(b":", 1)[0]
    value = rng.choice((b"5", b"[]", b"{}", b"null", b'"x"', b"{podSelector: {}}"))
    lines.insert(i + 1, indent + key + b": " + value + b"\n")
    return b"".join(lines), f"key {key.decode(errors='replace')!r} of line {i + 1} given twice"


YAML_SNIPPETS = (
    b"--- !!python/object/apply:os.system [\"true\"]\n",
    b"--- !!binary aGVsbG8=\n", b"--- !custom {a: 1}\n", b"--- 5\n", b"--- []\n",
    b"--- 'just a string'\n", b"---\nkind: NetworkPolicy\n", b"---\nkind: [a]\nspec: 5\n",
    b"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n",
    b"---\na: &a [*a]\n", b"---\n\tkind: tab\n", b"---\n%YAML 9.9\n---\n",
    b"---\nkey: @reserved\n",
)


def yaml_snippet(rng, data, kind):
    snippet = rng.choice(YAML_SNIPPETS)
    return data + b"\n" + snippet, f"document appended {snippet[:50]!r}"


def yaml_alias_bomb(rng, data, kind):
    # a "billion laughs" of modest size: 10 ** levels nodes once expanded
    levels = rng.choice((3, 5, 6))
    lines = [b"---", b"kind: NetworkPolicy", b"apiVersion: networking.k8s.io/v1",
             b"metadata: {name: bomb, namespace: web}", b"x0: &a0 [lol]"]
    for n in range(1, levels + 1):
        lines.append(b"x%d: &a%d [" % (n, n) + b", ".join([b"*a%d" % (n - 1)] * 10) + b"]")
    lines.append(b"spec: {podSelector: {matchLabels: {a: b}}, ingress: [{from: *a%d}]}" % levels)
    return data + b"\n" + b"\n".join(lines) + b"\n", f"alias bomb of 10**{levels} nodes appended"


# ---------------------------------------------------------------------- binary-aware

def _u32_offsets(data: bytes, kind: str) -> list[int]:
    """Offsets of the length and header fields of a pcap or pcapng file."""
    out = []
    if kind == "pcap" and len(data) >= 24:
        endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        out += [8, 12, 16, 20]
        at = 24
        while at + 16 <= len(data):
            out += [at, at + 8, at + 12]
            at += 16 + struct.unpack(endian + "I", data[at + 8:at + 12])[0]
    elif kind == "pcapng":
        at = 0
        endian = "<"
        while at + 12 <= len(data):
            if data[at:at + 4] == b"\x0a\x0d\x0d\x0a":
                endian = "<" if data[at + 8:at + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            length = struct.unpack(endian + "I", data[at + 4:at + 8])[0]
            out += [at, at + 4, at + 8, at + length - 4]
            if length < 12:
                break
            at += length
    return [o for o in out if 0 <= o <= len(data) - 4]


def binary_field(rng, data, kind):
    offsets = _u32_offsets(data, kind)
    if not offsets:
        return bit_flips(rng, data, kind)
    at = rng.choice(offsets)
    value = rng.choice((0, 1, 3, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 65536, 262145, 12))
    endian = rng.choice("<>")
    return data[:at] + struct.pack(endian + "I", value) + data[at + 4:], \
        f"u32 at {at} = {value:#x} ({'little' if endian == '<' else 'big'} endian)"


def pcapng_junk_block(rng, data, kind):
    # a block of an unknown type, well formed (pcapng section 3.1: readers skip blocks
    # they do not know); only its body is junk
    body = bytes(rng.randrange(256) for _ in range(4 * rng.randint(0, 8)))
    btype = rng.choice((0x0BAD, 0x80000001, 0x00000BAD))
    length = 12 + len(body)
    block = struct.pack("<II", btype, length) + body + struct.pack("<I", length)
    return data + block, f"an unknown block {btype:#x} of {length} bytes appended"


# --------------------------------------------------------------------------- gzip

def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def gzip_two_members(data: bytes) -> bytes:
    """Two gzip members, split at a line end (RFC 1952 section 2.2: a gzip file is a
    series of members; gunzip concatenates them)."""
    cut = data.find(b"\n", len(data) // 2)
    cut = len(data) // 2 if cut < 0 else cut + 1
    return gz(data[:cut]) + gz(data[cut:])


# -------------------------------------------------------------------------- tables

ADDITIVE = {
    "line": (junk_lines, bad_first_line, append_garbage, nul_line, huge_line, bad_utf8_line,
             blank_lines, crlf),
    "pcap": (pcap_trailing_garbage,),
    "pcapng": (pcap_trailing_garbage, pcapng_junk_block),
}
GENERIC = (bit_flips, byte_sets, truncate, cut_range, dup_range, nul_block)
DESTRUCTIVE = {
    "line": GENERIC + (nul_prefix_glued, line_shuffle),
    "json-line": (json_tree, json_tree, json_tree, json_dup_key),
    "binary": GENERIC + (binary_field, binary_field),
    "snapshot": GENERIC + (json_tree, json_tree, json_tree, json_tree, json_dup_key,
                           rename_identifier, rename_identifier, rename_identifier),
    "policy": GENERIC + (line_shuffle, yaml_tree, yaml_tree, yaml_tree, yaml_dup_key,
                         yaml_dup_key, yaml_snippet, yaml_snippet, yaml_alias_bomb),
}


def _family(kind: str) -> str:
    if kind in LINE_KINDS:
        return "line"
    return kind


def choose(rng: random.Random, kind: str) -> list:
    """The mutation functions for one run: one, sometimes two or three stacked; only
    additive ones (the record count is then checked) about a third of the time."""
    family = _family(kind)
    additive = ADDITIVE.get(family, ())
    destructive = list(DESTRUCTIVE.get("binary" if kind in BINARY_KINDS else family, GENERIC))
    if kind in JSON_LINE_KINDS:
        destructive += DESTRUCTIVE["json-line"]
    n = rng.choice((1, 1, 1, 2, 3))
    if additive and rng.random() < 0.4:
        return [rng.choice(additive) for _ in range(n)]
    return [rng.choice(destructive) for _ in range(n)]


def mutate(rng: random.Random, data: bytes, kind: str) -> Mutated:
    funcs = choose(rng, kind)
    details = []
    for f in funcs:
        data, what = f(rng, data, kind)
        details.append(f"{f.__name__}: {what}")
    additive = all(f in ADDITIVE.get(_family(kind), ()) for f in funcs)
    return Mutated(data, tuple(f.__name__ for f in funcs), "; ".join(details), additive)
