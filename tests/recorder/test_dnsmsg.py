"""The DNS answer reader, held to dnspython (an independent implementation) on
generated answers and on mutated ones; the captures' answers in test_pcap.py."""

from __future__ import annotations

import random
import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from recorder.schema import dns_name
from recorder.sources import dnsmsg
from recorder.sources.dnsmsg import Answer, parse_answer


def response(qname: str, qtype: str = "A", records: list[tuple[str, int, str, str]] = (),
             rcode: int = 0, flags: int = 0) -> bytes:
    query = dns.message.make_query(qname, qtype, id=99)
    msg = dns.message.make_response(query)
    msg.set_rcode(rcode)
    msg.flags |= flags
    for owner, ttl, rtype, rdata in records:
        msg.answer.append(dns.rrset.from_text(owner, ttl, "IN", rtype, rdata))
    return msg.to_wire()


def oracle(wire: bytes) -> tuple[str, tuple[str, ...], int] | str | None:
    """What the answer binds, read with dnspython and Cilium's rule (the chain from the
    question's name; the lowest TTL on it). None when dnspython cannot parse it."""
    try:
        msg = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - any failure of the oracle: no verdict
        return None
    if not msg.flags & dns.flags.QR:
        return dnsmsg.NOT_A_RESPONSE
    if msg.opcode() != 0:
        return dnsmsg.NOT_A_QUERY
    if msg.flags & dns.flags.TC:
        return dnsmsg.TRUNCATED
    if len(msg.question) != 1:
        return dnsmsg.MALFORMED
    if msg.rcode() == dns.rcode.NXDOMAIN:
        return dnsmsg.NXDOMAIN
    if msg.rcode() != 0:
        return dnsmsg.ERROR_RCODE
    qname = msg.question[0].name
    name = dns_name(qname.to_text(omit_final_dot=True))
    if name is None:
        return dnsmsg.BAD_NAME
    current, seen, addresses, ttl = qname, {qname}, [], None
    for _ in range(dnsmsg.MAX_CHAIN + 1):
        target = None
        for rrset in msg.answer:
            if rrset.name != current or rrset.rdclass != 1:
                continue
            if rrset.rdtype == dns.rdatatype.CNAME:
                target = target or rrset[0].target
            elif rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                addresses += [r.address for r in rrset]
            else:
                continue
            ttl = rrset.ttl if ttl is None else min(ttl, rrset.ttl)
        if target is None or target in seen:
            break
        seen.add(target)
        current = target
    if not addresses:
        return dnsmsg.NO_ADDRESS
    return name, tuple(sorted(set(addresses))), ttl


def verdict(result: Answer | str) -> tuple[str, tuple[str, ...], int] | str:
    if isinstance(result, str):
        return result
    return result.name, tuple(sorted(result.addresses)), result.ttl


def test_a_cname_chain_binds_the_name_asked_with_the_lowest_ttl() -> None:
    wire = response("WWW.Shop.Example.", "A", [
        ("WWW.Shop.Example.", 300, "CNAME", "shop.cdn.example."),
        ("shop.cdn.example.", 120, "CNAME", "edge7.cdn.example."),
        ("edge7.cdn.example.", 30, "A", "203.0.113.7"),
        ("edge7.cdn.example.", 30, "A", "203.0.113.8"),
        ("unrelated.example.", 10, "A", "198.51.100.1"),
    ])
    answer = parse_answer(wire)
    assert isinstance(answer, Answer)
    assert answer.name == "www.shop.example" and answer.raw_name == "WWW.Shop.Example"
    assert answer.addresses == ("203.0.113.7", "203.0.113.8") and answer.ttl == 30
    assert answer.stray == 1


@pytest.mark.parametrize("wire, reason", [
    (response("gone.example.", rcode=dns.rcode.NXDOMAIN), dnsmsg.NXDOMAIN),
    (response("flaky.example.", rcode=dns.rcode.SERVFAIL), dnsmsg.ERROR_RCODE),
    (response("big.example.", flags=dns.flags.TC), dnsmsg.TRUNCATED),
    (response("txt.example.", "TXT", [("txt.example.", 5, "TXT", '"hello"')]), dnsmsg.NO_ADDRESS),
    (dns.message.make_query("q.example.", "A").to_wire(), dnsmsg.NOT_A_RESPONSE),
    (response("bad\\032name.example.", "A", [("bad\\032name.example.", 5, "A", "1.2.3.4")]),
     dnsmsg.BAD_NAME),
    (b"\x00\x01\x81\x80", dnsmsg.MALFORMED),  # shorter than a header
    (response("a.example.")[:-2], dnsmsg.MALFORMED),  # the question cut off
])
def test_answers_that_bind_nothing_say_why(wire: bytes, reason: str) -> None:
    assert parse_answer(wire) == reason
    assert oracle(wire) in (reason, None)


def test_compression_loops_and_forward_pointers_are_malformed() -> None:
    wire = bytearray(response("loop.example.", "A", [("loop.example.", 5, "A", "1.2.3.4")]))
    wire[12:14] = b"\xc0\x0c"  # the question's name points at itself
    assert parse_answer(bytes(wire)) == dnsmsg.MALFORMED
    wire[12:14] = b"\xc0\x40"  # ... or forward
    assert parse_answer(bytes(wire)) == dnsmsg.MALFORMED


def test_a_cname_loop_ends_with_what_was_found() -> None:
    wire = response("a.example.", "A", [("a.example.", 60, "CNAME", "b.example."),
                                        ("b.example.", 60, "A", "203.0.113.1"),
                                        ("b.example.", 60, "CNAME", "a.example.")])
    assert verdict(parse_answer(wire)) == ("a.example", ("203.0.113.1",), 60)


def test_ttls_with_the_top_bit_set_read_as_zero() -> None:
    wire = bytearray(response("t.example.", "A", [("t.example.", 60, "A", "203.0.113.1")]))
    # the answer's TTL sits 10 bytes before its 4-byte address, at the end
    struct.pack_into("!I", wire, len(wire) - 10, 0x80000000)
    assert verdict(parse_answer(bytes(wire))) == ("t.example", ("203.0.113.1",), 0)


def _random_answer(rng: random.Random) -> bytes:
    labels = ["api", "Edge", "cdn", "x-1", "s3", "_svc", "EU", "node7"]

    def name() -> str:
        return ".".join(rng.choice(labels) for _ in range(rng.randint(1, 4))) + ".example."

    qname = name()
    records: list[tuple[str, int, str, str]] = []
    owner = qname
    chain = {qname.lower()}
    for _ in range(rng.randint(0, 3)):  # a chain of CNAMEs (one per owner: RFC 2181 10.1)
        target = name()
        if target.lower() in chain:
            break
        chain.add(target.lower())
        records.append((owner, rng.randint(0, 3600), "CNAME", target))
        owner = target
    for _ in range(rng.randint(0, 4)):
        if rng.random() < 0.7:
            records.append((owner, rng.randint(0, 3600), "A",
                            f"203.0.113.{rng.randint(1, 254)}"))
        else:
            records.append((owner, rng.randint(0, 3600), "AAAA",
                            f"2001:db8::{rng.randint(1, 0xffff):x}"))
    stray = name()
    if rng.random() < 0.3 and stray.lower() not in chain:
        records.append((stray, 5, "A", "198.51.100.1"))  # off the chain
    rng.shuffle(records)
    flags = dns.flags.TC if rng.random() < 0.05 else 0
    rcode = rng.choice([0] * 8 + [dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL])
    return response(qname, rng.choice(["A", "AAAA"]), records, rcode, flags)


def test_agrees_with_dnspython_on_generated_answers() -> None:
    rng = random.Random(12)
    for _ in range(600):
        wire = _random_answer(rng)
        assert verdict(parse_answer(wire)) == oracle(wire), wire.hex()


def test_mutated_answers_never_raise_and_agree_whenever_both_read_them() -> None:
    rng = random.Random(34)
    agreed = 0
    for _ in range(1500):
        wire = bytearray(_random_answer(rng))
        for _ in range(rng.randint(1, 3)):
            if not wire:
                break
            op = rng.random()
            if op < 0.5:
                wire[rng.randrange(len(wire))] = rng.randrange(256)
            elif op < 0.8:
                del wire[rng.randrange(len(wire)):]
            else:
                wire[rng.randrange(len(wire)):rng.randrange(len(wire))] = b"\xc0\x0c"
        ours = verdict(parse_answer(bytes(wire)))  # never raises
        theirs = oracle(bytes(wire))
        if isinstance(theirs, tuple) and isinstance(ours, tuple):
            assert ours == theirs, bytes(wire).hex()
            agreed += 1
    assert agreed > 100
