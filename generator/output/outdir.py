"""Whether --out can be written, asked before any input is read: a long run must not end
in "read-only file system" after all its work."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import Iterator

from recorder.errors import UsageError


def check_out_dir(out: Path, command: str, option: str = "--out") -> None:
    """UsageError unless ``out`` is a directory that can be written, or can be made one:
    not a dangling symlink, not a file, not under a file, on a writable filesystem
    (probed by creating and removing a file: os.access would answer yes to root on
    some filesystems a write then fails on)."""
    if out.is_symlink() and not out.exists():
        raise UsageError(f"{option} {out} is a symlink to {os.readlink(out)}, which does not "
                         "exist; remove the link or give another directory")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} {out} exists and is not a directory; give a directory")
    probe_dir = out
    while not probe_dir.exists():
        if probe_dir.is_symlink():
            raise UsageError(f"{option} {out}: {probe_dir} is a symlink to "
                             f"{os.readlink(probe_dir)}, which does not exist")
        parent = probe_dir.parent
        if parent == probe_dir:
            break
        probe_dir = parent
    if not probe_dir.is_dir():
        raise UsageError(f"{option} {out} cannot be created: {probe_dir} is not a directory")
    probe = probe_dir / f".flowpol-probe.{secrets.token_hex(6)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        why = "the filesystem is read-only" if e.errno == errno.EROFS else e.strerror
        raise UsageError(f"{option} {out} cannot be written: {why} ({probe_dir}); give a "
                         "directory you can write to") from None
    from generator.output.owned import check_owner

    check_owner(out, command)


@contextlib.contextmanager
def writing(out: Path) -> Iterator[None]:
    """An OSError in the block (disk full, permissions, a path component that is a
    file) is exit 2 naming the file, never a crash."""
    try:
        yield
    except OSError as e:
        where = e.filename if e.filename is not None else out
        raise UsageError(f"cannot write {where}: {e.strerror or e}; the output in "
                         f"{out} may be incomplete: fix that and run the command again"
                         ) from None
