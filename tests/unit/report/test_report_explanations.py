"""The heat map's hover explanations are the reference evaluator's answer for one example pod
pair per cell, whichever way the report finds the pairs.

Why this module exists: the report picks each cell's example pair for many cells at once (per
source namespace, on the class matrix) and stops at ``EXPLAIN_MAX``. This checks the result
against the plain definition, computed pair by pair: cells row by row (every port class in
turn, one budget), the first pod pair in endpoint order the policies allow (else the first
one the node allows, S24), ``decide`` on it, and the number of cells left unexplained.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from tests.property.strategies import inventories

from kubefence.api import Inventory, Protocol
from kubefence.audit import build_report
from kubefence.engine import Matrix, ReachabilityAnalysis, port_classes
from kubefence.report import _data as data_module
from kubefence.report._data import decode_matrices
from kubefence.semantics import DEFAULT_SETTINGS, Settings, decide
from kubefence.sources.objects import inventory_from_objects

SETTINGS = st.builds(
    Settings,
    self_traffic_allowed=st.booleans(),
    ipblock_matches_pods=st.booleans(),
    host_network_selectable=st.booleans(),
    allow_from_node=st.booleans(),
)


def _first_pair(m: Matrix, srcs: list[int], dsts: list[int]) -> tuple[int, int] | None:
    for s in srcs:
        for d in dsts:
            if m.class_verdict(int(m.class_of[s]), int(m.class_of[d])):
                return s, d
    for s, targets in m.overrides:  # S24, in the matrix's order
        if s in srcs:
            for d in targets:
                if d in dsts:
                    return s, d
    return None


def _reference(
    inventory: Inventory, names: list[str], data: dict[str, Any], settings: Settings, cap: int
) -> tuple[list[dict[str, str]], int]:
    """Per port class the explanations, and the cells left unexplained, pair by pair."""
    if not inventory.pods:
        return [], 0  # no heat map at all
    matrices = decode_matrices(data["matrices"])
    analysis = ReachabilityAnalysis(inventory, settings=settings)
    budget, unexplained = cap, 0
    found: list[dict[str, str]] = []
    for pc, shown in zip(
        port_classes([inventory], protocols=list(Protocol)), data["portClasses"], strict=True
    ):
        m = analysis.matrix(pc.port, pc.protocol, label=pc.label)
        by_ns: dict[str, list[int]] = {}
        for k, endpoint in enumerate(m.endpoints):
            by_ns.setdefault(endpoint.partition("/")[0], []).append(k)
        allowed = matrices[shown["matrix"]]
        why: dict[str, str] = {}
        for i, j in np.argwhere(allowed):
            if i == j:
                continue
            if budget <= 0:
                unexplained += 1
                continue
            pair = _first_pair(m, by_ns[names[i]], by_ns[names[j]])
            if pair is None:
                continue
            budget -= 1
            src, dst = m.endpoints[pair[0]], m.endpoints[pair[1]]
            decision = decide(
                inventory, src, dst, port=pc.port, protocol=pc.protocol, settings=settings
            )
            why[f"{i},{j}"] = data_module._why(decision, src, dst)
        found.append(why)
    return found, unexplained


def _check(inventory: Inventory, settings: Settings, cap: int) -> dict[str, Any]:
    with patch.object(data_module, "EXPLAIN_MAX", cap):
        data = data_module.report_data(inventory, [], settings=settings)
    names = [n.name for n in build_report(inventory, reachability=False).namespaces]
    assert [n["name"] for n in data["namespaces"]] == names
    expected, unexplained = _reference(inventory, names, data, settings, cap)
    assert [pc["why"] for pc in data["portClasses"]] == expected
    assert data["unexplained"] == unexplained
    return data


@given(
    inventories(max_pods=9, max_policies=5, max_cluster_policies=2),
    SETTINGS,
    st.integers(0, 12),
)
def test_explanations_equal_the_per_cell_answers_on_random_clusters(
    inventory: Inventory, settings: Settings, cap: int
) -> None:
    _check(inventory, settings, cap)


@given(inventories(max_pods=9, max_policies=5), SETTINGS, st.integers(0, 12))
def test_explanations_equal_the_per_cell_answers_without_tiers(
    inventory: Inventory, settings: Settings, cap: int
) -> None:
    _check(inventory, settings, cap)


def test_explanations_equal_the_per_cell_answers_on_a_generated_cluster() -> None:
    """60 namespaces of the benchmark generator: many cells per row, the budget ending inside
    a row of a later port class."""
    from benchmarks.generate import generate_cluster

    objects = generate_cluster(pods=300, namespaces=60, policies=150, seed=3)
    inventory = inventory_from_objects(objects)
    data = _check(inventory, DEFAULT_SETTINGS, 2500)
    explained = [len(pc["why"]) for pc in data["portClasses"]]
    assert explained[0] > 0
    assert 0 < sum(explained) <= 2500
    assert data["unexplained"] > 0


def test_a_cell_only_the_node_allows_is_explained_by_its_node_pair() -> None:
    """A hostNetwork pod and a default-deny pod on one node (S24): the cell's only allowed
    pair comes from the node, and its explanation says so."""
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod"}
    containers = [{"name": "c", "image": "i"}]
    objects = [
        {**pod, "metadata": {"name": "agent", "namespace": "infra"},
         "spec": {"hostNetwork": True, "nodeName": "node-1", "containers": containers},
         "status": {"podIP": "198.18.0.10"}},
        {**pod, "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
         "spec": {"nodeName": "node-1", "containers": containers},
         "status": {"podIP": "198.18.1.10"}},
        {**pod, "metadata": {"name": "far", "namespace": "shop", "labels": {"app": "far"}},
         "spec": {"nodeName": "node-2", "containers": containers},
         "status": {"podIP": "198.18.1.11"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "deny", "namespace": "shop"},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
    ]  # fmt: skip
    inventory = inventory_from_objects(objects)
    settings = Settings(allow_from_node=True)
    data = _check(inventory, settings, 50)
    names = [n["name"] for n in data["namespaces"]]
    cell = f"{names.index('infra')},{names.index('shop')}"
    texts = {pc["why"][cell] for pc in data["portClasses"] if cell in pc["why"]}
    assert texts
    assert all(t.startswith("e.g. infra/agent -> shop/web") for t in texts)
    assert all("decided by" in t for t in texts)
