"""Decoded manifest documents that remember the source line of every field.

Why this module exists: validation errors must name a file *and a line*, yet the parsing code in
``api`` should walk plain mappings and lists, whether they came from YAML (``sources``) or from a
user's in-memory dicts (``Cluster.from_objects``). ``LineDict`` and ``LineList`` are ordinary
``dict``/``list`` objects that additionally carry the lines where they and their members start;
plain containers simply have no lines. ``Document`` is one top-level object and where it was read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["Document", "LineDict", "LineList", "ObjectKey", "member_line"]


class LineDict(dict[Any, Any]):
    """A mapping read from a file: ``line`` is where it starts, ``key_lines[k]`` where ``k`` is."""

    __slots__ = ("key_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}


class LineList(list[Any]):
    """A sequence read from a file: ``line`` is where it starts, ``item_lines[i]`` each item."""

    __slots__ = ("item_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


def member_line(container: object, key: object) -> int | None:
    """The line of ``container[key]`` (a mapping key or a list index), falling back to the
    container's own line; None for containers that were not read from a file."""
    if isinstance(container, LineDict):
        return container.key_lines.get(key, container.line)
    if isinstance(container, LineList):
        if isinstance(key, int) and 0 <= key < len(container.item_lines):
            return container.item_lines[key]
        return container.line
    return None


class ObjectKey(NamedTuple):
    """What identifies an object to the API server: kind, namespace ("" for cluster-scoped
    kinds) and name. Two documents with one key describe one object; the later one replaces the
    earlier, as ``kubectl apply`` would."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else f"{self.kind} {self.name}"
        )


_CLUSTER_SCOPED = frozenset(
    {
        "Namespace", "Node", "ClusterRole", "ClusterRoleBinding",
        "ClusterNetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Document:
    """One top-level manifest object: decoded content, file (``-`` for stdin, ``<objects>`` for
    in-memory dicts), the 1-based line where it starts (None if unknown) and its 0-based index
    among the documents of that file."""

    content: object
    file: str
    line: int | None
    index: int

    def key(self, *, default_namespace: str = "default") -> ObjectKey | None:
        """The document's ``ObjectKey``, or None when it has no string kind and name (the loader
        reports those as problems). A namespaced object without ``metadata.namespace`` is in
        ``default_namespace``, as kubectl places it."""
        content = self.content
        if not isinstance(content, Mapping):
            return None
        kind = content.get("kind")
        metadata = content.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if not isinstance(kind, str) or not isinstance(name, str):
            return None
        if kind in _CLUSTER_SCOPED:
            return ObjectKey(kind, "", name)
        assert isinstance(metadata, Mapping)
        namespace = metadata.get("namespace")
        return ObjectKey(kind, namespace if isinstance(namespace, str) else default_namespace, name)
