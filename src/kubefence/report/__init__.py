"""Renderings for people and other tools: connection lists and the self-contained HTML report.

Pure (no I/O): callers write the returned text. ``connlist`` groups the engine's matrices per
workload pair in np-guard netpol-analyzer's connection-list format; ``html_report`` builds one
HTML file with the namespace graph, heat maps, audit findings and an optional diff.
"""

from __future__ import annotations

from kubefence.report._connlist import (
    FORMATS,
    ConnList,
    ConnListDiff,
    connlist,
    connlist_diff,
    render_connlist,
    render_connlist_diff,
    workload_of,
)

__all__ = [
    "FORMATS",
    "ConnList",
    "ConnListDiff",
    "connlist",
    "connlist_diff",
    "render_connlist",
    "render_connlist_diff",
    "workload_of",
]
