"""Evidence and header comments name inputs: a name holding a line break must stay
inside its comment (else `a\\n  - {}` in a file name is an allow-all rule)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "demo"
# Each would end a comment line in some reader: YAML 1.1's breaks, then the rest of
# Python's splitlines, then a bidi override a reviewer would be fooled by.
EVIL = "a\n  - {}\n  #"
OTHER_BREAKS = ("\r- {}", "\u2028- {}", "\u2029- {}", "\x85- {}", "\x0b- {}", "\x0c- {}",
                "\x1c- {}", "\x1e- {}", "\u202e- {}")


def flowpol(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def policies(out: Path) -> list[dict]:
    docs = []
    for f in sorted(out.glob("*.yaml")):
        if f.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d]
    return docs


def assert_one_line_comments(out: Path) -> None:
    for f in out.glob("*.yaml"):
        text = f.read_text(encoding="utf-8")
        # every line a comment, a document marker or YAML PyYAML reads as data; no
        # character anywhere that some reader takes for a line break
        assert text.splitlines() == text.split("\n")[:-1], f.name
        assert "\u202e" not in text


def test_file_name_with_line_breaks_stays_in_its_comment(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(DEMO / "flows" / "hubble-node-a.jsonl", src / f"{EVIL}.jsonl")
    shutil.copy(DEMO / "flows" / "hubble-node-b.jsonl", src / "b.jsonl")
    clean = flowpol("generate", str(DEMO / "flows"), "-s", str(DEMO / "cluster.json"),
                    "--out", str(tmp_path / "clean"))
    run = flowpol("generate", str(src), "-s", str(DEMO / "cluster.json"),
                  "--out", str(tmp_path / "evil"))
    assert clean.returncode == 0, clean.stderr
    assert run.returncode == 0, run.stderr
    assert policies(tmp_path / "evil") == policies(tmp_path / "clean")
    text = (tmp_path / "evil" / "storefront.yaml").read_text(encoding="utf-8")
    assert "a\\n  - {}\\n  #.jsonl" in text  # named, escaped
    assert_one_line_comments(tmp_path / "evil")


def test_flow_log_input_field_with_line_breaks_stays_in_its_comment(tmp_path: Path) -> None:
    flowlog = tmp_path / "flows.jsonl"
    made = flowpol("import", str(DEMO / "flows"), "--out", str(flowlog))
    assert made.returncode == 0, made.stderr
    lines = flowlog.read_text(encoding="utf-8").splitlines()
    evil_lines = []
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if "input" in rec:
            breaks = OTHER_BREAKS[i % len(OTHER_BREAKS)]
            rec["input"] = f"{EVIL}{breaks}\n- {{}}"
        evil_lines.append(json.dumps(rec))
    evil = tmp_path / "evil.jsonl"
    evil.write_text("\n".join(evil_lines) + "\n", encoding="utf-8")
    clean = flowpol("generate", str(flowlog), "-s", str(DEMO / "cluster.json"),
                    "--out", str(tmp_path / "clean"))
    run = flowpol("generate", str(evil), "-s", str(DEMO / "cluster.json"),
                  "--out", str(tmp_path / "evil"))
    assert clean.returncode == 0, clean.stderr
    assert run.returncode == 0, run.stderr
    got = policies(tmp_path / "evil")
    assert got == policies(tmp_path / "clean")
    assert not any(rule in ({}, None) for d in got
                   for rule in d["spec"].get("ingress", []) + d["spec"].get("egress", []))
    text = (tmp_path / "evil" / "storefront.yaml").read_text(encoding="utf-8")
    assert "a\\n  - {}\\n  #" in text  # named, escaped
    assert_one_line_comments(tmp_path / "evil")
