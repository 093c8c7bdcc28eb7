"""``ABTestingFramework``: start A/B tests, route traffic, record outcomes, analyse and ramp (SPEC §2)."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from numbers import Real

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, Field

from rag_factory.arrays import FloatArray
from rag_factory.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    describe_choices,
    quoted,
)
from rag_factory.experiments.analysis import Decision, MetricTest, analyze_arms
from rag_factory.experiments.arms import CANDIDATE, CONTROL, Arm
from rag_factory.experiments.guardrails import Guardrail, default_guardrails
from rag_factory.experiments.limits import QUOTE_CHARS
from rag_factory.experiments.memory_store import InMemoryExperimentStore
from rag_factory.experiments.results import RecordedOutcome, recorded_outcomes, split_arms
from rag_factory.experiments.routing import assign_variant
from rag_factory.experiments.store import ExperimentRecord, ExperimentStore, OutcomeBatch
from rag_factory.models.embedding.models import ABTestConfig, ABTestResult, MetricComparison
from rag_factory.statistics import Direction, metric_direction, sample_ratio_mismatch

# The same constant in every replica, so they all route a key alike; set a deployment secret to keep
# assignments unguessable, and change it to reshuffle every user.
DEFAULT_SALT = "rag-factory-ab-v1"


class ExperimentAnalysis(BaseModel):
    """The seed-compatible result plus every statistic behind it."""

    result: ABTestResult = Field(description="What analyze_test returns.")
    tests: dict[str, MetricTest] = Field(description="Per-metric Welch, rank, bootstrap and mSPRT figures.")
    decision: Decision = Field(description="Winner, verdict, reasons, Holm p-values, guardrails, SRM.")


class _ResultsView(Mapping[str, list[RecordedOutcome]]):
    """``results[name]`` as a list of dicts, materialised from the columns only when read."""

    def __init__(self, framework: ABTestingFramework) -> None:
        self._framework = framework

    def __getitem__(self, test_name: str) -> list[RecordedOutcome]:
        config = self._framework._record(test_name).config
        return recorded_outcomes(config, self._framework.store.load_results(test_name))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._framework._records))

    def __len__(self) -> int:
        return len(self._framework._records)


class ABTestingFramework:
    """Run A/B tests between a control model (A) and a candidate (B).

    Routing is a salted stable hash of the routing key (see :mod:`.routing`), so replicas agree.
    Outcomes are stored as columns in an :class:`ExperimentStore` (in memory unless one is given),
    which keeps analysis of millions of outcomes fast.  ``analyze_test`` compares every recorded
    metric (Welch + Mann–Whitney + bootstrap CI, Holm across metrics, optional always-valid mSPRT)
    and decides on the primary metric with guardrails and a sample-ratio-mismatch check.

    ``results[name]`` is materialised from the columns on each access (a list of
    :class:`RecordedOutcome`); appending to that list records nothing, use ``record_result``.
    ``active_tests`` holds the running configs; change the split through ``gradual_rollout`` so the
    store sees it.
    """

    def __init__(
        self,
        *,
        store: ExperimentStore | None = None,
        sequential: bool = False,
        primary_metric: str | None = None,
        directions: Mapping[str, Direction] | None = None,
        guardrails: Sequence[Guardrail] = (),
        use_default_guardrails: bool = True,
        seed: int | None = None,
        salt: str = DEFAULT_SALT,
        n_resamples: int = 2000,
    ) -> None:
        """Create a framework, reloading every test the store already holds.

        Args:
            store: Where tests and outcomes live; a fresh in-memory store by default.
            sequential: Decide on always-valid mSPRT p-values, so analysing after every batch is safe.
            primary_metric: The deciding metric; by default the first tracked "higher is better" one.
            directions: Direction overrides by metric name ("higher" or "lower").
            guardrails: Extra guardrails (e.g. from ``rag_factory_`` hooks).
            use_default_guardrails: Also apply :func:`default_guardrails` to the tracked metrics.
            seed: Seed for keyless routing and bootstrap resampling (reproducible runs).
            salt: Salt of the routing hash; must be the same in every replica.
            n_resamples: Bootstrap resamples per metric.

        Raises:
            InvalidArgumentError: A direction that is not "higher" or "lower", or a negative resample count.
        """
        bad = {k: v for k, v in (directions or {}).items() if v not in ("higher", "lower")}
        if bad or n_resamples < 0:
            raise InvalidArgumentError(f"directions must be 'higher' or 'lower' and n_resamples >= 0; got {bad}")
        self._store: ExperimentStore = store if store is not None else InMemoryExperimentStore()
        self._sequential = sequential
        self._primary_metric = primary_metric
        self._directions = dict(directions or {})
        self._guardrails = list(guardrails)
        self._use_default_guardrails = use_default_guardrails
        self._seed = seed
        self._salt = salt
        self._n_resamples = n_resamples
        self._rng = random.Random(seed) if seed is not None else None
        self._lock = threading.Lock()
        self._sequential_p: dict[str, dict[str, float]] = {}
        self._records = {r.config.test_name: r for r in self._store.load_tests()}
        self.active_tests: dict[str, ABTestConfig] = {
            name: r.config for name, r in self._records.items() if r.status == "running"
        }
        self.results: Mapping[str, list[RecordedOutcome]] = _ResultsView(self)

    def reload(self) -> None:
        """Re-read tests from the store: another process (a replica, the CLI) may have changed them."""
        with self._lock:
            self._records = {r.config.test_name: r for r in self._store.load_tests()}
            self.active_tests.clear()
            self.active_tests.update({n: r.config for n, r in self._records.items() if r.status == "running"})

    @property
    def store(self) -> ExperimentStore:
        """Where tests and outcomes live."""
        return self._store

    def _not_found(self, test_name: str, state: str) -> NotFoundError:
        return NotFoundError(
            f"A/B test {quoted(test_name)} {state}; active tests: {describe_choices(self.active_tests)}",
            test_name=test_name[:QUOTE_CHARS],
        )

    def _record(self, test_name: str) -> ExperimentRecord:
        record = self._records.get(test_name)
        if record is None:
            raise self._not_found(test_name, "does not exist")
        return record

    def _active(self, test_name: str) -> ABTestConfig:
        config = self.active_tests.get(test_name)
        if config is None:
            raise self._not_found(test_name, "is not running")
        return config

    def start_test(self, config: ABTestConfig) -> None:
        """Start a test; ``active_tests[config.test_name]`` holds a copy of ``config``.

        Raises:
            AlreadyExistsError: A test of that name exists (running or stopped).
        """
        with self._lock:
            if config.test_name in self._records:
                raise AlreadyExistsError(
                    f"A/B test {config.test_name!r} already exists; choose another name",
                    test_name=config.test_name,
                )
            record = ExperimentRecord(config=config.model_copy(deep=True), started_at=datetime.now(UTC))
            self._store.save_test(record)
            self._records[config.test_name] = record
            self.active_tests[config.test_name] = record.config

    def should_use_model_b(self, test_name: str, routing_key: str | None = None) -> bool:
        """Whether this request goes to B: sticky per ``routing_key``, random when it is ``None``.

        Raises:
            NotFoundError: The test is not running.
        """
        config = self.active_tests.get(test_name)
        if config is None:
            raise self._not_found(test_name, "is not running")
        return assign_variant(test_name, self._salt, config.traffic_split, routing_key, self._rng)

    def record_result(
        self, test_name: str, model_id: str, metrics: Mapping[str, float], *, request_id: str | None = None
    ) -> None:
        """Record one outcome (e.g. ``{"latency": 12.5, "accuracy": 1.0}``) for the model that served it.

        Args:
            test_name: The test.
            model_id: Model A or model B of the test.
            metrics: Metric name -> value.
            request_id: The request this outcome reports on; the store keeps at most one outcome per id.

        Raises:
            NotFoundError: Unknown test.
            FailedPreconditionError: The test is stopped.
            InvalidArgumentError: ``model_id`` is neither A nor B, or a value is not a finite number;
                nothing is recorded then.
            AlreadyExistsError: An outcome for ``request_id`` was already recorded; nothing is recorded.
        """
        record, arm = self._writable(test_name, model_id)
        columns: dict[str, FloatArray] = {}
        for name, value in metrics.items():
            # Exact float first: the common case, and far cheaper than the ABC check.
            if not (type(value) is float or isinstance(value, Real)) or not math.isfinite(value):
                raise InvalidArgumentError(
                    f"metric {name!r} has value {value!r}; metric values must be finite numbers; nothing was recorded",
                    test_name=test_name,
                )
            columns[_metric_name(name)] = np.array([value], dtype=np.float64)
        self._store.append_results(test_name, _batch(record.config, arm, columns, 1), request_id=request_id)

    def record_results(
        self, test_name: str, model_id: str, metrics: Mapping[str, ArrayLike], *, count: int | None = None
    ) -> None:
        """Record a batch of outcomes for one model: one equally long column per metric.

        Args:
            test_name: The test.
            model_id: Model A or model B of the test.
            metrics: Metric name -> values, one per outcome.
            count: Number of outcomes; needed only when ``metrics`` is empty.

        Raises:
            NotFoundError: Unknown test.
            FailedPreconditionError: The test is stopped.
            InvalidArgumentError: Unknown model, ragged columns or non-finite values; nothing is recorded.
        """
        record, arm = self._writable(test_name, model_id)
        columns: dict[str, FloatArray] = {}
        for name, values in metrics.items():
            try:
                columns[_metric_name(name)] = np.asarray(values, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise InvalidArgumentError(f"metric {name!r} values are not numbers") from exc
        sizes = {c.size for c in columns.values()} | ({count} if count is not None else set())
        if len(sizes) != 1:
            raise InvalidArgumentError(f"metric columns must have equal lengths, got {sorted(sizes)}")
        bad = [name for name, c in columns.items() if not np.isfinite(c).all()]
        if bad:
            raise InvalidArgumentError(f"metrics {bad} contain non-finite values; nothing was recorded")
        self._store.append_results(test_name, _batch(record.config, arm, columns, sizes.pop()))

    def _writable(self, test_name: str, model_id: str) -> tuple[ExperimentRecord, Arm]:
        record = self._record(test_name)
        if record.status != "running":
            raise FailedPreconditionError(f"A/B test {test_name!r} is stopped; start a new test", test_name=test_name)
        config = record.config
        if model_id == config.model_a_id:
            return record, CONTROL
        if model_id == config.model_b_id:
            return record, CANDIDATE
        raise InvalidArgumentError(
            f"model {model_id!r} is not in A/B test {test_name!r}; "
            f"expected {config.model_a_id!r} (A) or {config.model_b_id!r} (B)",
            test_name=test_name,
        )

    def gradual_rollout(self, test_name: str, new_split: float) -> float:
        """Set the share of traffic sent to B, clamped to [0, 1]; returns the split now in force.

        Keyed routing is monotone in the split: raising it only moves keys from A to B.

        Raises:
            NotFoundError: The test is not running.
            InvalidArgumentError: ``new_split`` is NaN.
        """
        if math.isnan(new_split):
            raise InvalidArgumentError("traffic split must be a number in [0, 1], got NaN")
        split = min(1.0, max(0.0, float(new_split)))
        with self._lock:
            config = self._active(test_name)
            self._store.update_split(test_name, split)
            config.traffic_split = split
        return split

    def stop_test(self, test_name: str) -> None:
        """Stop routing to a test; its outcomes stay available to ``analyze_test`` and ``results``.

        Raises:
            NotFoundError: The test is not running.
        """
        with self._lock:
            self._active(test_name)
            now = datetime.now(UTC)
            self._store.set_status(test_name, "stopped", now)
            record = self._records[test_name]
            record.status, record.stopped_at = "stopped", now
            del self.active_tests[test_name]

    def analyze_test(self, test_name: str) -> ABTestResult:
        """Compare the arms and pick a winner ("model_a", "model_b" or "no_difference").

        See :meth:`analyze` for the statistics.

        Raises:
            NotFoundError: Unknown test.
        """
        return self.analyze(test_name).result

    def analyze(self, test_name: str) -> ExperimentAnalysis:
        """Analyse a test and return the result with every statistic behind it.

        Each recorded metric is compared (tracked metrics first).  ``p_values`` are Holm-adjusted
        across metrics (always-valid mSPRT p-values in sequential mode, Welch's otherwise), so compare
        them directly with ``statistical_threshold``; intervals are ``1 - threshold`` bootstrap CIs of
        ``mean(B) - mean(A)``.  The sample-ratio check expects ``n_B ~ sum of the splits in force``
        when each outcome was recorded, so ramps do not trip it.

        Raises:
            NotFoundError: Unknown test.
        """
        record = self._record(test_name)
        config = record.config
        columns = self._store.load_results(test_name)
        samples_a, samples_b = split_arms(columns, config.metrics_to_track)
        n_a, n_b = columns.counts()
        expected = float(columns.splits.mean()) if len(columns) else config.traffic_split
        srm = sample_ratio_mismatch(n_a, n_b, min(1.0, max(0.0, expected)))
        guardrails = default_guardrails(list(samples_a)) if self._use_default_guardrails else []
        primary = self._primary_metric or self._default_primary(config, list(samples_a))
        analysis = analyze_arms(
            samples_a, samples_b, primary_metric=primary, minimum_samples=config.minimum_samples,
            alpha=config.statistical_threshold, directions=self._directions,
            guardrails=[*guardrails, *self._guardrails], sample_ratio=srm, n_resamples=self._n_resamples,
            rng=np.random.default_rng(self._seed), sequential=self._sequential,
            previous_sequential_p=self._sequential_p.get(test_name),
        )  # fmt: skip
        if self._sequential:
            self._sequential_p[test_name] = {
                name: t.sequential_p for name, t in analysis.tests.items() if t.sequential_p is not None
            }
        decision = analysis.decision
        result = ABTestResult(
            test_name=test_name, model_a_id=config.model_a_id, model_b_id=config.model_b_id,
            model_a_samples=n_a, model_b_samples=n_b,
            metrics={
                name: MetricComparison(model_a=t.mean_a, model_b=t.mean_b, improvement=t.improvement)
                for name, t in analysis.tests.items()
            },
            p_values=decision.adjusted_p_values,
            confidence_intervals={name: (t.ci_low, t.ci_high) for name, t in analysis.tests.items()},
            winner=decision.winner, recommendation=_recommendation(decision, config),
            start_time=record.started_at, end_time=datetime.now(UTC),
        )  # fmt: skip
        return ExperimentAnalysis(result=result, tests=analysis.tests, decision=decision)

    def _default_primary(self, config: ABTestConfig, recorded: Sequence[str]) -> str:
        # The first tracked "higher is better" metric (accuracy, recall@5...), then any recorded one.
        for name in [*config.metrics_to_track, *recorded]:
            if metric_direction(name, self._directions) == "higher":
                return name
        return recorded[0] if recorded else config.metrics_to_track[0]


def _metric_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"metric names must be non-empty strings, got {name!r}")
    return name


def _batch(config: ABTestConfig, arm: Arm, columns: dict[str, FloatArray], n: int) -> OutcomeBatch:
    return OutcomeBatch(
        arm=arm,
        timestamps=np.full(n, time.time()),
        splits=np.full(n, config.traffic_split),
        metrics=columns,
    )


def _recommendation(decision: Decision, config: ABTestConfig) -> str:
    lead = {
        "not_enough_data": "Keep the test running.",
        "sample_ratio_mismatch": "Do not trust this test: traffic did not split as configured.",
        "guardrail_breach": f"Keep model A ({config.model_a_id}) and roll back B: a guardrail was breached.",
        "b_better": f"Roll out model B ({config.model_b_id}).",
        "a_better": f"Keep model A ({config.model_a_id}); B is worse.",
        "no_significant_difference": f"No significant difference; keep model A ({config.model_a_id}) "
        "or collect more data.",
    }[decision.verdict]
    return " ".join([lead, *(r[0].upper() + r[1:] + "." for r in decision.reasons)])
