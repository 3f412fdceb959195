"""Policy files the API server would refuse, through `flowpol verify --policies`: exit 2
with the file and line (and the object where there is one), never a traceback.

One asset per failure mode under assets/hostile; the deeply nested files are built here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bad_input import refused

REPO = Path(__file__).resolve().parents[3]
ASSETS = Path(__file__).parent / "assets"
HOSTILE = ASSETS / "hostile"
SHOP = [str(ASSETS / "shop" / "flows.jsonl"), "--snapshot", str(ASSETS / "shop" / "cluster.json")]


def verify(*policies: Path) -> subprocess.CompletedProcess[str]:
    args = [a for p in policies for a in ("-p", str(p))]
    return subprocess.run([sys.executable, "-m", "generator.cli.main", "verify", *SHOP, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("asset, line, named", [
    ("duplicate_key.yaml", 12, ["the key 'ingress' appears twice in one mapping (first on line 11)"]),
    # Not YAML (a surrogate-pair escape), so read as JSON: the duplicate is found there too.
    ("duplicate_key_escaped.json", 9, ["the key 'ingress' appears twice in one object "
                                       "(first on line 8)"]),
    ("name_newline.yaml", 1, [r"NetworkPolicy 'api\n# injected': metadata.name",
                              "RFC 1123 subdomain"]),
    ("namespace_dotdot.yaml", 1, ["NetworkPolicy api: metadata.namespace '../../etc'",
                                  "RFC 1123 label"]),
    ("cidr_zone.yaml", 11, ["NetworkPolicy shop/api: spec.egress[0].to[0].ipBlock.cidr "
                            "'fe80::1%eth0/64' has an IPv6 zone"]),
    ("cidr_prefix_zero_padded.yaml", 11, ["ipBlock.cidr '10.0.0.0/08' has a malformed prefix "
                                          "length '08'"]),
    ("cidr_octet_leading_zero.yaml", 11, ["ipBlock.cidr '010.0.0.0/8' is not a valid CIDR"]),
    ("label_value_list.yaml", 8, ["spec.podSelector.matchLabels: label value for 'app' is "
                                  "list ['api'], not a string"]),
    ("metadata_labels_list.yaml", 1, ["NetworkPolicy api: metadata.labels must be a mapping"]),
    ("port_list.yaml", 10, ["spec.ingress[0].ports[0].port must be a number or a port name, "
                            "got [8080]"]),
    ("cilium_namespace_dotdot.yaml", 1, ["CiliumNetworkPolicy api: metadata.namespace "
                                         "'../kube-system' is not a valid namespace name"]),
    ("cluster_policy_name_nul.json", 1, [r"ClusterNetworkPolicy 'deny\x00all': metadata.name"]),
    ("alias_cycle.yaml", 2, ["NetworkPolicy api: lists and mappings nest more than 64 levels "
                             "deep (or contain themselves through a YAML alias)"]),
])
def test_policy_file_the_api_server_refuses_is_refused(asset: str, line: int,
                                                       named: list[str]) -> None:
    error = refused(verify(HOSTILE / asset))
    assert f"{HOSTILE / asset}:{line}: " in error
    for text in named:
        assert text in error


def test_the_duplicate_key_asset_is_otherwise_a_valid_policy(tmp_path: Path) -> None:
    """Either `ingress` alone is accepted: the refusal is the duplicate's, nothing else's."""
    text = (HOSTILE / "duplicate_key.yaml").read_text()
    for keep in ("  ingress: []\n", "  ingress:\n  - {}\n"):
        one = tmp_path / "one.yaml"
        one.write_text(text.replace("  ingress: []\n  ingress:\n  - {}\n", keep))
        assert yaml.safe_load(one.read_text())["spec"]["ingress"] in ([], [{}])
        run = verify(one)
        assert run.returncode in (0, 1) and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "10.1.2.3/8", "fd00::/64", "2001:db8::1/128"])
def test_cidrs_the_api_server_accepts_are_accepted(cidr: str, tmp_path: Path) -> None:
    text = (HOSTILE / "cidr_zone.yaml").read_text().replace("fe80::1%eth0/64", cidr)
    (tmp_path / "ok.yaml").write_text(text)
    run = verify(tmp_path / "ok.yaml")
    assert run.returncode in (0, 1) and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize("name, text, line", [
    # libyaml's composer recursed in C and killed the process (SIGSEGV).
    ("deep.yaml", "apiVersion: v1\nkind: List\nitems:\n- " + "[" * 60000 + "]" * 60000 + "\n", 4),
    ("deep.json", '{"apiVersion": "v1", "kind": "List",\n"items": ['
     + "[" * 60000 + "]" * 60000 + "]}\n", 2),
])
def test_deeply_nested_policy_file_is_refused(name: str, text: str, line: int,
                                              tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(text)
    error = refused(verify(path))
    assert f"{path}:{line}: lists and mappings nest here more than 512 levels deep" in error


def test_a_policy_nested_deeper_than_any_policy_is_refused(tmp_path: Path) -> None:
    """Within what the parser takes, but a kept object that later walks (YAML dumping
    for `diff`) would recurse through: a `status` (not read, kept) 100 levels deep."""
    text = (HOSTILE / "namespace_dotdot.yaml").read_text().replace("../../etc", "shop")
    text += "status: " + "[" * 100 + "]" * 100 + "\n"
    (tmp_path / "deep.yaml").write_text(text)
    error = refused(verify(tmp_path / "deep.yaml"))
    assert f"{tmp_path / 'deep.yaml'}:1: NetworkPolicy api: lists and mappings nest " in error
