"""Paired comparison of two systems: scipy agreement, known effects and edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from rag_factory.errors import InvalidArgumentError
from rag_factory.statistics.paired import PairedComparison, bootstrap_mean_ci, compare_paired


def _values(array: np.ndarray) -> dict[str, float]:
    return {f"q{i:03d}": float(v) for i, v in enumerate(array)}


@pytest.fixture
def noisy_pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    a = rng.random(60)
    return a, np.clip(a + rng.normal(0.02, 0.1, 60), 0, 1)


def test_pvalues_match_scipy(noisy_pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = noisy_pair
    result = compare_paired(_values(a), _values(b))
    assert result.t_pvalue == pytest.approx(stats.ttest_rel(b, a).pvalue, rel=1e-12)
    assert result.wilcoxon_pvalue == pytest.approx(stats.wilcoxon(b - a).pvalue, rel=1e-12)


def test_pvalues_match_scipy_with_zero_differences() -> None:
    # Metric values tie often (several queries score 1.0 under both systems).
    a = np.array([0, 0.5, 1, 1, 0.3, 0.2, 0.2, 0.0, 1, 1])
    b = np.array([0, 1, 1, 0.5, 0.4, 0.2, 0.6, 0.1, 1, 1])
    result = compare_paired(_values(a), _values(b))
    assert result.t_pvalue == pytest.approx(stats.ttest_rel(b, a).pvalue, rel=1e-12)
    assert result.wilcoxon_pvalue == pytest.approx(stats.wilcoxon(b - a).pvalue, rel=1e-12)
    assert result.ties == 5


def test_summary_statistics(noisy_pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = noisy_pair
    result = compare_paired(_values(a), _values(b), metric="ndcg@10")
    diffs = b - a
    assert (result.metric, result.n) == ("ndcg@10", 60)
    assert result.mean_a == pytest.approx(a.mean())
    assert result.mean_b == pytest.approx(b.mean())
    assert result.mean_diff == pytest.approx(diffs.mean())
    assert result.effect_size == pytest.approx(diffs.mean() / diffs.std(ddof=1))
    assert (result.wins, result.losses, result.ties) == ((diffs > 0).sum(), (diffs < 0).sum(), (diffs == 0).sum())


def test_clearly_better_system_is_significant() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(300)
    b = a + rng.normal(0.05, 0.05, 300)
    result = compare_paired(_values(a), _values(b))
    assert result.t_pvalue < 0.01
    assert result.wilcoxon_pvalue < 0.01
    assert 0 < result.ci_low < result.mean_diff < result.ci_high
    assert result.wins > result.losses


def test_equal_systems_ci_contains_zero() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(300)
    b = a + rng.normal(0.0, 0.05, 300)
    result = compare_paired(_values(a), _values(b))
    assert result.ci_low < 0 < result.ci_high


def test_identical_systems_do_not_differ() -> None:
    a = _values(np.linspace(0, 1, 20))
    result = compare_paired(a, a)
    assert (result.t_pvalue, result.wilcoxon_pvalue) == (1.0, 1.0)
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert (result.ties, result.effect_size) == (20, 0.0)


def test_constant_shift_has_zero_t_pvalue_and_no_effect_size() -> None:
    a = np.linspace(0, 0.5, 30)
    result = compare_paired(_values(a), _values(a + 0.1))
    assert result.t_pvalue == 0.0
    assert result.effect_size is None


def test_bootstrap_is_reproducible_with_a_seed(noisy_pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = noisy_pair
    first = compare_paired(_values(a), _values(b), seed=5)
    assert compare_paired(_values(a), _values(b), seed=5) == first
    assert compare_paired(_values(a), _values(b), seed=6).ci_low != first.ci_low


def test_bootstrap_ci_matches_normal_theory_for_large_samples() -> None:
    diffs = np.random.default_rng(2).normal(0.1, 1.0, 2000)
    low, high = bootstrap_mean_ci(diffs, n_resamples=4000)
    half_width = 1.96 * diffs.std(ddof=1) / np.sqrt(diffs.size)
    assert low == pytest.approx(diffs.mean() - half_width, abs=0.01)
    assert high == pytest.approx(diffs.mean() + half_width, abs=0.01)


def test_result_serialises_to_json(noisy_pair: tuple[np.ndarray, np.ndarray]) -> None:
    result = compare_paired(_values(noisy_pair[0]), _values(noisy_pair[1]), n_resamples=100)
    assert PairedComparison.model_validate(json.loads(result.model_dump_json())) == result


def test_different_queries_are_rejected_with_counts() -> None:
    a = {"q1": 0.1, "q2": 0.2, "q3": 0.3}
    b = {"q1": 0.1, "q4": 0.2}
    with pytest.raises(InvalidArgumentError, match="2 only in A, 1 only in B"):
        compare_paired(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
    ],
    ids=["no-resamples", "confidence-one", "confidence-zero"],
)
def test_bad_bootstrap_settings_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        compare_paired({"q1": 0.1, "q2": 0.2}, {"q1": 0.3, "q2": 0.4}, **kwargs)  # type: ignore[arg-type]


def test_single_query_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="at least 2 queries"):
        compare_paired({"q1": 0.1}, {"q1": 0.2})


def test_non_finite_value_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="finite"):
        compare_paired({"q1": 0.1, "q2": float("nan")}, {"q1": 0.2, "q2": 0.3})
