"""The engine's blocked steps give the same verdicts whatever their block sizes.

Why this module exists: for speed and memory the engine folds ingress into the result in spans
of about ``_TILE`` destination classes through bit-packed transposes. Clusters small enough for
the reference evaluator fit in one span, so these tests shrink the span to one, two and three
classes to exercise span boundaries, widths that are not a multiple of 8 and namespaces wider
than a span, and compare every pair with ``semantics.decide``.
"""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st
from tests.property.strategies import inventories
from tests.property.strategies import port_queries as queries

from kubefence.api import Inventory, Protocol
from kubefence.engine import _compute as engine_compute
from kubefence.engine import compute_matrix
from kubefence.semantics import decide


@given(inventories(), queries, st.sampled_from((1, 2, 3)))
def test_s03_s04_s05_ingress_spans_of_any_width_equal_reference(
    inventory: Inventory, query: tuple[int | str, Protocol], tile: int
) -> None:
    """Ingress isolation (S03, S04) ANDed with egress (S05) span by span equals decide()."""
    port, protocol = query
    with patch.object(engine_compute, "_TILE", tile):
        matrix = compute_matrix(inventory, port=port, protocol=protocol)
    keys = [p.key for p in inventory.pods]
    for src in keys:
        for dst in keys:
            expected = decide(inventory, src, dst, port=port, protocol=protocol).allowed
            assert matrix.allowed(src, dst) == expected, (src, dst)


@given(inventories(max_cluster_policies=3), queries, st.sampled_from((1, 2, 3)))
def test_t01_tier_ingress_rows_in_spans_of_any_width_equal_reference(
    inventory: Inventory, query: tuple[int | str, Protocol], tile: int
) -> None:
    """With admin tiers every span is folded in (the tiers' ingress rows are applied span by
    span, including the last, partial one): still decide()'s answers."""
    port, protocol = query
    with patch.object(engine_compute, "_TILE", tile):
        matrix = compute_matrix(inventory, port=port, protocol=protocol)
    keys = [p.key for p in inventory.pods]
    for src in keys:
        for dst in keys:
            expected = decide(inventory, src, dst, port=port, protocol=protocol).allowed
            assert matrix.allowed(src, dst) == expected, (src, dst)
