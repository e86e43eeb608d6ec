"""The connection list says exactly what the engine says, per workload pair and port.

Why this module exists: the golden files pin the text; these pin its meaning. For the example
clusters, every port of every class is listed for a workload pair exactly when some pod of
the source may connect to some other pod of the destination on it (``Matrix.dense``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kubefence.api import Pod, Protocol
from kubefence.engine import ReachabilityAnalysis, port_classes
from kubefence.report import connlist, workload_of
from kubefence.sources.files import load_paths

ROOT = Path(__file__).resolve().parents[3]
CLUSTERS = [
    ROOT / "tests" / "unit" / "report" / "inputs" / "connlist.yaml",
    ROOT / "examples" / "multi-tenant",
    ROOT / "examples" / "workloads",
    ROOT / "examples" / "tutorial",
]


def test_workload_names() -> None:
    assert workload_of(Pod(namespace="a", name="web-1", owner="Deployment/web")) == (
        "a/web[Deployment]"
    )
    assert workload_of(Pod(namespace="a", name="x")) == "a/x[Pod]"


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_connlist_agrees_with_the_engine(path: Path) -> None:
    inventory = load_paths([str(path)])
    analysis = ReachabilityAnalysis(inventory)
    listed = connlist(inventory, analysis=analysis).as_map()
    owners = [workload_of(p) for p in inventory.pods]
    for pc in port_classes([inventory], protocols=list(Protocol)):
        dense = analysis.matrix(pc.port, pc.protocol).dense()
        expected: set[tuple[str, str]] = set()
        for i, j in zip(*np.nonzero(dense), strict=True):
            if owners[i] != owners[j]:
                expected.add((owners[i], owners[j]))
        found = set()
        for pair, conns in listed.items():
            spans = dict(conns.ports).get(pc.protocol, ())
            if any(lo <= pc.port <= hi for lo, hi in spans):
                found.add(pair)
        assert found == expected, (pc, found ^ expected)


def test_diff_connlist_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    from kubefence.cli.main import main

    cluster = str(ROOT / "tests" / "unit" / "report" / "inputs" / "connlist.yaml")
    change = str(ROOT / "tests" / "unit" / "report" / "inputs" / "connlist-change.yaml")
    same = ["diff", "-f", cluster, "--against", cluster, "-o", "connlist", "--exit-code"]
    assert main(same) == 0
    assert main([*same, "--against", change]) == 1
    capsys.readouterr()


def test_too_many_workloads_is_an_input_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubefence.cli.commands import matrix
    from kubefence.cli.main import main

    monkeypatch.setattr(matrix, "PER_POD_MAX", 2)
    cluster = str(ROOT / "tests" / "unit" / "report" / "inputs" / "connlist.yaml")
    assert main(["matrix", "-f", cluster, "-o", "connlist"]) == 2
    assert "too many for a connection list" in capsys.readouterr().err
