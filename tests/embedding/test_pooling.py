"""Pooling strategies against hand-computed values, including padding that must be ignored."""

from __future__ import annotations

import numpy as np
import pytest

from rag_factory.models.embedding.models import PoolingStrategy
from rag_factory.models.embedding.pooling import l2_normalize, pool

# One text of two real tokens and one padding token whose values must never leak in.
TOKENS = np.array([[[1.0, 4.0], [3.0, 0.0], [100.0, 100.0]]], dtype=np.float32)
MASK = np.array([[1, 1, 0]], dtype=np.int64)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (PoolingStrategy.MEAN, [2.0, 2.0]),
        (PoolingStrategy.MAX, [3.0, 4.0]),
        (PoolingStrategy.CLS, [1.0, 4.0]),
        # weights 1 and 2: (1*1 + 2*3) / 3 and (1*4 + 2*0) / 3
        (PoolingStrategy.WEIGHTED_MEAN, [7.0 / 3.0, 4.0 / 3.0]),
    ],
    ids=str,
)
def test_pooling_matches_hand_computed_values(strategy: PoolingStrategy, expected: list[float]) -> None:
    assert np.allclose(pool(TOKENS, MASK, strategy)[0], expected)


def test_max_pooling_ignores_padding_even_when_all_real_values_are_negative() -> None:
    tokens = np.array([[[-5.0], [-2.0], [0.0]]], dtype=np.float32)
    assert pool(tokens, np.array([[1, 1, 0]]), PoolingStrategy.MAX)[0, 0] == -2.0


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])
