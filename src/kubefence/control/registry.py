"""The kinds the API server serves: one table entry per kind.

Why a table: discovery, OpenAPI, routing, storage keys, printing and validation all read the same
entry, so adding a kind is one `ResourceType(...)` plus its validate/default functions (in
`kinds.py`). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubefence.errors import FieldError

__all__ = ["Column", "Registry", "ResourceType"]

Obj = dict[str, Any]
Validate = Callable[[Obj], list[FieldError]]
Default = Callable[[Obj], None]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Column:
    """A server-side printer column (`kubectl get`); priority 1 shows only with `-o wide`."""

    name: str
    type: str
    cell: Callable[[Obj], Any]
    priority: int = 0
    description: str = ""
    format: str = ""


def _no_problems(obj: Obj) -> list[FieldError]:
    return []


def _no_defaults(obj: Obj) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One kind: its names in the API, how it is stored, printed, validated and defaulted."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status"
    columns: tuple[Column, ...] = ()  # NAME first and AGE last are added by the printer
    validate: Validate = _no_problems
    default: Default = _no_defaults
    verbs: tuple[str, ...] = ALL_VERBS
    has_spec: bool = True  # generation is bumped when spec changes
    stored: bool = True  # False for virtual kinds (access reviews): create only, never stored
    age_column: bool = True
    name_column: bool = True

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`pods`, `networkpolicies.networking.k8s.io` (as the API names it in messages)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key(self, namespace: str, name: str) -> str:
        """The storage key of one object."""
        group = self.group or "core"
        if self.namespaced:
            return f"/registry/{group}/{self.plural}/{namespace}/{name}"
        return f"/registry/{group}/{self.plural}/{name}"

    def prefix(self, namespace: str = "") -> str:
        """The storage prefix of all objects (in one namespace when given)."""
        group = self.group or "core"
        if self.namespaced and namespace:
            return f"/registry/{group}/{self.plural}/{namespace}/"
        return f"/registry/{group}/{self.plural}/"


@dataclass(frozen=True, slots=True)
class Registry:
    """All served kinds, indexed the ways the server looks them up."""

    types: tuple[ResourceType, ...]

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        for rt in self.types:
            if rt.group == group and rt.version == version and rt.plural == plural:
                return rt
        return None

    def by_kind(self, kind: str, group: str | None = None) -> ResourceType | None:
        for rt in self.types:
            if rt.kind == kind and (group is None or rt.group == group):
                return rt
        return None

    def group_versions(self) -> Mapping[str, tuple[str, ...]]:
        """Named groups (not core) -> versions, in first-seen order."""
        out: dict[str, tuple[str, ...]] = {}
        for rt in self.types:
            if rt.group and rt.version not in out.get(rt.group, ()):
                out[rt.group] = (*out.get(rt.group, ()), rt.version)
        return out

    def in_group_version(self, group: str, version: str) -> tuple[ResourceType, ...]:
        return tuple(rt for rt in self.types if rt.group == group and rt.version == version)
