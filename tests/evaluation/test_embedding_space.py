"""Embedding-space metrics on constructed inputs with known answers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.evaluation.embedding_space import (
    alignment,
    effective_rank,
    isotropy,
    mean_pairwise_cosine,
    silhouette_score,
    uniformity,
)

RNG_SEED = 0


def _gaussian(n: int, dim: int, seed: int = RNG_SEED) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


def _two_clusters(n_per_cluster: int = 50, dim: int = 8) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(RNG_SEED)
    centre = np.zeros(dim)
    centre[0] = 10.0
    points = np.vstack(
        [centre + rng.normal(0, 0.1, (n_per_cluster, dim)), -centre + rng.normal(0, 0.1, (n_per_cluster, dim))]
    )
    return points, ["a"] * n_per_cluster + ["b"] * n_per_cluster


def test_isotropy_of_isotropic_gaussian_is_close_to_one() -> None:
    assert isotropy(_gaussian(5000, 16)) > 0.8


def test_isotropy_of_single_direction_is_close_to_zero() -> None:
    rng = np.random.default_rng(RNG_SEED)
    direction = np.zeros(16)
    direction[3] = 1.0
    # Every point lies (almost) on one line through the origin.
    points = rng.normal(0, 5, (500, 1)) * direction + rng.normal(0, 1e-3, (500, 16))
    assert isotropy(points) < 0.01


def test_isotropy_does_not_overflow_for_long_vectors() -> None:
    assert 0.0 <= isotropy(_gaussian(100, 4) * 1e4) <= 1.0


def test_alignment_of_identical_pairs_is_zero() -> None:
    x = _gaussian(20, 5)
    assert alignment(x, x) == 0.0


def test_alignment_of_opposite_unit_vectors_is_four() -> None:
    # ||x - (-x)||^2 = (2 ||x||)^2 = 4 on the unit sphere.
    x = _gaussian(20, 5)
    assert alignment(x, -x) == pytest.approx(4.0)


def test_alignment_normalises_rows_by_default() -> None:
    x, y = _gaussian(20, 5, seed=1), _gaussian(20, 5, seed=2)
    assert alignment(3 * x, y) == pytest.approx(alignment(x, y))
    assert alignment(3 * x, y, normalize=False) != pytest.approx(alignment(x, y, normalize=False))


def test_alignment_with_alpha_one_is_mean_distance() -> None:
    x = np.array([[0.0, 0.0], [1.0, 1.0]])
    y = np.array([[3.0, 4.0], [1.0, 1.0]])
    assert alignment(x, y, alpha=1, normalize=False) == pytest.approx((5.0 + 0.0) / 2)


def test_uniformity_of_antipodal_pair() -> None:
    # One pair at squared distance 4: log exp(-2 * 4) = -8.
    assert uniformity(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)


def test_uniformity_matches_brute_force_across_row_blocks() -> None:
    x = _gaussian(700, 6)  # more rows than one block
    units = x / np.linalg.norm(x, axis=1, keepdims=True)
    i, j = np.triu_indices(len(units), k=1)
    expected = math.log(np.mean(np.exp(-2.0 * ((units[i] - units[j]) ** 2).sum(axis=1))))
    assert uniformity(x) == pytest.approx(expected, abs=1e-9)


def test_uniformity_without_normalisation_does_not_underflow() -> None:
    far_apart = np.array([[0.0], [100.0], [200.0]])
    # Pair potentials exp(-2 * 1e4), exp(-2 * 1e4), exp(-2 * 4e4): log mean = -2e4 + log(2/3) to 1e-9.
    assert uniformity(far_apart, normalize=False) == pytest.approx(-2e4 + math.log(2 / 3))


def test_collapsed_space_is_less_uniform() -> None:
    spread = _gaussian(200, 8)
    collapsed = np.ones((200, 8)) + 0.05 * spread
    assert uniformity(collapsed) > uniformity(spread)


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        (np.ones((5, 3)), 1.0),
        (np.eye(4), 0.0),
        (np.array([[1.0, 0.0], [-1.0, 0.0]]), -1.0),
        (np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]), (2 * (1 / math.sqrt(2)) + 0.0 + 2 * (1 / math.sqrt(2))) / 6),
    ],
    ids=["identical", "orthonormal", "opposite", "hand-computed"],
)
def test_mean_pairwise_cosine(points: np.ndarray, expected: float) -> None:
    assert mean_pairwise_cosine(points) == pytest.approx(expected)


def test_mean_pairwise_cosine_matches_brute_force() -> None:
    x = _gaussian(50, 4) + 1.0
    units = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = units @ units.T
    assert mean_pairwise_cosine(x) == pytest.approx((cos.sum() - np.trace(cos)) / (50 * 49))


def test_effective_rank_of_orthonormal_basis_is_dimension() -> None:
    basis, _ = np.linalg.qr(_gaussian(12, 12))
    assert effective_rank(basis) == pytest.approx(12.0)


def test_effective_rank_of_rank_one_matrix_is_one() -> None:
    assert effective_rank(np.outer(np.arange(1.0, 6.0), np.arange(1.0, 4.0))) == pytest.approx(1.0)


def test_effective_rank_of_two_unequal_directions() -> None:
    # Singular values 3 and 1: p = (0.75, 0.25), erank = exp(-(0.75 ln 0.75 + 0.25 ln 0.25)).
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(np.diag([3.0, 1.0])) == pytest.approx(expected)


def test_effective_rank_centering_removes_a_shared_offset() -> None:
    x = _gaussian(100, 3) * 1e-3 + np.array([5.0, 5.0, 5.0])
    assert effective_rank(x) < 1.1
    assert effective_rank(x, center=True) > 2.5


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_silhouette_of_separated_clusters_is_close_to_one(distance: str) -> None:
    points, labels = _two_clusters()
    assert silhouette_score(points, labels, distance=distance) > 0.95  # type: ignore[arg-type]


def test_silhouette_of_mixed_labels_is_near_zero() -> None:
    points = _gaussian(200, 4)
    labels = [i % 2 for i in range(200)]
    assert abs(silhouette_score(points, labels)) < 0.05


def test_silhouette_hand_computed() -> None:
    # 1-D points 0, 1 (label a) and 4 (label b), euclidean:
    # s(0) = (4 - 1) / 4, s(1) = (3 - 1) / 3, s(4) = 0 (alone in its cluster).
    value = silhouette_score(np.array([[0.0], [1.0], [4.0]]), ["a", "a", "b"], distance="euclidean")
    assert value == pytest.approx((3 / 4 + 2 / 3 + 0) / 3)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_silhouette_agrees_with_scikit_learn(distance: str) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    points = rng.normal(size=(600, 5)) + np.repeat(rng.normal(0, 2, (3, 5)), 200, axis=0)
    labels = np.repeat([0, 1, 2], 200)
    labels[0] = 3  # a singleton cluster scores 0 in both
    expected = sklearn_metrics.silhouette_score(points, labels, metric=distance)
    assert silhouette_score(points, labels.tolist(), distance=distance) == pytest.approx(expected, abs=1e-9)  # type: ignore[arg-type]


VALIDATED: dict[str, Callable[[Any], float]] = {
    "isotropy": isotropy,
    "uniformity": uniformity,
    "mean_pairwise_cosine": mean_pairwise_cosine,
    "effective_rank": effective_rank,
    "alignment": lambda x: alignment(x, x),
    "silhouette": lambda x: silhouette_score(x, [0, 1] * (len(x) // 2) if np.ndim(x) else []),
}
BAD_INPUTS = {
    "one-dimensional": (np.ones(4), "2-D"),
    "single-row": (np.ones((1, 4)), "at least 2 rows"),
    "nan": (np.array([[1.0, math.nan], [1.0, 1.0]]), "NaN"),
    "infinite": (np.array([[1.0, math.inf], [1.0, 1.0]]), "NaN or infinite"),
}


@pytest.mark.parametrize("function", VALIDATED.values(), ids=list(VALIDATED))
@pytest.mark.parametrize(("bad", "message"), BAD_INPUTS.values(), ids=list(BAD_INPUTS))
def test_bad_shapes_are_rejected(function: Callable[[Any], float], bad: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        function(bad)


def test_zero_row_has_no_cosine() -> None:
    with pytest.raises(InvalidArgumentError, match="all-zero rows"):
        mean_pairwise_cosine(np.array([[0.0, 0.0], [1.0, 0.0]]))


def test_alignment_needs_matching_shapes() -> None:
    with pytest.raises(InvalidArgumentError, match="same shape"):
        alignment(np.ones((3, 2)), np.ones((4, 2)))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["a", "a", "a"], "2 to n-1 distinct labels"),
        (["a", "b", "c"], "2 to n-1 distinct labels"),
        (["a"], "1 labels for 3"),
    ],
    ids=["one-label", "all-distinct", "wrong-count"],
)
def test_silhouette_rejects_bad_labels(labels: list[str], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        silhouette_score(np.eye(3), labels)


def test_silhouette_rejects_unknown_distance() -> None:
    with pytest.raises(InvalidArgumentError, match="valid: cosine, euclidean"):
        silhouette_score(np.eye(3), ["a", "a", "b"], distance="manhattan")  # type: ignore[arg-type]
