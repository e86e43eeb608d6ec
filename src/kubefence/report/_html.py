"""One self-contained HTML file: the namespace graph, heat maps, findings and diff.

Why this module exists: a report people open from a CI artifact or an e-mail must work
offline and alone. Everything is inlined: our CSS, our script (``page/report.js``, kept as a
JavaScript file so it can be read and linted as one), the data of ``_data.report_data`` as
JSON (its matrices compressed, see there), and Cytoscape.js (``vendor/cytoscape.min.js``,
version ``CYTOSCAPE_VERSION``, MIT) to lay out and draw the namespace graph. Those two files
are all this package reads; it writes nothing.

The page's behaviour, which ``tests/browser`` checks in a real Chromium: one graph node per
namespace (inside a box per tenant with ``--tenant-label``), coloured by its worst finding;
an edge per allowed cross-namespace path, red when it crosses tenants; a heat map per port
class whose cells explain themselves on hover; clicking a namespace filters the heat map to it
and the namespaces it exchanges traffic with; each finding links to its file and line.
At scale (more than 150 namespaces or 3,000 paths) the graph is placed on a grid per tenant
without a force layout and draws the paths of the selected namespace only; with more than 60
namespaces the heat map opens on groups of namespaces (tenants, split into blocks of about
sqrt(namespaces)) and a click on a group cell drills down to its namespaces; a view with more
than 6,400 cells is drawn on a canvas with a hover tip; the first 500 findings are listed
with a button for the rest.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

__all__ = ["CYTOSCAPE_VERSION", "render_html"]

CYTOSCAPE_VERSION = "3.35.0"


def _vendored(name: str) -> str:
    return (resources.files("kubefence.report") / "vendor" / name).read_text(encoding="utf-8")


def _page_script() -> str:
    return (resources.files("kubefence.report") / "page" / "report.js").read_text(encoding="utf-8")


def _script_safe(text: str) -> str:
    """Text that cannot end the ``<script>`` element it is inlined in."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _table(findings: list[dict[str, Any]]) -> dict[str, Any]:
    """The findings as one table for the page (its script rebuilds the objects): field names
    once, each distinct string once (a rule's fix, the file, the severity repeat thousands of
    times at 10,000 pods), and a link ``<href>#L<line>`` as its part before ``#L`` plus a flag.
    """
    fields = sorted({k for f in findings for k in f} | {"hrefLine"})
    strings: dict[str, int] = {}
    rows = []
    for f in findings:
        values = dict(f)
        href, line = values.get("href"), values.get("line")
        suffix = f"#L{line}"
        values["hrefLine"] = 0
        if isinstance(href, str) and line and href.endswith(suffix):
            values["href"], values["hrefLine"] = href[: -len(suffix)], 1
        rows.append(
            [
                [strings.setdefault(v, len(strings))] if isinstance(v, str) else v
                for v in (values.get(k) for k in fields)
            ]
        )
    return {"fields": fields, "strings": list(strings), "rows": rows}


def render_html(data: dict[str, Any]) -> str:
    """The whole page for ``data`` (from ``report_data``)."""
    library = _vendored("cytoscape.min.js")
    if "</script" in library.lower():  # pragma: no cover - checked when vendoring
        raise ValueError("the vendored library cannot be inlined in a <script> element")
    compact = dict(data)
    if isinstance(data.get("findings"), list):
        compact["findings"] = _table(data["findings"])
    payload = _script_safe(json.dumps(compact, separators=(",", ":")))
    title = html.escape(str(data.get("title", "kubefence report")))
    return (
        _PAGE.replace("@@TITLE@@", title)
        .replace("@@CSS@@", _CSS)
        .replace("@@VERSION@@", CYTOSCAPE_VERSION)
        .replace("@@LIBRARY@@", library)
        .replace("@@DATA@@", payload)
        .replace("@@SCRIPT@@", _script_safe(_page_script()))
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="kubefence report">
<title>@@TITLE@@</title>
<style>@@CSS@@</style>
</head>
<body>
<header><h1>@@TITLE@@</h1><p id="summary"></p></header>
<main>
<section id="graph-section">
  <h2>Namespaces and the paths between them</h2>
  <p class="legend">Node colour: worst finding in the namespace
    (<span class="sev error">error</span> <span class="sev warning">warning</span>
    <span class="sev info">info</span> <span class="sev none">none</span>).
    An arrow: some pod may connect to a pod of the other namespace on some port;
    <span class="cross">red</span> when it crosses tenants. Click a namespace to filter the
    heat map; click the background to clear.</p>
  <p id="graph-note" class="legend"></p>
  <div id="graph"></div>
</section>
<section id="heat-section">
  <h2>Reachability heat map</h2>
  <p>Rows: source namespace; columns: destination. A cell's shade is the share of its pod
    pairs allowed; hover over it for the numbers and why.
    <label>Port class <select id="port-class"></select></label>
    <span id="filter"></span> <button id="clear-filter" hidden>show all</button></p>
  <div class="scroll" id="heat-host"></div>
  <div id="heat-tip" hidden></div>
</section>
<section id="findings-section">
  <h2>Audit findings</h2>
  <table id="findings"><thead><tr><th>severity</th><th>rule</th><th>where</th>
    <th>object</th><th>message</th><th>fix</th></tr></thead><tbody></tbody></table>
  <button id="more-findings" hidden></button>
</section>
<section id="diff-section" hidden>
  <h2>Diff against the proposed manifests</h2>
  <table id="diff"><thead><tr><th>change</th><th>source</th><th>destination</th>
    <th>before</th><th>after</th><th>workloads</th></tr></thead><tbody></tbody></table>
</section>
</main>
<footer>Generated by kubefence. Graph drawn with Cytoscape.js @@VERSION@@ (MIT licence,
  embedded).</footer>
<script>@@LIBRARY@@</script>
<script type="application/json" id="kf-data">@@DATA@@</script>
<script>@@SCRIPT@@</script>
</body>
</html>
"""

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 2em; color: #1d232a; }
h1 { font-size: 1.5em; margin: .6em 0 .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
#graph { height: 520px; border: 1px solid #ccd; border-radius: 4px; background: #fbfcfd; }
.legend, footer { color: #555; } footer { margin-top: 2em; font-size: .85em; }
.sev { padding: 0 .4em; border-radius: 3px; color: #fff; }
.sev.error { background: #c62828; } .sev.warning { background: #ef6c00; }
.sev.info { background: #1565c0; } .sev.none { background: #2e7d32; }
.cross { color: #c62828; font-weight: bold; }
.scroll { overflow: auto; max-height: 640px; border: 1px solid #ccd; }
table { border-collapse: collapse; } td, th { padding: 2px 6px; text-align: left; }
#findings td, #findings th, #diff td, #diff th { border-bottom: 1px solid #e3e6ea;
  vertical-align: top; }
#heatmap th { font-weight: normal; white-space: nowrap; position: sticky; background: #fff; }
#heatmap thead th { top: 0; writing-mode: vertical-rl; transform: rotate(180deg);
  height: 8em; z-index: 1; }
#heatmap tbody th { left: 0; }
#heatmap td { width: 14px; min-width: 14px; height: 14px; padding: 0;
  border: 1px solid #f0f2f4; cursor: help; }
#heatmap .selected { font-weight: bold; color: #0d47a1; }
#filter { margin-left: 1em; font-weight: bold; }
#heatmap td[data-row] { cursor: zoom-in; }
#heatmap-canvas { display: block; cursor: crosshair; }
#heat-tip { position: absolute; z-index: 5; max-width: 40em; white-space: pre-wrap;
  background: #fffde7; border: 1px solid #bbb; padding: 4px 6px; font-size: 12px;
  pointer-events: none; }
"""
