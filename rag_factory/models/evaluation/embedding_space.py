"""Geometry of an embedding space: isotropy, alignment, uniformity, silhouette, cosine, rank.

Every function takes embeddings as an ``(n, dim)`` array of finite numbers with at least two
rows.  Pairwise quantities are computed in row blocks, so ``n`` up to a few thousand needs
O(n * block) memory rather than O(n^2).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp

from rag_factory.arrays import FloatArray
from rag_factory.errors import InvalidArgumentError, describe_choices

Distance = Literal["cosine", "euclidean"]

_BLOCK_ROWS = 512


def _as_matrix(values: ArrayLike, name: str = "embeddings") -> FloatArray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise InvalidArgumentError(f"{name} must be a 2-D (n, dim) array, got shape {matrix.shape}")
    if matrix.shape[0] < 2 or matrix.shape[1] < 1:
        raise InvalidArgumentError(f"{name} needs at least 2 rows and 1 column, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise InvalidArgumentError(f"{name} contains NaN or infinite values")
    return matrix


def _unit_rows(matrix: FloatArray, name: str = "embeddings") -> FloatArray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if np.any(norms == 0.0):
        raise InvalidArgumentError(f"{name} has all-zero rows, whose cosine is undefined")
    units: FloatArray = matrix / norms
    return units


def _row_blocks(n: int) -> Iterator[slice]:
    for start in range(0, n, _BLOCK_ROWS):
        yield slice(start, min(start + _BLOCK_ROWS, n))


def _squared_distances(block: FloatArray, matrix: FloatArray) -> FloatArray:
    # ||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y, clipped at 0 against rounding.
    squared = (block**2).sum(axis=1)[:, None] + (matrix**2).sum(axis=1)[None, :] - 2.0 * block @ matrix.T
    clipped: FloatArray = np.maximum(squared, 0.0)
    return clipped


def isotropy(embeddings: ArrayLike) -> float:
    """Partition-function isotropy of Mu & Viswanath (2018), after Arora et al. (2016).

    ``Z(c) = sum_i exp(c . x_i)`` for a unit vector ``c``; a space is isotropic when ``Z`` is
    nearly constant over directions.  Following Mu & Viswanath ("All-but-the-Top", ICLR 2018,
    eq. 2), the minimum and maximum are taken over the eigenvectors of ``X^T X`` (uncentred,
    rows used as given), here with both signs ``±c`` so that the result does not depend on
    the arbitrary sign an eigen-solver returns:

    ``I(X) = min_c Z(c) / max_c Z(c)``, in ``(0, 1]``; 1 means perfectly isotropic.

    Args:
        embeddings: ``(n, dim)`` vectors; normalise them first if that is how they are used.

    Returns:
        The isotropy score.

    Raises:
        InvalidArgumentError: Not a finite 2-D array with at least two rows.
    """
    matrix = _as_matrix(embeddings)
    _, eigenvectors = np.linalg.eigh(matrix.T @ matrix)  # (dim, dim), one direction per column
    directions = np.concatenate([eigenvectors, -eigenvectors], axis=1)
    # log Z(c) through logsumexp, since exp(c . x) overflows for long vectors.
    log_z = logsumexp(matrix @ directions, axis=0)
    return float(np.exp(log_z.min() - log_z.max()))


def alignment(anchors: ArrayLike, positives: ArrayLike, alpha: float = 2.0, *, normalize: bool = True) -> float:
    """Alignment of positive pairs (Wang & Isola, ICML 2020, eq. 4).

    ``L_align = E_{(x, y) positive} ||f(x) - f(y)||_2^alpha``; lower is better, 0 when every
    pair maps to the same point.

    Args:
        anchors: ``(n, dim)`` embeddings ``f(x)``.
        positives: ``(n, dim)`` embeddings ``f(y)``; row ``i`` is the positive of anchor ``i``.
        alpha: Exponent on the distance (the paper uses 2).
        normalize: L2-normalise rows first, as the paper assumes features on the unit sphere.

    Returns:
        The mean distance to the power ``alpha``.

    Raises:
        InvalidArgumentError: Bad shapes, different shapes, ``alpha <= 0`` or zero rows with
            ``normalize``.
    """
    x = _as_matrix(anchors, "anchors")
    y = _as_matrix(positives, "positives")
    if x.shape != y.shape:
        raise InvalidArgumentError(f"anchors {x.shape} and positives {y.shape} must have the same shape")
    if alpha <= 0:
        raise InvalidArgumentError(f"alpha must be positive, got {alpha}")
    if normalize:
        x, y = _unit_rows(x, "anchors"), _unit_rows(y, "positives")
    return float(np.mean(np.linalg.norm(x - y, axis=1) ** alpha))


def uniformity(embeddings: ArrayLike, t: float = 2.0, *, normalize: bool = True) -> float:
    """Uniformity on the hypersphere (Wang & Isola, ICML 2020, eq. 5).

    ``L_uniform = log E_{i < j} exp(-t ||f(x_i) - f(x_j)||_2^2)`` over all distinct pairs;
    lower (more negative) is more uniform.  On the unit sphere it lies in ``[-4t, 0]``.

    Args:
        embeddings: ``(n, dim)`` vectors.
        t: Temperature of the Gaussian potential (the paper uses 2).
        normalize: L2-normalise rows first, as the paper assumes.

    Returns:
        The log of the mean Gaussian potential.

    Raises:
        InvalidArgumentError: Bad shape, ``t <= 0`` or zero rows with ``normalize``.
    """
    matrix = _as_matrix(embeddings)
    if t <= 0:
        raise InvalidArgumentError(f"t must be positive, got {t}")
    if normalize:
        matrix = _unit_rows(matrix)
    n = matrix.shape[0]
    partial: list[float] = []
    for rows in _row_blocks(n):
        exponents = -t * _squared_distances(matrix[rows], matrix)
        upper = np.arange(rows.start, rows.stop)[:, None] < np.arange(n)[None, :]  # pairs i < j only
        if upper.any():
            partial.append(float(logsumexp(exponents[upper])))
    pairs = n * (n - 1) / 2
    return float(logsumexp(partial) - np.log(pairs))


def mean_pairwise_cosine(embeddings: ArrayLike) -> float:
    """Mean cosine similarity between distinct rows.

    ``(1 / (n (n - 1))) * sum_{i != j} cos(x_i, x_j)``, computed in O(n dim) as
    ``(||sum_i u_i||^2 - n) / (n (n - 1))`` with ``u_i`` the unit rows.  Values near 1 reveal
    a collapsed (anisotropic) space.

    Args:
        embeddings: ``(n, dim)`` vectors with no all-zero row.

    Returns:
        The mean off-diagonal cosine similarity.

    Raises:
        InvalidArgumentError: Bad shape or an all-zero row.
    """
    units = _unit_rows(_as_matrix(embeddings))
    n = units.shape[0]
    total = units.sum(axis=0)
    return float((total @ total - n) / (n * (n - 1)))


def effective_rank(embeddings: ArrayLike, *, center: bool = False) -> float:
    """Effective rank of Roy & Vetterli (EUSIPCO 2007).

    With singular values ``s_k`` of ``X`` and ``p_k = s_k / sum_k s_k``:
    ``erank(X) = exp(-sum_k p_k log p_k)``, between 1 and ``min(n, dim)``; it equals ``dim``
    for an orthonormal basis.

    Args:
        embeddings: ``(n, dim)`` vectors.
        center: Subtract the mean row first (the paper uses the matrix as is).

    Returns:
        The effective rank.

    Raises:
        InvalidArgumentError: Bad shape, or a matrix that is all zeros.
    """
    matrix = _as_matrix(embeddings)
    if center:
        matrix = matrix - matrix.mean(axis=0)
    singular = np.linalg.svd(matrix, compute_uv=False)
    if singular.sum() == 0.0:
        raise InvalidArgumentError("effective rank is undefined for an all-zero matrix")
    p = singular / singular.sum()
    p = p[p > 0]  # 0 log 0 = 0
    return float(np.exp(-(p * np.log(p)).sum()))


def silhouette_score(embeddings: ArrayLike, labels: Sequence[Hashable], *, distance: Distance = "cosine") -> float:
    """Mean silhouette coefficient of labelled embeddings (Rousseeuw, 1987).

    For sample ``i`` with ``a(i)`` its mean distance to the other members of its cluster and
    ``b(i)`` the smallest mean distance to the members of another cluster:
    ``s(i) = (b(i) - a(i)) / max(a(i), b(i))``, and ``s(i) = 0`` for a sample alone in its
    cluster.  The score is the mean of ``s(i)``, in ``[-1, 1]``; near 1 means tight,
    well-separated clusters.

    Args:
        embeddings: ``(n, dim)`` vectors.
        labels: One label per row (any hashable values).
        distance: ``"cosine"`` (``1 - cos``) or ``"euclidean"``.

    Returns:
        The mean silhouette coefficient.

    Raises:
        InvalidArgumentError: Bad shape, a label count that is not ``n``, fewer than 2 or more
            than ``n - 1`` distinct labels, or an unknown distance.
    """
    matrix = _as_matrix(embeddings)
    n = matrix.shape[0]
    if len(labels) != n:
        raise InvalidArgumentError(f"got {len(labels)} labels for {n} embeddings")
    if distance not in ("cosine", "euclidean"):
        raise InvalidArgumentError(f"unknown distance {distance!r}; valid: {describe_choices(['cosine', 'euclidean'])}")
    index: dict[Hashable, int] = {}
    codes = np.array([index.setdefault(label, len(index)) for label in labels])
    n_clusters = len(index)
    if not 2 <= n_clusters <= n - 1:
        raise InvalidArgumentError(f"silhouette needs 2 to n-1 distinct labels, got {n_clusters} for n={n}")
    one_hot = np.zeros((n, n_clusters))
    one_hot[np.arange(n), codes] = 1.0
    sizes = one_hot.sum(axis=0)
    points = _unit_rows(matrix) if distance == "cosine" else matrix
    scores = np.empty(n)
    for rows in _row_blocks(n):
        block = points[rows]
        if distance == "cosine":
            dist = np.maximum(1.0 - block @ points.T, 0.0)
        else:
            dist = np.sqrt(_squared_distances(block, points))
        sums = dist @ one_hot  # (rows, clusters): total distance to each cluster
        own = codes[rows]
        own_size = sizes[own]
        # The self-distance is 0, so it adds nothing to the sum; exclude it from the count.
        a = np.divide(sums[np.arange(len(own)), own], own_size - 1, out=np.zeros(len(own)), where=own_size > 1)
        means = sums / sizes
        means[np.arange(len(own)), own] = np.inf
        b = means.min(axis=1)
        denominator = np.maximum(a, b)
        s = np.divide(b - a, denominator, out=np.zeros(len(own)), where=denominator > 0)
        scores[rows] = np.where(own_size > 1, s, 0.0)
    return float(scores.mean())
