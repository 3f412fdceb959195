"""The one exception hierarchy of flowpol. The CLI maps these to exit codes.

Messages are for the user: ``path:line: what is wrong, and how to fix it``.
"""

from __future__ import annotations


class FlowpolError(Exception):
    """Base of every error flowpol raises on purpose. Exit code 2 unless said otherwise.

    ``hint``: advice that holds for the whole run (e.g. the formats flowpol reads),
    printed once after the message even when several errors carry it."""

    exit_code = 2
    hint: str | None = None


class UsageError(FlowpolError):
    """Wrong options or arguments."""


class InputError(FlowpolError):
    """An input file cannot be read or understood."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.message = message
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")

    def __reduce__(self):  # noqa: ANN204 - pickled as it was made (from a reading worker)
        return (type(self), (self.message, self.path, self.line))


class SnapshotError(InputError):
    """The cluster inventory is missing, malformed, or of an unsupported shape."""


class ClusterError(FlowpolError):
    """Talking to a live cluster failed (kubeconfig, context, API errors)."""
