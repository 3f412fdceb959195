"""The one place output paths are built from names that came from the input.

A namespace name reaches a file name (`<ns>.yaml`, migrate's `<ns>/step-1-allow.yaml`);
an existing policy file's name reaches `proposed/<name>`. Such a name may only ever
select a file inside the output directory: names are checked here, and every path is
checked again, resolved, against the directory (`inside`).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from generator.inventory.apivalidation import dns_label_problem
from recorder.errors import InputError

# Cluster-scoped policies (CiliumClusterwideNetworkPolicy, ClusterNetworkPolicy) have no
# namespace: their file's name cannot be a namespace's (no "_" in a DNS label).
CLUSTER_FILE = "_cluster"
# Names flowpol gives its own files in the same directory. A namespace with such a
# name gets "_" in front ("_kustomization.yaml"): no namespace name holds "_", so
# that name is no other namespace's, and "_cluster" is no namespace's name either.
RESERVED_STEMS = frozenset({"kustomization"})


def checked_namespace(namespace: str) -> str:
    """``namespace`` if it can name a file or directory, else InputError. The loaders
    refuse such names already; this is the writing boundary's own check, by the same
    rule (an RFC 1123 label, as the API server requires of Namespace names)."""
    problem = dns_label_problem(namespace)
    if problem:
        raise InputError(f"namespace name {problem}; no file is named after it: correct it "
                         "in the snapshot or flow input")
    return namespace


def policy_file(namespace: str) -> str:
    """The file the policies of ``namespace`` ("" = cluster-scoped) are written to:
    ``<namespace>.yaml``, ``_cluster.yaml``, ``_kustomization.yaml`` for a namespace
    called kustomization (see RESERVED_STEMS)."""
    if not namespace:
        return f"{CLUSTER_FILE}.yaml"
    stem = checked_namespace(namespace)
    return f"_{stem}.yaml" if stem in RESERVED_STEMS else f"{stem}.yaml"


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refused (InputError) unless it names a file under ``root``:
    no absolute path, no '..', no empty or NUL-holding component, and, resolved with
    every symlink followed, still under ``root`` resolved."""
    parts = PurePosixPath(relative).parts
    if (not parts or relative.startswith("/") or os.path.isabs(relative) or "\\" in relative
            or any(p in ("", ".", "..") or "\0" in p for p in parts)
            or "\0" in relative):
        raise InputError(f"output file name {relative!r} would not be a plain path inside "
                         f"{root}; nothing was written under that name")
    path = root.joinpath(*parts)
    base = root.resolve()
    if not path.resolve().is_relative_to(base):
        raise InputError(f"output file {path} would resolve to {path.resolve()}, outside "
                         f"{base} (a symlink in the way?); nothing was written there")
    return path
