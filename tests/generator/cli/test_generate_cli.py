"""`flowpol generate` through the real entry point: exit codes, messages, options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from bad_input import append_cut_line, error_lines
from k8s_schema import validate_manifests

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"
SCEN = ROOT / "fixtures" / "scenarios"
HUBBLE_ASSETS = ROOT / "tests" / "recorder" / "assets" / "hubble"
INVENTORY_ASSETS = ROOT / "tests" / "generator" / "inventory" / "assets"


def flowpol(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def generate(out: Path, *inputs: str, snapshot: Path = DEMO / "cluster.json",
             extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return flowpol("generate", *inputs, "--snapshot", str(snapshot), "--out", str(out), *extra)


def docs_of(out: Path) -> list[dict]:
    docs = []
    for f in sorted(out.glob("*.yaml")):
        if f.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def test_demo_writes_valid_policies_kustomization_and_report(tmp_path: Path) -> None:
    run = generate(tmp_path, str(DEMO / "flows"))
    assert run.returncode == 0, run.stderr
    assert "verified:" in run.stdout and " 0 denied" in run.stdout
    kustomization = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["payments.yaml", "platform.yaml", "storefront.yaml"]
    docs = docs_of(tmp_path)
    assert validate_manifests(docs) == len(docs)  # raises on any schema problem
    names = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs}
    assert ("payments", "flowpol-default-deny") in names
    assert ("storefront", "flowpol-api") in names
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verification"]["denied_connections"] == 0
    assert report["inputs"]["kept"] > 0
    # replies and non-flow events are ignored, not bad input: they leave exit code 0
    assert report["inputs"]["ignored"]["reply"] > 0 and report["inputs"]["skipped"] == {}
    assert run.stderr == ""
    # evidence sits right above each rule
    text = (tmp_path / "storefront.yaml").read_text()
    assert "connection(s), 2026-11-20T" in text


def test_cli_output_is_byte_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert generate(a, str(DEMO / "flows")).returncode == 0
    assert generate(b, str(DEMO / "flows")).returncode == 0
    for f in sorted(a.iterdir()):
        assert f.read_bytes() == (b / f.name).read_bytes(), f.name


def test_bad_line_exits_2_after_writing_what_every_valid_record_gives(tmp_path: Path) -> None:
    flows = tmp_path / "hubble-node-a.jsonl"
    flows.write_text((DEMO / "flows" / "hubble-node-a.jsonl").read_text())
    other = str(DEMO / "flows" / "hubble-node-b.jsonl")
    clean = generate(tmp_path / "clean", str(flows), other)
    assert clean.returncode == 0, clean.stderr
    line = append_cut_line(flows)  # same path: the evidence comments name it

    run = generate(tmp_path / "out", str(flows), other)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert error_lines(run.stderr) == run.stderr.splitlines()  # one message, nothing else
    [error] = error_lines(run.stderr)
    assert error.startswith(f"flowpol: error: 1 bad input item(s) skipped (invalid-json 1) at "
                            f"{flows}:{line}: invalid-json (the line is cut off")
    assert (f"Output written from every valid record: the policies and reports in "
            f"{tmp_path / 'out'}; fix or remove the bad lines to get exit code 0.") in error
    assert f"{flows}:{line}: invalid-json" in run.stdout  # the summary lists it too
    # valid records kept: the same policies as without the bad line
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "clean").iterdir())
    for f in (tmp_path / "clean").glob("*.yaml"):
        assert (tmp_path / "out" / f.name).read_bytes() == f.read_bytes(), f.name
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    clean_report = json.loads((tmp_path / "clean" / "report.json").read_text())
    assert report["inputs"]["skipped"] == {"invalid-json": 1}
    assert report["inputs"]["kept"] == clean_report["inputs"]["kept"] > 0
    assert report["verification"] == clean_report["verification"]

    strict = generate(tmp_path / "strict", str(flows), other, extra=("--strict",))
    assert strict.returncode == 2
    assert strict.stderr.startswith(f"flowpol: error: {flows}:{line}: invalid-json")
    assert "--strict stops at the first bad item and writes nothing" in strict.stderr
    assert "Traceback" not in strict.stderr
    assert not (tmp_path / "strict").exists()


def test_bad_line_and_unreadable_input_make_one_message(tmp_path: Path) -> None:
    flows = tmp_path / "flows.jsonl"
    flows.write_text((DEMO / "flows" / "hubble-node-a.jsonl").read_text())
    line = append_cut_line(flows)
    empty = HUBBLE_ASSETS / "empty.json"
    run = generate(tmp_path / "out", str(flows), str(empty))
    assert run.returncode == 2, run.stderr
    [error] = error_lines(run.stderr)
    assert f"1 input(s) could not be read: {empty}: the file is empty" in error
    assert f"1 bad input item(s) skipped (invalid-json 1) at {flows}:{line}: invalid-json" in error
    assert ("Output written from every valid record of the readable inputs: the policies and "
            f"reports in {tmp_path / 'out'}; fix or leave out the unreadable input(s) and fix or "
            "remove the bad lines to get exit code 0.") in error
    assert (tmp_path / "out" / "payments.yaml").exists()


def test_unreadable_inputs_exit_2_after_writing_the_rest(tmp_path: Path) -> None:
    for asset, words in (("not-json.txt", "this is a text without any IP address, not a flow input"),
                         ("empty.json", "the file is empty")):
        out = tmp_path / asset
        run = generate(out, str(HUBBLE_ASSETS / asset), str(DEMO / "flows"))
        assert run.returncode == 2, run.stderr
        assert f"{HUBBLE_ASSETS / asset}: {words}" in run.stderr
        assert "Traceback" not in run.stderr
        assert (out / "payments.yaml").exists()  # the valid inputs' policies


def test_nothing_readable_is_an_error(tmp_path: Path) -> None:
    run = generate(tmp_path, str(HUBBLE_ASSETS / "not-json.txt"))
    assert run.returncode == 2
    assert "not-json.txt" in run.stderr and "Traceback" not in run.stderr


def test_unknown_format_option(tmp_path: Path) -> None:
    run = generate(tmp_path, str(DEMO / "flows"), extra=("--format", "netflow"))
    assert run.returncode == 2
    assert "unknown --format 'netflow'" in run.stderr


def test_bad_snapshots_exit_2_naming_the_file(tmp_path: Path) -> None:
    for asset, words in (("missing_node.json", "Node"), ("snake_case_to_dict.json", "snake_case"),
                         ("truncated.json", "truncated.json:")):
        run = generate(tmp_path / asset, str(DEMO / "flows"), snapshot=INVENTORY_ASSETS / asset)
        assert run.returncode == 2, (asset, run.stderr)
        assert asset in run.stderr and words in run.stderr, run.stderr
        assert "Traceback" not in run.stderr


def test_no_default_deny_puts_dns_into_every_workload_policy(tmp_path: Path) -> None:
    run = generate(tmp_path, str(DEMO / "flows"), extra=("--no-default-deny",))
    assert run.returncode == 0, run.stderr
    docs = docs_of(tmp_path)
    assert not [d for d in docs if d["metadata"]["name"] in ("flowpol-default-deny",
                                                             "flowpol-allow-dns")]
    for d in docs:
        egress = d["spec"].get("egress", [])
        dns = [r for r in egress if {"protocol": "UDP", "port": 53} in r.get("ports", [])]
        assert dns, d["metadata"]["name"]
        assert dns[0]["to"][0]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "kube-system"}


def test_namespace_scope_options(tmp_path: Path) -> None:
    only = generate(tmp_path / "only", str(DEMO / "flows"), extra=("--namespace", "payments"))
    assert only.returncode == 0, only.stderr
    assert sorted(p.name for p in (tmp_path / "only").glob("*.yaml")) == [
        "kustomization.yaml", "payments.yaml"]
    excl = generate(tmp_path / "excl", str(DEMO / "flows"), extra=("--exclude-namespace", "platform"))
    assert excl.returncode == 0
    assert not (tmp_path / "excl" / "platform.yaml").exists()
    both = generate(tmp_path / "both", str(DEMO / "flows"),
                    extra=("--namespace", "payments", "--exclude-namespace", "payments"))
    assert both.returncode == 2 and "both included and excluded" in both.stderr


def test_cidr_prefix_aggregates_external_peers(tmp_path: Path) -> None:
    scenario = SCEN / "external"
    exact = generate(tmp_path / "exact", str(scenario / "flows.jsonl"),
                     snapshot=scenario / "cluster.json")
    wide = generate(tmp_path / "wide", str(scenario / "flows.jsonl"),
                    snapshot=scenario / "cluster.json", extra=("--cidr-prefix", "24"))
    assert exact.returncode == 0 and wide.returncode == 0

    def cidrs(out: Path) -> set[str]:
        return {p["ipBlock"]["cidr"] for d in docs_of(out) for r in d["spec"].get("egress", [])
                for p in r["to"] if "ipBlock" in p}
    assert {"203.0.113.10/32", "203.0.113.77/32"} <= cidrs(tmp_path / "exact")
    assert "203.0.113.0/24" in cidrs(tmp_path / "wide")
    assert not {"203.0.113.10/32", "203.0.113.77/32"} & cidrs(tmp_path / "wide")
