"""Differential tests: the vectorised engine equals the reference evaluator on every pair.

Why this module exists: the engine re-implements evaluation on classes and matrix products; the
only way to trust it is to compare it, pair by pair, with ``semantics.decide`` on random
clusters that use every feature (see ``tests/property/strategies.py``) and under every setting.
"""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st
from tests.property.strategies import PORT_QUERIES, inventories
from tests.property.strategies import inventories as shared_inventories
from tests.property.strategies import port_queries as queries

from kubefence.api import Inventory, Protocol
from kubefence.engine import ReachabilityAnalysis, compute_matrix
from kubefence.engine import _atoms as engine_atoms
from kubefence.engine import _classes as engine_classes
from kubefence.engine import _matrix as engine_matrix
from kubefence.semantics import Settings, decide

settings_choices = st.builds(
    Settings,
    self_traffic_allowed=st.booleans(),
    ipblock_matches_pods=st.booleans(),
    host_network_selectable=st.booleans(),
    allow_from_node=st.booleans(),
)


def _reference_rows(
    inventory: Inventory, port: int | str, protocol: Protocol, settings: Settings
) -> list[str]:
    keys = [p.key for p in inventory.pods]
    return [
        "".join(
            "1"
            if decide(inventory, s, d, port=port, protocol=protocol, settings=settings).allowed
            else "0"
            for d in keys
        )
        for s in keys
    ]


@given(inventories(), queries)
def test_engine_equals_reference_on_every_pair(
    inventory: Inventory, query: tuple[int | str, Protocol]
) -> None:
    """S01-S24 together: compute_matrix rows equal decide() for every (src, dst) pair."""
    port, protocol = query
    matrix = compute_matrix(inventory, port=port, protocol=protocol)
    assert list(matrix.endpoints) == [p.key for p in inventory.pods]
    expected = _reference_rows(inventory, port, protocol, Settings())
    assert matrix.rows() == expected
    for i, src in enumerate(matrix.endpoints):
        for j, dst in enumerate(matrix.endpoints):
            assert matrix.allowed(src, dst) == (expected[i][j] == "1")


@given(inventories(max_pods=5, max_policies=3), queries, settings_choices)
def test_s07_s15_s23_s24_engine_follows_every_setting(
    inventory: Inventory, query: tuple[int | str, Protocol], settings: Settings
) -> None:
    """The implementation-defined settings (S07, S15, S23, S24) change both executions alike."""
    port, protocol = query
    matrix = compute_matrix(inventory, port=port, protocol=protocol, settings=settings)
    assert matrix.rows() == _reference_rows(inventory, port, protocol, settings)


@given(inventories(), st.sampled_from((8_000_000, 1, 3)))
def test_namespace_summary_counts_equal_expanded_matrix(inventory: Inventory, cells: int) -> None:
    """Per-namespace counts computed on classes (in one step or in many small ones) equal
    counts over the expanded pod matrix."""
    analysis = ReachabilityAnalysis(inventory)
    matrix = analysis.matrix(80)
    dense = matrix.dense()
    with patch.object(engine_matrix, "_SUMMARY_CELLS", cells):
        summary = matrix.namespace_summary()
    index = {n: k for k, n in enumerate(summary.namespaces)}
    expected = [[0] * len(index) for _ in index]
    pairs = [[0] * len(index) for _ in index]
    pods = inventory.pods
    for i, a in enumerate(pods):
        for j, b in enumerate(pods):
            if i == j:
                continue
            pairs[index[a.namespace]][index[b.namespace]] += 1
            expected[index[a.namespace]][index[b.namespace]] += int(dense[i, j])
    assert [list(r) for r in summary.allowed] == expected
    assert [list(r) for r in summary.pairs] == pairs


@given(
    shared_inventories(),
    st.sampled_from(PORT_QUERIES),
    st.sampled_from(list(Protocol)),
)
def test_engine_equals_reference_on_the_shared_distribution(
    inventory: Inventory, port: int | str, protocol: Protocol
) -> None:
    """On the semantics helper's random clusters (SCTP included), engine rows equal decide()."""
    matrix = compute_matrix(inventory, port=port, protocol=protocol)
    assert matrix.rows() == _reference_rows(inventory, port, protocol, Settings())


@given(inventories(), queries)
def test_s17_indexed_selector_algebra_equals_reference(
    inventory: Inventory, query: tuple[int | str, Protocol]
) -> None:
    """With every scope forced onto the inverted-index path (used for wide namespace scopes in
    large clusters), matchLabels/In/NotIn/Exists/DoesNotExist still give decide()'s answers."""
    port, protocol = query
    with patch.object(engine_classes, "_SMALL_SCOPE", -1):
        matrix = compute_matrix(inventory, port=port, protocol=protocol)
    assert matrix.rows() == _reference_rows(inventory, port, protocol, Settings())


@given(inventories(max_cluster_policies=2), queries, st.sampled_from([-1, 1, 1 << 40]))
def test_peers_as_rows_or_as_bits_equal_reference(
    inventory: Inventory, query: tuple[int | str, Protocol], limit: int
) -> None:
    """Whichever peers are ORed as packed rows and which are set as bits (every peer a row,
    only the one-class peers bits, every peer bits but "any"), the engine equals decide()."""
    port, protocol = query
    with patch.object(engine_atoms, "sparse_limit", lambda count: limit):
        matrix = compute_matrix(inventory, port=port, protocol=protocol)
    assert matrix.rows() == _reference_rows(inventory, port, protocol, Settings())


@given(inventories(max_cluster_policies=4), queries)
def test_t01_t07_engine_equals_reference_with_admin_tiers(
    inventory: Inventory, query: tuple[int | str, Protocol]
) -> None:
    """Random clusters WITH random tiered policies (ClusterNetworkPolicy, ANP, BANP): engine
    rows equal decide() for every pair."""
    port, protocol = query
    matrix = compute_matrix(inventory, port=port, protocol=protocol)
    assert matrix.rows() == _reference_rows(inventory, port, protocol, Settings())


@given(inventories(max_pods=5, max_policies=3, max_cluster_policies=3), queries, settings_choices)
def test_t01_t07_admin_tiers_under_every_setting(
    inventory: Inventory, query: tuple[int | str, Protocol], settings: Settings
) -> None:
    """The tiers with every implementation-defined setting (hostNetwork pods selectable or
    acting as their node, ipBlocks and pods, self traffic, from the node)."""
    port, protocol = query
    matrix = compute_matrix(inventory, port=port, protocol=protocol, settings=settings)
    assert matrix.rows() == _reference_rows(inventory, port, protocol, settings)
