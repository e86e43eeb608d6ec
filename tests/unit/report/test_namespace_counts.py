"""``report._data.namespace_counts`` equals the engine's ``Matrix.namespace_summary``.

Why this module exists: the report computes the namespace x namespace counts itself (as numpy,
not tuples of ints, which cost most of its time at 1,000 namespaces); these cases pin it to
the engine's numbers: the multi-tenant example, a generated cluster with many classes per
namespace, and pods reached from their node (S24 overrides) on a named port.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.builders import inventory as cluster
from tests.builders import pod, policy

from kubefence.api import Inventory, Protocol
from kubefence.engine import ReachabilityAnalysis, port_classes
from kubefence.report import _data as data_module
from kubefence.report._data import namespace_counts
from kubefence.sources.files import load_paths

ROOT = Path(__file__).resolve().parents[3]


def _generated() -> Inventory:
    from benchmarks.generate import generate_cluster

    from kubefence.sources.objects import inventory_from_objects

    return inventory_from_objects(generate_cluster(pods=300, namespaces=30, policies=120, seed=3))


def _from_node() -> Inventory:
    web = [{"containerPort": 8080, "name": "http"}]
    return cluster(
        pod("kube/agent", host_network=True, node="n1", ip="198.18.1.1"),
        pod("a/web", node="n1", ports=web, app="web"),
        pod("a/db", node="n1", app="db"),
        pod("b/web", node="n2", ports=web, app="web"),
        policy("a/deny", {"podSelector": {}}),
        policy("b/deny", {"podSelector": {}}),
    )


@pytest.mark.parametrize("step", [None, 7])
@pytest.mark.parametrize("case", ["examples", "generated", "from-node"])
def test_equals_the_engine_summary(
    case: str, step: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if step is not None:  # many small chunks of source classes, not one
        monkeypatch.setattr(data_module, "_SUMMARY_CELLS", step)
    inventory = {
        "examples": lambda: load_paths([str(ROOT / "examples" / "multi-tenant")]),
        "generated": _generated,
        "from-node": _from_node,
    }[case]()
    analysis = ReachabilityAnalysis(inventory)
    overridden = 0
    for pc in port_classes([inventory], protocols=list(Protocol)):
        m = analysis.matrix(pc.port, pc.protocol, label=pc.label)
        overridden += len(m.overrides)
        summary = m.namespace_summary()
        expected = np.asarray(summary.allowed, dtype=np.int64).reshape(
            len(summary.namespaces), len(summary.namespaces)
        )
        assert np.array_equal(namespace_counts(m), expected), pc.label
    if case == "from-node":
        assert overridden  # the case exercises the S24 overrides
