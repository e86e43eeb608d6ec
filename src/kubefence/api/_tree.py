"""Decoded manifest documents that remember the source line of every field.

Why this module exists: validation errors must name a file *and a line*, yet the parsing code in
``api`` should walk plain mappings and lists, whether they came from YAML (``sources``) or from a
user's in-memory dicts (``Cluster.from_objects``). ``LineDict`` and ``LineList`` are ordinary
``dict``/``list`` objects that additionally carry the lines where they and their members start;
plain containers simply have no lines. ``Document`` is one top-level object and where it was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Document", "LineDict", "LineList", "member_line"]


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


@dataclass(frozen=True, slots=True)
class Document:
    """One top-level manifest object: decoded content, file (``-`` for stdin, ``<objects>`` for
    in-memory dicts), the 1-based line where it starts (None if unknown) and its 0-based index
    among the documents of that file."""

    content: object
    file: str
    line: int | None
    index: int
