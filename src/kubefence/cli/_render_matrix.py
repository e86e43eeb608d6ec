"""Text renderings of engine matrices: table, JSON, CSV, Markdown and Graphviz DOT.

Why this module exists: the engine returns data (``Matrix``); turning it into text for people
and tools is the CLI's job, in one place shared by ``matrix`` and any command that shows a
matrix. Tables switch to a per-namespace summary beyond ``PER_POD_LIMIT`` pods (unless the
caller forces per-pod), so that they stay readable for large clusters; the summary is computed
on pod classes and never expands the N x N matrix.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

from kubefence.cli._render_table import aligned

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kubefence.engine import Matrix, NamespaceSummary

__all__ = [
    "PER_POD_LIMIT",
    "render_csv",
    "render_dot",
    "render_json",
    "render_markdown",
    "render_table",
]

PER_POD_LIMIT = 40
_ALLOW, _DENY = "1", "."
_LIST_AT_MOST = 4


def _heading(matrix: Matrix) -> str:
    summary = matrix.namespace_summary()
    allowed = sum(map(sum, summary.allowed))
    pairs = sum(map(sum, summary.pairs))
    share = f" ({100.0 * allowed / pairs:.1f}%)" if pairs else ""
    pods, spaces = len(matrix.endpoints), len(summary.namespaces)
    return (
        f"port {matrix.port}/{matrix.protocol}: {pods} pod{'s' if pods != 1 else ''} in "
        f"{spaces} namespace{'s' if spaces != 1 else ''}; {allowed:,} of {pairs:,} connections "
        f"between distinct pods allowed{share}"
    )


def _per_pod(matrix: Matrix, per_pod: bool | None) -> bool:
    return per_pod if per_pod is not None else len(matrix.endpoints) <= PER_POD_LIMIT


def _grid_rows(matrix: Matrix) -> tuple[list[str], list[list[str]]]:
    """Header (column numbers) and one row per source: number, name, then one cell per dst."""
    header = ["", "FROM \\ TO", *(str(j) for j in range(len(matrix.endpoints)))]
    body = [
        [str(i), name, *(_ALLOW if c == "1" else _DENY for c in row)]
        for i, (name, row) in enumerate(zip(matrix.endpoints, matrix.rows(), strict=True))
    ]
    return header, body


def _names(items: Sequence[str]) -> str:
    if len(items) <= _LIST_AT_MOST:
        return ", ".join(items)
    return f"{len(items)} namespaces"


def _summary_rows(summary: NamespaceSummary) -> list[list[str]]:
    """Per source namespace: allowed pairs, and destination namespaces open/partial/closed."""
    rows = []
    for i, source in enumerate(summary.namespaces):
        opened, partial, closed = [], [], []
        for j, target in enumerate(summary.namespaces):
            got, total = summary.allowed[i][j], summary.pairs[i][j]
            if total == 0:
                continue
            if got == total:
                opened.append(target)
            elif got == 0:
                closed.append(target)
            else:
                partial.append(f"{target} {got}/{total}")
        allowed, pairs = sum(summary.allowed[i]), sum(summary.pairs[i])
        rows.append(
            [
                source,
                f"{allowed:,}/{pairs:,}",
                _names(opened) or "-",
                _names(partial) or "-",
                _names(closed) or "-",
            ]
        )
    return rows


_SUMMARY_HEADER = ["FROM NAMESPACE", "ALLOWED/PAIRS", "OPEN TO", "PARTIAL", "CLOSED TO"]


def render_table(matrices: Sequence[Matrix], *, per_pod: bool | None = None) -> str:
    """One block per matrix: a pod grid when small (or forced), else a namespace summary."""
    blocks = []
    for matrix in matrices:
        lines = [_heading(matrix)]
        if _per_pod(matrix, per_pod):
            header, body = _grid_rows(matrix)
            lines.extend(aligned(header, body))
        else:
            lines.append(f"(more than {PER_POD_LIMIT} pods: per namespace; --per-pod for pods)")
            lines.extend(aligned(_SUMMARY_HEADER, _summary_rows(matrix.namespace_summary())))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_json(matrices: Sequence[Matrix], *, as_list: bool) -> str:
    """The ``matrix -o json`` object (docs/matrix-json.md), or a list of them, one per class."""
    docs = [m.to_json() for m in matrices]
    payload: object = docs if as_list else docs[0]
    # Indented for people when small; compact (and C-encoded, much faster) when large.
    small = all(len(m.endpoints) <= PER_POD_LIMIT for m in matrices)
    return json.dumps(payload, indent=2 if small else None) + "\n"


def render_csv(matrices: Sequence[Matrix]) -> str:
    """``port,protocol,source,<destination...>`` rows of 0/1, one block per matrix."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for matrix in matrices:
        writer.writerow(["port", "protocol", "source", *matrix.endpoints])
        for name, row in zip(matrix.endpoints, matrix.rows(), strict=True):
            writer.writerow([matrix.port, str(matrix.protocol), name, *row])
    return buffer.getvalue()


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


def render_markdown(matrices: Sequence[Matrix], *, per_pod: bool | None = None) -> str:
    """Markdown sections: a pod grid or a namespace summary table per matrix."""
    sections = []
    for matrix in matrices:
        lines = [f"### Port {matrix.port}/{matrix.protocol}", "", _heading(matrix), ""]
        if _per_pod(matrix, per_pod):
            header, body = _grid_rows(matrix)
            lines.extend(_md_table(header[1:], [r[1:] for r in body]))
        else:
            lines.extend(_md_table(_SUMMARY_HEADER, _summary_rows(matrix.namespace_summary())))
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(matrices: Sequence[Matrix]) -> str:
    """A Graphviz digraph: pods grouped in one cluster per namespace, an edge per allowed
    connection between distinct pods, labelled with the ports on which it is allowed."""
    if not matrices:
        return "digraph kubefence {}\n"
    endpoints = matrices[0].endpoints
    ports: dict[tuple[int, int], list[str]] = {}
    for matrix in matrices:
        dense = matrix.dense()
        for i, j in zip(*dense.nonzero(), strict=True):
            if i != j:
                ports.setdefault((int(i), int(j)), []).append(f"{matrix.port}/{matrix.protocol}")
    lines = ["digraph kubefence {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    by_namespace: dict[str, list[str]] = {}
    for name in endpoints:
        by_namespace.setdefault(name.split("/", 1)[0], []).append(name)
    for k, (namespace, names) in enumerate(sorted(by_namespace.items())):
        lines.append(f"  subgraph cluster_{k} {{")
        lines.append(f"    label={_dot_id(namespace)};")
        lines.extend(f"    {_dot_id(n)} [label={_dot_id(n.split('/', 1)[1])}];" for n in names)
        lines.append("  }")
    for (i, j), labels in sorted(ports.items()):
        label = ", ".join(labels)
        lines.append(
            f"  {_dot_id(endpoints[i])} -> {_dot_id(endpoints[j])} [label={_dot_id(label)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
