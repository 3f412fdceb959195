"""A directory a flowpol command writes and owns: `generate`, `diff` and `migrate --out`.

What the command owns is listed in a manifest in the directory (MANIFEST: the command
and, per file, the SHA-256 of what it wrote). A later run:

- refuses a non-empty directory without a manifest (the user's own), or with another
  command's (diff never writes into generate's output: two sets of the same policies
  in one directory make `verify --policies DIR` fail with "defined twice");
- refuses to replace or delete a file the user changed since (its hash differs), and
  to overwrite a file it did not write; the user's other files are left alone;
- replaces its own files and deletes those it no longer writes;
- holds an exclusive flock(2) on the directory while it works, so two runs into one
  directory follow each other instead of mixing their files;
- reads every file back and compares it with what it meant to write (``read_back``).

An interrupted run leaves the manifest listing both the old and the new hash of each
file it was replacing, so that the next run still recognises all of them as its own.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Iterator, Mapping

from generator.output.files import atomic_write, note_written
from generator.output.paths import inside
from recorder.errors import UsageError

MANIFEST = ".flowpol-output.json"  # hidden: directory inputs skip it (recorder.sources)
# Earlier releases marked migrate's directory and diff's proposed/ with these files.
_LEGACY_MARKERS = (".flowpol-migrate", "proposed/.flowpol-proposed")
_COMMANDS = ("generate", "diff", "migrate")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ReadBackError(UsageError):
    """A file on disk is not what the command wrote (exit 2): an internal error or
    something else writing the directory at the same time."""


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Blocks while another flowpol run writes here; released when fd closes.
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot be read ({e}); remove the directory or give "
                         "another --out") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    files = data.get("files") if isinstance(data, dict) else None
    if (not isinstance(data, dict) or not isinstance(data.get("command"), str)
            or not isinstance(files, dict)
            or not all(isinstance(k, str) and isinstance(v, list)
                       and all(isinstance(h, str) for h in v) for k, v in files.items())):
        raise UsageError(f"{path}: not a manifest flowpol wrote (damaged or edited); remove "
                         "the directory or give another --out")
    return data


def _manifest_text(command: str, files: Mapping[str, list[str]]) -> str:
    return json.dumps({"command": command, "files": {k: sorted(set(v))
                                                     for k, v in sorted(files.items())},
                       "note": f"files flowpol {command} wrote here, with their SHA-256; "
                               "it replaces only these, and not once you change one"},
                      indent=2, sort_keys=True) + "\n"


def _entries(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


def _current_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return "a directory"
    except OSError as e:
        raise UsageError(f"{path}: cannot be read to check it is flowpol's ({e.strerror})"
                         ) from None


def write_owned(out: Path, command: str, files: Mapping[str, str]) -> list[Path]:
    """Write ``files`` (relative name -> text) into ``out`` as ``command``'s output,
    under the rules in the module docstring. Returns the paths written, in order."""
    if out.is_symlink() and not out.exists():
        raise UsageError(f"--out {out} is a symlink to a path that does not exist")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; give a directory")
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: inside(out, name) for name in files}  # names from the input: checked
    with _locked(out):
        old = _owned_files(out, command)
        _refuse_foreign(out, command, old, paths)
        # Pending: both hashes, so that an interrupted run's files stay recognised.
        pending = {k: list(v) for k, v in old.items()}
        for name, text in files.items():
            pending.setdefault(name, []).append(digest(text))
        atomic_write(out / MANIFEST, _manifest_text(command, pending))
        written = []
        for name in sorted(files):
            path = paths[name]
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, files[name])
            written.append(path)
        for name in sorted(set(old) - set(files)):
            _remove(out, name)
        read_back(out, files)
        atomic_write(out / MANIFEST,
                     _manifest_text(command, {k: [digest(v)] for k, v in files.items()}))
    return written


def check_owner(out: Path, command: str) -> None:
    """Before any work: UsageError if ``command`` would refuse ``out`` when it writes
    (another's directory, a file changed since). Asked again, under the lock, then."""
    if out.is_dir():
        old = _owned_files(out, command)
        _refuse_foreign(out, command, old, {})


def _owned_files(out: Path, command: str) -> dict[str, list[str]]:
    """The files an earlier run of ``command`` wrote here (none in a new or empty
    directory); UsageError for a directory that is not ``command``'s."""
    manifest = _read_manifest(out)
    if manifest is None:
        entries = _entries(out)
        if not entries:
            return {}
        if _earlier_release(out):
            raise UsageError(f"--out {out} was written by an earlier flowpol release, which "
                             "kept no list of its files (so it cannot tell them from yours); "
                             "remove it (or give another --out) and run again")
        raise UsageError(f"--out {out} is not empty and was not written by flowpol "
                         f"{command}; give an empty or new directory (flowpol never "
                         "overwrites or deletes files it did not write)")
    if manifest["command"] != command:
        other = manifest["command"] if manifest["command"] in _COMMANDS else "another command"
        raise UsageError(f"--out {out} holds the output of flowpol {other}; "
                         f"flowpol {command} does not write into it (both sets of files in one "
                         "directory would be read as one): give another --out")
    return dict(manifest["files"])


def _earlier_release(out: Path) -> bool:
    """A marker of an earlier release's migrate or diff, or generate's kustomization.yaml
    with its header."""
    if any((out / m).exists() for m in _LEGACY_MARKERS):
        return True
    try:
        with open(out / "kustomization.yaml", encoding="utf-8", errors="replace") as f:
            return "Generated by flowpol" in f.read(200)
    except OSError:
        return False


def _refuse_foreign(out: Path, command: str, old: Mapping[str, list[str]],
                    paths: Mapping[str, Path]) -> None:
    changed = []
    for name, hashes in sorted(old.items()):
        # A manifest is input too: a name in it may only ever select a file in here.
        path = inside(out, name)
        now = _current_digest(path)
        if now is not None and now not in hashes:
            changed.append(name)
    if changed:
        raise UsageError(f"{out}: {', '.join(changed[:5])}"
                         f"{f' and {len(changed) - 5} more' if len(changed) > 5 else ''} "
                         f"changed since flowpol {command} wrote it; flowpol replaces or "
                         "deletes only files as it wrote them: move your version elsewhere "
                         "(or delete it) and run again")
    foreign = sorted(name for name, path in paths.items()
                     if name not in old and (path.exists() or path.is_symlink()))
    if foreign:
        raise UsageError(f"{out}: {', '.join(foreign[:5])} already exist(s) and flowpol "
                         f"{command} did not write them; move them elsewhere and run again")


def _remove(out: Path, name: str) -> None:
    path = inside(out, name)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        note_written(path)
    # directories it made for such files go too, when nothing else is left in them
    parent = path.parent
    while parent != out and parent.is_relative_to(out):
        try:
            parent.rmdir()
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                break
            raise
        parent = parent.parent


def read_back(out: Path, files: Mapping[str, str]) -> None:
    """Every file as written, byte for byte, else ReadBackError naming it."""
    for name in sorted(files):
        path = out / name
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ReadBackError(f"internal error: {path} cannot be read back after writing "
                                f"it ({e.strerror}); do not apply the output") from None
        if data != files[name].encode("utf-8"):
            raise ReadBackError(f"internal error: {path} does not hold what flowpol wrote "
                                "(read back after writing); do not apply the output, run "
                                "again and report a bug if it repeats")


def compare_documents(out: Path, expected: Mapping[str, list]) -> None:
    """Each YAML file (relative name -> the documents it must hold, comments stripped)
    parsed back from disk equals what was checked, else ReadBackError naming it: the
    check verified in-memory manifests, a cluster applies the files."""
    import yaml

    for name in sorted(expected):
        path = out / name
        try:
            docs = [d for d in _load_all(path.read_text(encoding="utf-8")) if d is not None]
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ReadBackError(f"internal error: {path} does not parse back after writing "
                                f"({' '.join(str(e).split())[:200]}); do not apply the output"
                                ) from None
        if docs != list(expected[name]):
            raise ReadBackError(f"internal error: {path}, parsed back after writing, differs "
                                "from the policies flowpol checked; do not apply it, and "
                                "report a bug")


class _NotPlain(Exception):
    """A node ``_load_all``'s own construction leaves to PyYAML's."""


_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_STR = "tag:yaml.org,2002:str"
# Scalars SafeConstructor builds with a plain function (no generator, nothing shared)
_SCALAR_TAGS = frozenset({_STR, "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool",
                          "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


def _load_all(text: str) -> list:
    """``list(yaml.load_all(text, Loader=CSafeLoader))``, in about 60% of its time.

    The documents are composed by the same loader (its parser, its resolver: the same
    tags); only the construction of Python values is done here, and only for what
    SafeConstructor builds without state: mappings with string keys, sequences, and
    null, bool, int, float and string scalars, each by SafeConstructor's own function
    (strings: the node's value, as ``construct_yaml_str``). Its generic machinery
    (generators per collection, a table of constructed nodes, deep construction) was
    40% of reading the generated files back. Any other node (a tag of its own, a merge
    key, a list or mapping reached twice through an alias), and any error, makes the
    whole text go through ``yaml.load_all``, which then gives the result or the error."""
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        constructors = loader.yaml_constructors
        seen: set[int] = set()

        def build(node: object) -> object:
            kind = type(node)
            if kind is yaml.ScalarNode:
                if node.tag == _STR:  # type: ignore[attr-defined]
                    return node.value  # type: ignore[attr-defined]
                if node.tag not in _SCALAR_TAGS:  # type: ignore[attr-defined]
                    raise _NotPlain
                return constructors[node.tag](loader, node)  # type: ignore[attr-defined]
            if id(node) in seen:
                raise _NotPlain
            seen.add(id(node))
            if kind is yaml.MappingNode and node.tag == _MAP:  # type: ignore[attr-defined]
                mapping = {}
                for key, value in node.value:  # type: ignore[attr-defined]
                    if type(key) is not yaml.ScalarNode or key.tag != _STR:
                        raise _NotPlain
                    mapping[key.value] = build(value)
                return mapping
            if kind is yaml.SequenceNode and node.tag == _SEQ:  # type: ignore[attr-defined]
                return [build(item) for item in node.value]  # type: ignore[attr-defined]
            raise _NotPlain

        docs = []
        while loader.check_node():
            # ids are unique while a document's nodes are alive, not across documents
            seen.clear()
            docs.append(build(loader.get_node()))
        return docs
    except (_NotPlain, yaml.YAMLError, RecursionError):
        pass
    finally:
        loader.dispose()
    return list(yaml.load_all(text, Loader=loader_class))
