"""``kubefence report`` opened in a real headless Chromium.

Why this module exists: the report is a page people open, so it is checked as one: it loads
from a ``file://`` URL with no network and no console errors, the graph has one node per
namespace, clicking a namespace filters the heat map to it and its peers, each finding links
to its file and line, and the diff appears with ``--against``. A 500-pod cluster from
``benchmarks/generate.py`` must render and open in seconds. ``KUBEFENCE_UPDATE_SCREENSHOT=1``
also saves the page to ``docs/report.png`` for README.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from kubefence.audit import lint
from kubefence.cli.main import main
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
    expected = opened.evaluate(
        "(() => { const d = JSON.parse(document.getElementById('kf-data').textContent);"
        " const pc = d.portClasses[Number(document.getElementById('port-class').value)];"
        " const names = d.namespaces.map(n => n.name); const b = names.indexOf('billing');"
        " return names.filter((n, i) => i === b || pc.allowed[i][b] > 0); })()"
    )
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
