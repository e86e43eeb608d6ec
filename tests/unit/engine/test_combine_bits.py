"""The bit helpers of the engine's combination: the 8 x 8 block transpose and setting bits.

Why this module exists: ``transposed_bits`` folds every ingress span into the class matrix and
``set_bits`` places every narrow peer's bits; both are bit tricks whose mistakes would show only
as wrong verdicts in some byte column, so they are compared here with plain numpy on random
matrices of awkward shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

from kubefence.engine._atoms import set_bits
from kubefence.engine._combine import transposed_bits


@pytest.mark.parametrize(("rows", "width"), [(8, 1), (8, 3), (16, 8), (64, 13), (520, 40)])
def test_transposed_bits_equals_unpack_transpose_pack(rows: int, width: int) -> None:
    """Every bit [r, c] lands at [c, r], for random bits and the all-ones / single-bit cases."""
    rng = np.random.default_rng(rows * 1000 + width)
    cases = [
        rng.integers(0, 256, size=(rows, width), dtype=np.uint8),
        np.full((rows, width), 0xFF, dtype=np.uint8),
        np.zeros((rows, width), dtype=np.uint8),
    ]
    single = np.zeros((rows, width), dtype=np.uint8)
    single[rows - 3, width - 1] = 0x02  # bit [rows - 3, 8 * width - 2]
    cases.append(single)
    for packed in cases:
        expected = np.packbits(np.unpackbits(packed, axis=1).T, axis=1)
        assert np.array_equal(transposed_bits(packed), expected)


def test_set_bits_sets_exactly_the_pairs_given_repeats_included() -> None:
    """Bit [r, c] for each pair, repeats harmless, other bits untouched."""
    rng = np.random.default_rng(7)
    out = rng.integers(0, 256, size=(9, 5), dtype=np.uint8)
    dense = np.unpackbits(out, axis=1).astype(bool)
    rows = rng.integers(0, 9, size=60).astype(np.int64)
    cols = rng.integers(0, 40, size=60).astype(np.int64)
    rows, cols = np.r_[rows, rows[:5]], np.r_[cols, cols[:5]]
    dense[rows, cols] = True
    set_bits(out, rows, cols)
    assert np.array_equal(out, np.packbits(dense, axis=1))
