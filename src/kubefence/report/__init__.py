"""Renderings for people and other tools: connection lists and the self-contained HTML report.

Pure: callers write the returned text; the only inputs are the vendored Cytoscape.js bundle
and the page's script, read from this package (``vendor/``, ``page/``). ``connlist`` groups
the engine's matrices per workload pair in np-guard netpol-analyzer's connection-list format;
``html_report`` builds one HTML file with the namespace graph, heat maps, audit findings and
an optional diff.
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
from kubefence.report._data import EXPLAIN_MAX, report_data
from kubefence.report._html import CYTOSCAPE_VERSION, render_html

__all__ = [
    "CYTOSCAPE_VERSION",
    "EXPLAIN_MAX",
    "FORMATS",
    "ConnList",
    "ConnListDiff",
    "connlist",
    "connlist_diff",
    "render_connlist",
    "render_connlist_diff",
    "render_html",
    "report_data",
    "workload_of",
]
