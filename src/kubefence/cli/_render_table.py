"""Column-aligned text tables and counted nouns, shared by every command that prints them.

Why this module exists: ``matrix``, ``audit`` and ``isolate`` all print a header and rows padded
to the widest cell of each column; one routine keeps their layout identical (two spaces between
columns, no trailing blanks) instead of each command carrying its own copy.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["aligned", "counted"]


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "") -> list[str]:
    """``header`` and ``rows`` as lines, each column padded to its widest cell."""
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    return [
        (indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))).rstrip()
        for row in [header, *rows]
    ]


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """``1 pod``, ``3 pods``, ``2 policies`` (with ``plural`` given)."""
    return f"{number} {singular if number == 1 else (plural or singular + 's')}"
