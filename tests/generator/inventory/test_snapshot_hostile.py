"""Hostile and broken snapshots through the real CLI: every one is exit 2 with the file,
the line and the object named, never a traceback, and nothing is written outside --out.

One asset per failure mode under assets/hostile; the deeply nested ones are built here
(hundreds of kilobytes of brackets say less than the two lines that make them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bad_input import refused

REPO = Path(__file__).resolve().parents[3]
HOSTILE = Path(__file__).parent / "assets" / "hostile"
SHOP = REPO / "tests" / "generator" / "verify" / "assets" / "shop"
FLOWS = str(SHOP / "flows.jsonl")


def flowpol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def generate(snapshot: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return flowpol("generate", FLOWS, "--snapshot", str(snapshot), "--out", str(out))


@pytest.mark.parametrize("asset, line, named", [
    ("namespace_dotdot.yaml", 2, ["Pod '../../etc'/web-1", "metadata.namespace '../../etc' is "
                                  "not a valid namespace name"]),
    ("namespace_object_absolute.yaml", 2, ["Namespace '/etc/cron.d'", "RFC 1123 label"]),
    ("name_newline.yaml", 2, [r"Service shop/'api\nkind: Secret'", "RFC 1123 subdomain"]),
    ("name_nul.json", 2, [r"Pod shop/'web\x00x'", "not a valid object name"]),
    ("targetref_name_null.yaml", 1, ["EndpointSlice shop/api-abcde",
                                     "endpoints[0].targetRef.name is missing or null"]),
    ("targetref_name_mapping.yaml", 1, ["EndpointSlice shop/api-abcde",
                                        "endpoints[0].targetRef.name must be a string, not dict"]),
    ("node_address_not_ip.yaml", 1, ["Node node-a", "status.addresses[1].address "
                                     "'node-a.example' is not an IP address"]),
    ("node_podcidr_zone.yaml", 1, ["Node node-a", "spec.podCIDRs[0]", "has an IPv6 zone"]),
    ("pod_ip_leading_zeros.yaml", 2, ["Pod shop/web-1", "status.podIP '010.244.1.5' is not "
                                      "an IP address"]),
    ("kind_not_string.yaml", 4, ["item 1: kind must be a string, not ['Pod']"]),
    ("selector_values_mapping.yaml", 1, ["Deployment shop/web", "spec.selector."
                                         "matchExpressions[0].values must be strings"]),
    ("label_value_newline.yaml", 2, ["Pod shop/web-1", "metadata.labels: label value "
                                     "'web\\n# injected' for 'app' is invalid"]),
    ("endpointslice_port_out_of_range.yaml", 1, ["EndpointSlice shop/api-abcde",
                                                 "ports[0].port 70000 is out of range 1-65535"]),
    ("target_port_name_invalid.yaml", 1, ["Service shop/api", "spec.ports[0].targetPort "
                                          "'HTTP Port' is not a valid port name"]),
    ("webhook_service_namespace.yaml", 1, ["ValidatingWebhookConfiguration policy",
                                           "webhooks[0].clientConfig.service.namespace "
                                           "'../admission' is not a valid namespace name"]),
])
def test_bad_object_is_refused_with_file_line_and_object(asset: str, line: int,
                                                         named: list[str], tmp_path: Path) -> None:
    error = refused(generate(HOSTILE / asset, tmp_path / "out"))
    assert f"{HOSTILE / asset}:{line}: " in error
    for text in named:
        assert text in error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_complete_snapshot_with_one_hostile_namespace_writes_nothing_outside_out(
        tmp_path: Path) -> None:
    cluster = json.loads((SHOP / "cluster.json").read_text())
    pod = next(o for o in cluster["items"] if o["kind"] == "Pod"
               and o["metadata"]["namespace"] == "shop")
    pod["metadata"]["namespace"] = "../escaped"
    snapshot = tmp_path / "cluster.json"
    snapshot.write_text(json.dumps(cluster, indent=1))
    out = tmp_path / "a" / "out"
    error = refused(generate(snapshot, out))
    assert f"{snapshot}:" in error and f"Pod '../escaped'/{pod['metadata']['name']}" in error
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cluster.json"]
    # The same snapshot untouched is fine: the refusal is the namespace's, nothing else's.
    assert generate(SHOP / "cluster.json", tmp_path / "ok").returncode == 0


def test_migrate_refuses_the_same_names(tmp_path: Path) -> None:
    run = flowpol("migrate", FLOWS, "--snapshot", str(HOSTILE / "namespace_dotdot.yaml"),
                  "--out", str(tmp_path / "plan"))
    assert f"{HOSTILE / 'namespace_dotdot.yaml'}:2: Pod '../../etc'/web-1" in refused(run)


@pytest.mark.parametrize("name, text", [
    # libyaml's composer recursed in C and killed the process (SIGSEGV) at this depth.
    ("deep.yaml", "apiVersion: v1\nkind: List\nitems:\n- " + "[" * 60000 + "]" * 60000 + "\n"),
    # json raised RecursionError (exit 1, a traceback).
    ("deep.json", '{"apiVersion": "v1", "kind": "List",\n"items": ['
     + "[" * 60000 + "]" * 60000 + "]}\n"),
    # Indented block mappings: deep without a single bracket.
    ("deep_block.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n"
     + "".join(" " * i + f"k{i}:\n" for i in range(1, 700))),
])
def test_deeply_nested_document_is_refused(name: str, text: str, tmp_path: Path) -> None:
    snapshot = tmp_path / name
    snapshot.write_text(text)
    error = refused(generate(snapshot, tmp_path / "out"))
    assert f"{snapshot}:" in error and "nest here more than 512 levels deep" in error


def test_nesting_a_real_object_has_is_accepted(tmp_path: Path) -> None:
    """The bound must not refuse what clusters hold: a Pod with an annotation value 40
    levels deep loads (the shop snapshot plus it)."""
    cluster = json.loads((SHOP / "cluster.json").read_text())
    pod = next(o for o in cluster["items"] if o["kind"] == "Pod")
    pod["spec"]["x-deep"] = json.loads("[" * 40 + "]" * 40)
    snapshot = tmp_path / "cluster.yaml"
    snapshot.write_text(yaml.safe_dump(cluster, default_flow_style=False))
    run = generate(snapshot, tmp_path / "out")
    assert run.returncode == 0, run.stderr


def test_a_slice_with_pod_and_non_pod_endpoints_is_read(tmp_path: Path) -> None:
    """A slice may list a pod and an address without a Pod targetRef (a hand-managed
    endpoint): sorting them together crashed with a TypeError (exit 1)."""
    cluster = json.loads((SHOP / "cluster.json").read_text())
    api = next(o for o in cluster["items"] if o["kind"] == "EndpointSlice"
               and o["metadata"]["labels"].get("kubernetes.io/service-name") == "api")
    api["endpoints"].append({"addresses": ["10.244.9.9"], "conditions": {"ready": True}})
    snapshot = tmp_path / "cluster.json"
    snapshot.write_text(json.dumps(cluster, indent=1))
    run = generate(snapshot, tmp_path / "out")
    # The address without a pod is a backend like the pods: reached on the targetPort at
    # its own address, by an ipBlock, and the check judges it there (0 denied).
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert "0 denied" in run.stdout
    written = (tmp_path / "out" / "shop.yaml").read_text()
    assert "cidr: 10.244.9.9/32" in written


def test_a_snapshot_from_a_pipe_is_read(tmp_path: Path) -> None:
    """A snapshot is read once, so `--snapshot <(kubectl get ... -o json)` works (flow
    inputs, read more than once, are refused when they are pipes)."""
    import os
    import threading

    fifo = tmp_path / "cluster.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write((SHOP / "cluster.json").read_bytes())

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    run = generate(fifo, tmp_path / "out")
    writer.join(timeout=10)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "shop.yaml").is_file()
