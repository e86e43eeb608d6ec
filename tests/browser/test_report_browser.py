"""``kubefence report`` opened in a real headless Chromium.

Why this module exists: the report is a page people open, so it is checked as one: it loads
from a ``file://`` URL with no network and no console errors, the graph has one node per
namespace, clicking a namespace filters the heat map to it and its peers, each finding links
to its file and line, and the diff appears with ``--against``. A 500-pod cluster from
``benchmarks/generate.py`` must render and open in seconds; a 2,000-pod one (200 namespaces)
shows the large-cluster page: the heat map on groups of namespaces with a drill-down, the
graph on a grid drawing the selected namespace's paths, a canvas for big views.
``KUBEFENCE_UPDATE_SCREENSHOT=1`` also saves the page to ``docs/report.png`` for README.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from kubefence.audit import lint
from kubefence.cli.main import main
from kubefence.report._data import decode_matrices
from kubefence.sources.files import load_paths

ROOT = Path(__file__).resolve().parents[2]
TENANTS = ROOT / "examples" / "multi-tenant"
CHANGE = Path(__file__).resolve().parent / "inputs" / "open-billing.yaml"


def _write_report(path: Path, *argv: str) -> None:
    assert main(["report", *argv, "-o", str(path)]) == 0


def _open(browser: Any, path: Path) -> tuple[Any, list[str], float]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else 0,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "request",
        lambda r: problems.append(f"request: {r.url}") if not r.url.startswith("file:") else 0,
    )
    started = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    return page, problems, time.perf_counter() - started


@pytest.fixture(scope="module")
def tenants_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    _write_report(
        path,
        "-f",
        str(TENANTS),
        "--tenant-label",
        "tenant",
        "--against",
        str(TENANTS),
        "--against",
        str(CHANGE),
    )
    return path


@pytest.fixture(scope="module")
def opened(browser: Any, tenants_report: Path) -> Any:
    page, problems, _ = _open(browser, tenants_report)
    page.problems = problems
    yield page
    page.close()


def test_loads_offline_without_console_errors(opened: Any) -> None:
    assert opened.problems == []
    assert opened.title() == "kubefence report"


def test_graph_has_one_node_per_namespace(opened: Any) -> None:
    inventory = load_paths([str(TENANTS)])
    expected = sorted(
        {n.name for n in inventory.namespaces} | {p.namespace for p in inventory.pods}
    )
    names = opened.evaluate("kfGraph.nodes('.namespace').map(n => n.data('name'))")
    assert sorted(names) == expected
    tenants = opened.evaluate("kfGraph.nodes('.tenant').map(n => n.data('label'))")
    assert sorted(tenants) == ["acme", "globex", "initech"]
    assert opened.evaluate("kfGraph.edges('.cross').length") > 0


def _page_data(page: Any) -> dict[str, Any]:
    text = page.evaluate("document.getElementById('kf-data').textContent")
    loaded: dict[str, Any] = json.loads(text.replace("<\\/", "</"))
    return loaded


def _reaching(page: Any, target: str) -> list[str]:
    """``target`` and the namespaces with a pod that may reach it on the shown port class,
    from the page's data decoded in Python (not by the page's script)."""
    data = _page_data(page)
    pc = data["portClasses"][int(page.evaluate("document.getElementById('port-class').value"))]
    m = decode_matrices(data["matrices"])[pc["matrix"]]
    names = [n["name"] for n in data["namespaces"]]
    b = names.index(target)
    return [n for i, n in enumerate(names) if i == b or m[i, b] > 0]


def _heat_rows(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#heatmap tbody tr", "rs => rs.map(r => r.dataset.ns)"))


def test_clicking_a_namespace_filters_the_heat_map(opened: Any) -> None:
    everyone = _heat_rows(opened)
    assert "billing" in everyone
    assert len(everyone) == 6
    x, y = opened.evaluate(
        "(() => { const p = kfGraph.getElementById('ns:billing').renderedPosition();"
        " return [p.x, p.y]; })()"
    )
    opened.locator("#graph").scroll_into_view_if_needed()
    box = opened.locator("#graph").bounding_box()
    opened.mouse.click(box["x"] + x, box["y"] + y)
    opened.wait_for_function("document.getElementById('filter').textContent !== ''")
    assert opened.locator("#filter").text_content() == "namespace billing and its peers"
    rows = _heat_rows(opened)
    # billing and exactly the namespaces with a pod that may reach it on the shown port class
    expected = _reaching(opened, "billing")
    assert rows == expected
    assert "billing" in rows
    assert len(rows) < len(everyone)
    cell = opened.locator("#heatmap td[data-dst=billing]").first
    assert "pod pairs allowed" in (cell.get_attribute("title") or "")
    opened.click("#clear-filter")
    assert _heat_rows(opened) == everyone


def test_allowed_cells_explain_why_on_hover(opened: Any) -> None:
    titles = opened.eval_on_selector_all(
        "#heatmap td", "ts => ts.filter(t => t.dataset.allowed !== '0').map(t => t.title)"
    )
    cross = [t for t in titles if "e.g." in t]
    assert cross, titles
    assert any("ingress:" in t and "egress:" in t for t in cross)


def test_findings_link_to_file_and_line(opened: Any) -> None:
    findings = sorted(lint(load_paths([str(TENANTS)])), key=lambda f: f.sort_key())
    links = opened.eval_on_selector_all(
        "#findings a.location", "as => as.map(a => [a.textContent, a.href])"
    )
    assert len(links) == len(findings)
    for (text, href), f in zip(links, findings, strict=True):
        assert f.file is not None
        assert text == f"{f.file}:{f.line}"
        assert href == f"{Path(f.file).resolve().as_uri()}#L{f.line}"


def test_diff_section_lists_the_change(opened: Any) -> None:
    assert opened.locator("#diff-section").is_visible()
    rows = opened.eval_on_selector_all(
        "#diff tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert rows
    assert all(r[2].startswith("billing/") for r in rows)
    assert {r[0] for r in rows} <= {"changed", "added"}


def test_screenshot(opened: Any, tmp_path: Path) -> None:
    shot = opened.screenshot(full_page=True)
    (tmp_path / "report.png").write_bytes(shot)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("KUBEFENCE_UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs" / "report.png").write_bytes(
            opened.screenshot(clip={"x": 0, "y": 0, "width": 1400, "height": 1000})
        )


@pytest.mark.slow
def test_500_pod_cluster_renders_and_opens_in_seconds(browser: Any, tmp_path: Path) -> None:
    from benchmarks.generate import generate_cluster, write_yaml

    manifests = write_yaml(
        generate_cluster(pods=500, namespaces=50, policies=150, seed=1), tmp_path / "c.yaml"
    )
    path = tmp_path / "report.html"
    started = time.perf_counter()
    _write_report(path, "-f", str(manifests), "--tenant-label", "team")
    rendered = time.perf_counter() - started
    page, problems, opened_in = _open(browser, path)
    try:
        assert problems == []
        assert page.evaluate("kfGraph.nodes('.namespace').length") == 50
        in_page = page.evaluate("window.kfReadyMs") / 1000
    finally:
        page.close()
    print(
        f"500 pods: render {rendered:.2f} s, open {opened_in:.2f} s "
        f"({in_page:.2f} s from navigation to drawn), {path.stat().st_size // 1024} KiB"
    )
    assert rendered < 60
    assert opened_in < 60


@pytest.mark.slow
def test_2000_pod_cluster_aggregates_the_heat_map(browser: Any, tmp_path: Path) -> None:
    from benchmarks.generate import generate_cluster, write_yaml

    manifests = write_yaml(
        generate_cluster(pods=2000, namespaces=200, policies=600, seed=1), tmp_path / "c.yaml"
    )
    path = tmp_path / "report.html"
    _write_report(path, "-f", str(manifests), "--tenant-label", "team")
    page, problems, opened_in = _open(browser, path)
    try:
        assert problems == []
        data = _page_data(page)
        names = [n["name"] for n in data["namespaces"]]
        assert page.evaluate("kfGraph.nodes('.namespace').length") == len(names) == 200
        # too many paths to draw: none until a namespace is selected
        assert page.evaluate("kfGraph.edges().length") == 0
        assert "click a namespace" in (page.locator("#graph-note").text_content() or "")
        # the overview: one row per group of namespaces; the groups cover every namespace once
        assert page.evaluate("kfHeat.mode") == "groups"
        groups = page.evaluate("kfHeat.rows")
        assert 8 <= len(groups) < 40
        assert "tenant:payments" in page.evaluate("kfGraph.nodes('.tenant').map(n => n.id())")
        assert page.eval_on_selector_all("#heatmap tbody tr", "rs => rs.length") == len(groups)
        assert _heat_rows(page) == [None] * len(groups)  # group rows, not namespaces
        # a group cell's numbers are the sums of its namespaces' cells
        pc = data["portClasses"][int(page.evaluate("document.getElementById('port-class').value"))]
        m = decode_matrices(data["matrices"])[pc["matrix"]]
        cell = page.locator("#heatmap td[data-row='0'][data-col='1']")
        page.locator("#heatmap td[data-row='0'][data-col='1']").click()
        assert page.evaluate("kfHeat.mode") == "block"
        rows, cols = page.evaluate("kfHeat.rows"), page.evaluate("kfHeat.cols")
        assert set(rows).isdisjoint(cols)
        assert len(rows) > 1
        assert _heat_rows(page) == rows  # namespace rows now
        src = [names.index(r) for r in rows]
        dst = [names.index(c) for c in cols]
        total = int(m[src][:, dst].sum())
        page.click("#clear-filter")
        assert int(cell.get_attribute("data-allowed") or -1) == total
        # drill-down from every group covers every namespace exactly once
        covered: list[str] = []
        for k in range(len(groups)):
            page.locator(f"#heatmap td[data-row='{k}'][data-col='{k}']").click()
            covered += page.evaluate("kfHeat.rows")
            page.click("#clear-filter")
        assert sorted(covered) == sorted(names)
        # clicking a namespace in the graph: its peers in the heat map, its paths in the graph
        target = "ns-0042"
        x, y = page.evaluate(
            f"(() => {{ const p = kfGraph.getElementById('ns:{target}').renderedPosition();"
            " return [p.x, p.y]; })()"
        )
        page.locator("#graph").scroll_into_view_if_needed()
        # Cytoscape learns of the scroll from the scroll event: let it arrive before clicking
        page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 100)))")
        box = page.locator("#graph").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_function("kfHeat && kfHeat.mode === 'focus'")
        assert page.evaluate("kfHeat.rows") == _reaching(page, target)
        edges = page.evaluate("kfGraph.edges().map(e => [e.source().data('name'),"
                              " e.target().data('name')])")  # fmt: skip
        assert edges
        assert all(target in e for e in edges)
        big = page.evaluate("kfHeat.rows.length * kfHeat.cols.length") > 6400
        assert page.locator("#heatmap-canvas").count() == (1 if big else 0)
        count = len(data["findings"]["rows"])  # the findings travel as one table
        assert count > 500
        links = page.eval_on_selector_all("#findings a.location", "as => as.length")
        assert links == 500
        page.click("#more-findings")
        hrefs = page.eval_on_selector_all("#findings a.location", "as => as.map(a => a.href)")
        assert len(hrefs) == count
        assert all(h.startswith(manifests.resolve().as_uri() + "#L") for h in hrefs)
        in_page = page.evaluate("window.kfReadyMs") / 1000
    finally:
        page.close()
    print(f"2,000 pods: open {opened_in:.2f} s ({in_page:.2f} s in page)")
