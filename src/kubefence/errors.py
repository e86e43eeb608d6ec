"""One exception tree for kubefence, and the structured problem record that input errors carry.

Why this module exists: every layer raises from the same small tree, so the CLI can map each
family to one exit code without knowing where it came from, and so users of the Python API can
catch ``kubefence.KubefenceError`` once.

    KubefenceError
     ├── InputError            bad input or usage; CLI exit 2
     │    └── ValidationError  rejected by a real API server; ``.problems`` lists all
     ├── EnvironmentProblem    the machine lacks something (root, nft, ip); CLI exit 3
     └── DataplaneError        a data-plane operation failed after its preconditions held

``FieldError`` is data, not an exception: one problem, located by file, line, object and API-server
field path (``spec.ingress[0].from[1].ipBlock.except[0]``). ``str()`` is derived from its fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DataplaneError",
    "EnvironmentProblem",
    "FieldError",
    "InputError",
    "KubefenceError",
    "ValidationError",
]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in the input: where it is and what would be valid instead."""

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    object: str | None = None  # "NetworkPolicy test/deny-all" (kind namespace/name)

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [p for p in (where, self.object, self.path) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message

    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.file or "", self.line or 0, self.object or "", self.path)


class KubefenceError(Exception):
    """Base of every error kubefence raises on purpose."""


class InputError(KubefenceError):
    """The input or the usage is wrong; the CLI exits with status 2."""


class ValidationError(InputError):
    """The manifests would be rejected by a Kubernetes API server; every problem is listed."""

    def __init__(self, problems: Iterable[FieldError]) -> None:
        self.problems: tuple[FieldError, ...] = tuple(sorted(problems, key=FieldError.sort_key))
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the input"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class EnvironmentProblem(KubefenceError):  # noqa: N818 (a condition, not a bug)
    """The machine lacks a prerequisite (root, nft, ip, a kernel feature); CLI exit 3."""


class DataplaneError(KubefenceError):
    """A data-plane operation (namespaces, nftables, processes) failed."""
