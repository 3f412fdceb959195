"""Edits of policy files: the author's text kept where possible, and whatever path is
taken, the new text parses to exactly the edited objects."""

from __future__ import annotations

import json

import yaml

from generator.tighten.existing import PolicyFile, policy_objects, read_documents
from generator.tighten.yamledit import (
    APPEND, EDITED, REMOVE, REMOVE_KEY, REPLACE, REWRITTEN, SET, Edit, apply_edits, edit_file,
)
from generator.output.yamlout import Commented, strip_comments

POLICY = """\
# header comment stays
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: api
  namespace: shop
spec:
  podSelector:
    matchLabels:
      app: api
  policyTypes: [Ingress, Egress]
  ingress:
  # from web
  - from:
    - podSelector:
        matchLabels:
          app: web
    # the admin console
    - podSelector:
        matchLabels:
          app: admin
    ports:
    - port: 8080  # http
    - port: 9443
  # ssh, from anywhere
  - ports:
    - port: 22
      # (temporary)
  egress:
  - to:
    - ipBlock: {cidr: 203.0.113.10/32}
    ports: [{port: 443}]
"""


def _edit(text: str, edits: list[Edit], name: str = "p.yaml", is_json: bool = False,
          added: list[dict] = ()) -> tuple[str, str, dict]:
    f = PolicyFile(name, name, text, is_json)
    docs, _ = read_documents(text, name)
    [(locator, obj)] = list(policy_objects(docs))
    new = apply_edits(obj, edits)
    out, method = edit_file(f, {locator: (new, tuple(edits))}, list(added))
    parsed = [d for d in yaml.safe_load_all(out) if d is not None]
    assert strip_comments(new) in parsed or strip_comments(new) in parsed[0].get("items", [])
    return out, method, strip_comments(new)


def test_removing_items_takes_their_lines_and_the_comment_above_them() -> None:
    out, method, new = _edit(POLICY, [Edit(REMOVE, ("spec", "ingress", 0, "from", 1)),
                                      Edit(REMOVE, ("spec", "ingress", 0, "ports", 1)),
                                      Edit(REMOVE, ("spec", "ingress", 1))])
    assert method == EDITED
    assert out == POLICY.replace("""    # the admin console
    - podSelector:
        matchLabels:
          app: admin
""", "").replace("    - port: 9443\n", "").replace("""  # ssh, from anywhere
  - ports:
    - port: 22
      # (temporary)
""", "")
    assert new["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                       "ports": [{"port": 8080}]}]


def test_removing_a_whole_rule_list_takes_the_key() -> None:
    out, method, new = _edit(POLICY, [Edit(REMOVE_KEY, ("spec", "egress"))])
    assert method == EDITED and "egress" not in out and "ipBlock" not in out
    assert out.startswith("# header comment stays\n") and "# ssh, from anywhere" in out


def test_replacing_a_rule_keeps_the_comment_above_it() -> None:
    parts = ({"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
              "ports": [{"port": 8080}]},
             {"from": [{"podSelector": {"matchLabels": {"app": "admin"}}}],
              "ports": [{"port": 9443}]})
    out, method, _ = _edit(POLICY, [Edit(REPLACE, ("spec", "ingress", 0), parts)])
    assert method == EDITED
    assert "  # from web\n  - from:\n  - podSelector:" not in out
    lines = out.splitlines()
    i = lines.index("  # from web")
    assert lines[i + 1] == "  - from:" and lines[i + 2].startswith("    - podSelector:")


def test_appending_after_a_removed_last_item_is_an_insertion_not_a_rewrite() -> None:
    rule = Commented({"from": [{"ipBlock": {"cidr": "192.168.56.11/32"}}],
                      "ports": [{"protocol": "TCP", "port": 8080}]}, ("added: kubelet",))
    out, method, new = _edit(POLICY, [Edit(REMOVE, ("spec", "ingress", 1)),
                                      Edit(APPEND, ("spec", "ingress"), (rule,))])
    assert method == EDITED
    assert "  # added: kubelet\n  - from:\n    - ipBlock:\n        cidr: 192.168.56.11/32" in out
    assert "port: 22" not in out
    assert new["spec"]["ingress"][-1] == rule.value


def test_flow_style_falls_back_to_re_emitting_that_policy() -> None:
    out, method, new = _edit(POLICY, [Edit(REMOVE, ("spec", "egress", 0, "ports", 0))])
    assert method == REWRITTEN
    assert out.startswith("# header comment stays\n")
    assert new["spec"]["egress"][0]["ports"] == []


def test_setting_policy_types_re_emits_and_still_parses_back() -> None:
    text = POLICY.replace("  policyTypes: [Ingress, Egress]\n", "")
    out, method, new = _edit(text, [Edit(REMOVE_KEY, ("spec", "egress")),
                                    Edit(SET, ("spec", "policyTypes"), (["Ingress", "Egress"],))])
    assert method == REWRITTEN and new["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_windows_line_endings_are_kept() -> None:
    text = POLICY.replace("\n", "\r\n")
    out, method, _ = _edit(text, [Edit(REMOVE, ("spec", "ingress", 1))])
    assert method == EDITED and "\r\n" in out and "\n" not in out.replace("\r\n", "")


def test_items_of_a_list_document_are_edited_in_place() -> None:
    body = POLICY.split("\n", 1)[1]
    text = "apiVersion: v1\nkind: List\nitems:\n" + "".join(
        ("- " if i == 0 else "  ") + line + "\n" for i, line in enumerate(body.splitlines()))
    out, method, _ = _edit(text, [Edit(REMOVE, ("spec", "ingress", 1))])
    assert method == EDITED and "port: 22" not in out and out.startswith("apiVersion: v1\nkind: List")


def test_json_files_stay_json() -> None:
    obj = yaml.safe_load(POLICY)
    text = json.dumps(obj, indent=2) + "\n"
    out, method, new = _edit(text, [Edit(REMOVE, ("spec", "ingress", 1))], "p.json", True)
    assert method == REWRITTEN and json.loads(out) == new


def test_new_policies_are_appended_as_documents() -> None:
    added = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "flowpol-web", "namespace": "shop"},
             "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]}}
    out, method, _ = _edit(POLICY, [Edit(REMOVE, ("spec", "ingress", 1))], added=[added])
    assert method == EDITED
    assert list(yaml.safe_load_all(out))[-1] == added
    assert out.startswith(POLICY.splitlines()[0])


def test_apply_edits_uses_original_indices_at_every_depth() -> None:
    obj = {"spec": {"ingress": [{"from": [1, 2, 3], "ports": [1]}, {"from": [4]}, {"from": [5]}]}}
    new = apply_edits(obj, [Edit(REMOVE, ("spec", "ingress", 0, "from", 0)),
                            Edit(REMOVE, ("spec", "ingress", 1)),
                            Edit(REMOVE, ("spec", "ingress", 2, "from", 0)),
                            Edit(APPEND, ("spec", "ingress"), ({"from": [6]},))])
    assert new == {"spec": {"ingress": [{"from": [2, 3], "ports": [1]}, {"from": []},
                                        {"from": [6]}]}}
    assert obj["spec"]["ingress"][0]["from"] == [1, 2, 3]  # the original is untouched
