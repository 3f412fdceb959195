"""Names for external addresses, attributed at the time of each connection: the
client's own answers first, then its namespace's, then anyone's; several names
reported as such; expired and never-resolved addresses kept apart."""

from __future__ import annotations

import json

import pytest

import k8s_objects as k
from generator.inventory.index import InventoryIndex
from generator.inventory.load import load_snapshot
from generator.resolve.identity import aggregate_edges, resolve
from generator.resolve.names import (
    BY_ANYONE, BY_CLIENT, BY_NAMESPACE, EXPIRED, GRACE_NS, NEVER_RESOLVED, attribute_names,
)
from recorder.schema import EndpointHints, FlowRecord, IpTimelineRecord, NameBinding

S = 10**9
T0 = 1_800_000_000 * S
WEB = ["10.244.1.5", "10.244.1.6"]  # shop/web
API = "10.244.1.7"  # shop/api
BATCH = "10.244.2.9"  # jobs/batch
GW, CDN = "203.0.113.10", "203.0.113.20"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> InventoryIndex:
    objs = k.base_cluster(namespaces=["shop", "jobs"])
    objs += k.deployment_with_pods("web", "shop", {"app": "web"}, WEB)
    objs += k.deployment_with_pods("api", "shop", {"app": "api"}, [API])
    objs += k.deployment_with_pods("batch", "jobs", {"app": "batch"}, [BATCH])
    path = tmp_path_factory.mktemp("names") / "cluster.json"
    path.write_text(json.dumps(k.kube_list(objs)))
    return InventoryIndex(load_snapshot([str(path)]).inventory)


def answer(t: float, client_ip: str, name: str, address: str, ttl: int = 30,
           last: float | None = None, **kw: object) -> NameBinding:
    return NameBinding(T0 + int(t * S), T0 + int((t if last is None else last) * S), client_ip,
                       name, address, ttl, **kw)  # type: ignore[arg-type]


def syn(t: float, client: str, address: str, last: float | None = None, count: int = 1,
        names: tuple[str, ...] = ()) -> FlowRecord:
    return FlowRecord(T0 + int(t * S), T0 + int((t if last is None else last) * S), "TCP",
                      client, address, 443, count=count, source_format="pcap", input="x",
                      dst=EndpointHints(names=names) if names else EndpointHints())


def names_of(records: list, index: InventoryIndex) -> list[tuple]:
    resolved = resolve(records, index)
    result = attribute_names(resolved.connections, records, index)
    return [(c.src_ip, c.dst_ip, c.first_seen, c.names) for c in result.connections
            if c.dst.kind == "external"]


def test_the_clients_own_answer_names_its_connection(index: InventoryIndex) -> None:
    records = [answer(0, WEB[0], "api.gw.example", GW), answer(1, WEB[1], "hooks.gw.example", GW),
               syn(2, WEB[0], GW), syn(3, WEB[1], GW)]
    assert [n[3] for n in names_of(records, index)] == [("api.gw.example",),
                                                        ("hooks.gw.example",)]


def test_else_the_namespace_then_anyone(index: InventoryIndex) -> None:
    records = [answer(0, BATCH, "batch.example", GW), answer(1, WEB[1], "web.example", GW),
               syn(2, API, GW),  # shop: web's answer, not batch's
               answer(3, WEB[0], "other.example", CDN), syn(4, BATCH, CDN)]  # anyone's
    resolved = resolve(records, index)
    result = attribute_names(resolved.connections, records, index)
    assert [c.names for c in result.connections] == [("web.example",), ("other.example",)]
    assert result.stats["connections-named-by-namespace"] == 1
    assert result.stats["connections-named-by-anyone"] == 1
    names, how = result.index.lookup(GW, T0 + 2 * S, API, "shop")
    assert (names, how) == (("web.example",), BY_NAMESPACE)
    assert result.index.lookup(GW, T0 + 2 * S, BATCH, "jobs") == (("batch.example",), BY_CLIENT)
    assert result.index.lookup(CDN, T0 + 4 * S, "10.9.9.9", None)[1] == BY_ANYONE


def test_several_names_for_one_address_are_all_reported(index: InventoryIndex) -> None:
    records = [answer(0, WEB[0], "a.example", CDN), answer(5, WEB[0], "b.example", CDN),
               syn(6, WEB[0], CDN)]
    resolved = resolve(records, index)
    result = attribute_names(resolved.connections, records, index)
    assert [c.names for c in result.connections] == [("a.example", "b.example")]
    assert result.stats["connections-with-several-names"] == 1
    assert result.index.lookup(CDN, T0 + 6 * S, WEB[0], "shop") == (
        ("b.example", "a.example"), BY_CLIENT)  # the latest answer first


def test_one_name_for_many_addresses(index: InventoryIndex) -> None:
    records = [answer(0, WEB[0], "api.example", GW), answer(0, WEB[0], "api.example", CDN),
               syn(1, WEB[0], GW), syn(2, WEB[0], CDN)]
    result_names = names_of(records, index)
    assert [(n[1], n[3]) for n in result_names] == [(GW, ("api.example",)),
                                                   (CDN, ("api.example",))]


def test_a_binding_holds_for_its_ttl_and_the_grace_period_only(index: InventoryIndex) -> None:
    grace = GRACE_NS / S
    records = [answer(10, WEB[0], "api.example", GW, ttl=30),
               syn(5, WEB[0], GW),  # before the answer
               syn(10 + 30 + grace, WEB[0], GW),  # the last moment it holds
               syn(10 + 30 + grace + 1, WEB[0], GW),  # expired
               syn(10 + 30 + grace + 2, WEB[0], "198.51.100.5")]  # never resolved
    resolved = resolve(records, index)
    result = attribute_names(resolved.connections, records, index)
    assert [c.names for c in result.connections] == [(), ("api.example",), (), ()]
    reasons = {a.address: a.unnamed_reason for a in result.addresses}
    assert reasons == {GW: EXPIRED, "198.51.100.5": NEVER_RESOLVED}
    by_names = {a.address: a.by_names for a in result.addresses}
    assert by_names[GW] == (((), 2), (("api.example",), 1))


def test_an_aggregated_binding_holds_from_its_first_to_its_last_answer(
        index: InventoryIndex) -> None:
    records = [answer(0, WEB[0], "api.example", GW, ttl=5, last=100), syn(80, WEB[0], GW)]
    assert names_of(records, index)[0][3] == ("api.example",)


def test_an_aggregate_spanning_a_name_change_is_split(index: InventoryIndex) -> None:
    records = [answer(0, WEB[0], "old.example", GW, ttl=10),
               answer(100, WEB[0], "new.example", GW, ttl=10),
               syn(1, WEB[0], GW, last=101, count=7)]
    resolved = resolve(records, index)
    result = attribute_names(resolved.connections, records, index)
    assert [c.names for c in result.connections] == [("old.example",), ("new.example",)]
    assert result.stats["aggregates-spanning-a-name-change"] == 1
    edges = aggregate_edges(result.connections)
    assert [(e.names, e.count) for e in edges] == [(("new.example",), 7), (("old.example",), 7)]


def test_the_sources_own_names_come_first_in_canonical_form(index: InventoryIndex) -> None:
    records = [answer(0, WEB[0], "answer.example", GW),
               syn(1, WEB[0], GW, names=("API.Proxy.example.", "bad name", "b.example"))]
    resolved = resolve(records, index)
    result = attribute_names(resolved.connections, records, index)
    assert [c.names for c in result.connections] == [("api.proxy.example", "b.example")]
    assert result.stats["connections-named-by-source"] == 1
    assert result.stats["names-refused"] == 1 and "'bad name'" in result.warnings[0]


def test_an_answers_client_namespace_comes_from_the_source_or_the_timeline(
        index: InventoryIndex) -> None:
    gone = "10.244.3.3"  # a pod of shop no longer in the snapshot: the recorder's timeline
    records = [IpTimelineRecord(gone, T0, T0 + 50 * S, "shop", "web-old"),
               answer(1, gone, "timeline.example", GW),
               answer(2, "10.244.9.9", "hinted.example", CDN,
                      client=EndpointHints(namespace="shop", pod="x")),
               syn(3, API, GW), syn(4, API, CDN)]
    assert [n[3] for n in names_of(records, index)] == [("timeline.example",),
                                                        ("hinted.example",)]
