"""The report's data and page without a browser: self-contained, and the numbers the page
draws are the engine's and the audit's.

Why this module exists: tests/browser checks behaviour in Chromium; these check, fast and
everywhere, what the page is built from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubefence.audit import build_report, lint
from kubefence.cli.main import main
from kubefence.report import CYTOSCAPE_VERSION, render_html, report_data
from kubefence.report import _data as data_module
from kubefence.report._data import decode_matrices, encode_matrices
from kubefence.sources import files
from kubefence.sources.files import load_paths

ROOT = Path(__file__).resolve().parents[3]
TENANTS = ROOT / "examples" / "multi-tenant"


def _data(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="kf-data">(.*?)</script>', html, re.S)
    assert found is not None
    loaded: dict[str, object] = json.loads(found.group(1))
    return loaded


def test_page_is_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "-f", str(TENANTS), "-o", str(out)]) == 0
    page = out.read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page, re.I)
    assert "@import" not in page
    assert f"Cytoscape.js {CYTOSCAPE_VERSION}" in page
    assert page.count("<script") == 3


def test_data_matches_audit_and_findings() -> None:
    inventory = load_paths([str(TENANTS)])
    findings = lint(inventory)
    data = report_data(inventory, findings, tenant_label="tenant")
    audit = build_report(inventory, tenant_label="tenant")
    namespaces = data["namespaces"]
    assert [n["name"] for n in namespaces] == [n.name for n in audit.namespaces]
    assert [n["tenant"] for n in namespaces] == [n.tenant for n in audit.namespaces]
    # graph edges (the page draws one where some port class allows a pair): exactly the
    # audit's cross-namespace reachability (any port)
    names = [n["name"] for n in namespaces]
    matrices = decode_matrices(data["matrices"])
    edges = {
        (names[i], names[j]) for m in matrices for i, j in zip(*m.nonzero(), strict=True) if i != j
    }
    expected = {(a.name, b) for a in audit.namespaces for b in a.reaches if b != a.name}
    assert edges == expected
    tenant = {n["name"]: n["tenant"] for n in namespaces}
    assert ("analytics", "billing") in edges
    assert tenant["analytics"] != tenant["billing"]
    # the pod pairs of a cell: sizes x sizes, less a pod and itself
    sizes = data["sizes"]
    assert sum(sizes) == len(inventory.pods)
    for pc in data["portClasses"]:
        m = matrices[pc["matrix"]]
        for i in range(len(names)):
            for j in range(len(names)):
                assert 0 <= m[i, j] <= sizes[i] * sizes[j] - (sizes[i] if i == j else 0)
    assert len(data["findings"]) == len(findings)
    assert data["findings"][0]["href"].endswith(f"#L{findings[0].line}")


def test_explanations_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_module, "EXPLAIN_MAX", 1)
    inventory = load_paths([str(TENANTS)])
    data = data_module.report_data(inventory, [])
    texts = [t for pc in data["portClasses"] for t in pc["why"].values()]
    assert sum(t.startswith("e.g.") for t in texts) == 1
    assert len(texts) == 1
    assert data["unexplained"] > 0  # the page says "(not explained ...)" for those cells


def test_matrices_round_trip_compactly() -> None:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 300, size=(40, 40))
    other = base.copy()
    other[3, 5] = 0  # differs from the first in one cell
    small = rng.integers(0, 3, size=(40, 40))
    encoded = encode_matrices([base, other, small], size=40)
    assert encoded["dtype"] == "uint16"
    decoded = decode_matrices(encoded)
    assert [d.tolist() for d in decoded] == [base.tolist(), other.tolist(), small.tolist()]
    assert encode_matrices([small], size=40)["dtype"] == "uint8"
    empty = encode_matrices([], size=3)
    assert decode_matrices(empty) == []


def test_report_loads_through_the_cache_and_keeps_duplicate_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second report of the same input comes from the inventory cache, same page; input with
    a NetworkPolicy defined twice is never stored, and KF013 is in every run's page."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("KUBEFENCE_CACHE", raising=False)
    entries = tmp_path / "xdg" / "kubefence" / "inventory"
    clean, twice = tmp_path / "clean", tmp_path / "twice"
    clean.mkdir()
    twice.mkdir()
    policy = (TENANTS / "30-billing-policies.yaml").read_text()
    (clean / "a.yaml").write_text(policy)
    (twice / "a.yaml").write_text(policy)
    (twice / "b.yaml").write_text("# copy\n" + policy.split("---\n", 1)[1])

    def page(source: Path) -> str:
        out = tmp_path / "r.html"
        assert main(["report", "-f", str(source), "-o", str(out)]) == 0
        return out.read_text()

    first = page(clean)
    assert len(list(entries.glob("*.pickle"))) == 1
    parsed: list[object] = []
    real = files._parse_inputs

    def counting(*args: Any) -> Any:
        parsed.append(args)
        return real(*args)

    monkeypatch.setattr(files, "_parse_inputs", counting)
    assert page(clean) == first
    assert parsed == []
    for _ in range(2):
        rules = [f["rule"] for f in _findings(page(twice))]
        assert rules.count("KF013") == 1
    assert len(parsed) == 2
    assert len(list(entries.glob("*.pickle"))) == 1


def _findings(html: str) -> list[dict[str, Any]]:
    table: Any = _data(html)["findings"]
    strings = table["strings"]
    return [
        {
            k: (strings[v[0]] if isinstance(v, list) else v)
            for k, v in zip(table["fields"], row, strict=True)
        }
        for row in table["rows"]
    ]


def test_script_cannot_be_closed_by_data() -> None:
    page = render_html({"title": "x</script><b>", "namespaces": []})
    assert "x</script>" not in page
    assert "<title>x&lt;/script&gt;&lt;b&gt;</title>" in page
