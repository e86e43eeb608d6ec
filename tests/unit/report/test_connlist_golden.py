"""Golden connection lists: ``matrix -o connlist*`` and ``diff -o connlist*`` byte for byte.

Why this module exists: users switch from np-guard netpol-analyzer by diffing its connection
list against ours, so the text is a contract. Each case runs the CLI on manifests under
``inputs/`` (or ``examples/``) and compares with ``golden/<case>``.
``KUBEFENCE_UPDATE_GOLDEN=1 pytest tests/unit/report`` rewrites the files (review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubefence.cli.main import main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
UPDATE = os.environ.get("KUBEFENCE_UPDATE_GOLDEN") == "1"
CLUSTER = str(HERE / "inputs" / "connlist.yaml")
CHANGE = str(HERE / "inputs" / "connlist-change.yaml")
TENANTS = str(ROOT / "examples" / "multi-tenant")

CASES: dict[str, list[str]] = {
    "matrix.txt": ["matrix", "-f", CLUSTER, "-o", "connlist"],
    "matrix.csv": ["matrix", "-f", CLUSTER, "-o", "connlist-csv"],
    "matrix.json": ["matrix", "-f", CLUSTER, "-o", "connlist-json"],
    "matrix.md": ["matrix", "-f", CLUSTER, "-o", "connlist-md"],
    "matrix-port-5432.txt": ["matrix", "-f", CLUSTER, "-o", "connlist", "--port", "5432"],
    "matrix-port-http.txt": ["matrix", "-f", CLUSTER, "-o", "connlist", "--port", "http"],
    "matrix-udp.txt": ["matrix", "-f", CLUSTER, "-o", "connlist", "--protocol", "UDP"],
    "multi-tenant.txt": ["matrix", "-f", TENANTS, "-o", "connlist"],
    "diff.txt": [
        "diff",
        "-f",
        CLUSTER,
        "--against",
        CLUSTER,
        "--against",
        CHANGE,
        "-o",
        "connlist",
    ],
    "diff.csv": [
        "diff",
        "-f",
        CLUSTER,
        "--against",
        CLUSTER,
        "--against",
        CHANGE,
        "-o",
        "connlist-csv",
    ],
    "diff.json": [
        "diff",
        "-f",
        CLUSTER,
        "--against",
        CLUSTER,
        "--against",
        CHANGE,
        "-o",
        "connlist-json",
    ],
    "diff.md": [
        "diff",
        "-f",
        CLUSTER,
        "--against",
        CLUSTER,
        "--against",
        CHANGE,
        "-o",
        "connlist-md",
    ],
    "diff-reverse.txt": [
        "diff",
        "-f",
        CLUSTER,
        "-f",
        CHANGE,
        "--against",
        CLUSTER,
        "-o",
        "connlist",
    ],
    "diff-none.txt": ["diff", "-f", CLUSTER, "--against", CLUSTER, "-o", "connlist"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_connlist_golden(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(CASES[case])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    golden = HERE / "golden" / f"connlist-{case}"
    if UPDATE:
        golden.write_text(out)
    assert out == golden.read_text()
