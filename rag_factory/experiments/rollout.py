"""Canary rollouts: ramp a candidate through traffic steps, promote it, or roll it back by itself."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable

import numpy as np
import pluggy
from pydantic import ValidationError

from rag_factory.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
    describe_choices,
    describe_validation_error,
    quoted,
)
from rag_factory.experiments.arm_health import arm_problem
from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.experiments.limits import ERROR_METRIC, LATENCY_METRIC, MAX_MINIMUM_SAMPLES, QUOTE_CHARS
from rag_factory.experiments.rollout_state import (
    DEFAULT_STEPS,
    MAX_STEP_DURATION_S,
    RolloutPlan,
    RolloutState,
    RolloutStatus,
    load_state,
)
from rag_factory.experiments.store import ExperimentStore
from rag_factory.hooks.events import RolloutEvent
from rag_factory.hooks.manager import notify_safely
from rag_factory.models.embedding.models import ABTestConfig
from rag_factory.models.embedding.registry import ModelRegistry

__all__ = [
    "DEFAULT_STEPS",
    "MAX_STEP_DURATION_S",
    "TRACKED_METRICS",
    "RolloutManager",
    "RolloutPlan",
    "RolloutState",
    "RolloutStatus",
]

logger = logging.getLogger(__name__)

# Metrics the sidecar records for every routed request, plus engagement reported by clients.
TRACKED_METRICS = ["engagement", LATENCY_METRIC, ERROR_METRIC]


class RolloutManager:
    """Runs canary rollouts over an :class:`ABTestingFramework` and its :class:`ExperimentStore`.

    The sidecar and the CLI give it the registry database's store, so rollouts survive restarts and
    every process sees them; an in-memory store serves a single process (and tests).

    Args:
        registry: Where aliases live (promotion moves one; rollback after promotion moves it back).
        framework: The A/B framework (its store must be ``store``).
        store: Experiment store; rollout state and request arms are kept there too.
        hooks: Plugin manager whose ``rag_factory_on_rollout`` observers hear every event.
        clock: Seconds since the epoch (tests pass a fake clock only for step durations).
        warm_up: Loads a model by id before it gets traffic, so its first requests do not pay the load
            time and trip the latency guardrail (the sidecar passes its engine's loader).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        framework: ABTestingFramework,
        store: ExperimentStore,
        *,
        hooks: pluggy.PluginManager | None = None,
        clock: Callable[[], float] = time.time,
        warm_up: Callable[[str], object] | None = None,
    ) -> None:
        """Create the manager and load every stored rollout.

        Raises:
            InvalidArgumentError: ``framework`` keeps its experiments in another store than ``store``.
        """
        if framework.store is not store:
            raise InvalidArgumentError("the framework must keep its experiments in the rollout manager's store")
        self.registry = registry
        self.framework = framework
        self.store = store
        self.hooks = hooks
        self.clock = clock
        self.warm_up = warm_up
        self._lock = threading.RLock()
        self._states: dict[str, RolloutState] = {}
        self._unreadable: set[str] = set()  # logged once each, not on every reload
        self.reload()

    def reload(self) -> None:
        """Re-read experiments and rollout states written by any process.

        A state that older code stored with a plan today's validation refuses is not an error for
        every caller: a ramping one is rolled back with the reason (the alias keeps serving the
        control; its plan, e.g. an "infinite" step that was stored as null, cannot be honoured),
        and a finished one is rewritten readable. A state that cannot be read at all is skipped,
        with one error in the log.
        """
        with self._lock:
            self.framework.reload()
            states: dict[str, RolloutState] = {}
            salvaged: list[tuple[RolloutState, str]] = []
            for name, stored in self.store.load_rollouts().items():
                try:
                    state, problem = load_state(stored)
                except ValueError as exc:
                    if name not in self._unreadable:
                        self._unreadable.add(name)
                        logger.error("experiment %s: stored rollout state is unreadable, ignored: %s", name, exc)
                    continue
                states[name] = state
                if problem:
                    salvaged.append((state, problem))
            self._states = states
            for state, problem in salvaged:
                self._repair(state, problem)

    def _repair(self, state: RolloutState, problem: str) -> None:
        logger.warning("experiment %s: stored rollout state was invalid (%s)", state.test_name, problem)
        if state.status == "ramping":
            self._end(state, "rolled_back", f"stored rollout state was invalid ({problem}); rolled back")
        else:
            self.store.save_rollout(state.test_name, state.model_dump_json())

    def states(self) -> list[RolloutState]:
        """Every rollout, running or finished."""
        with self._lock:
            return list(self._states.values())

    def state(self, test_name: str) -> RolloutState:
        """One rollout's state.

        Raises:
            NotFoundError: No rollout of that name.
        """
        with self._lock:
            found = self._states.get(test_name)
        if found is None:
            raise NotFoundError(
                f"experiment {quoted(test_name)} does not exist; experiments: {describe_choices(self._states)}",
                test_name=test_name[:QUOTE_CHARS],
            )
        return found

    def active_for(self, model_name: str, alias: str) -> RolloutState | None:
        """The ramping rollout on ``model_name@alias``, if any (called on every request)."""
        for state in self._states.values():
            if state.status == "ramping" and state.model_name == model_name and state.alias == alias:
                return state
        return None

    def start(
        self,
        test_name: str,
        model_name: str,
        candidate: str,
        *,
        alias: str = "production",
        plan: RolloutPlan | None = None,
        minimum_samples: int = 100,
        statistical_threshold: float = 0.05,
        initial_split: float | None = None,
    ) -> RolloutState:
        """Start an experiment between ``model_name@alias`` (A) and ``candidate`` (B), ramping B.

        Raises:
            ModelNotFoundError, AliasNotFoundError: A or B does not exist.
            ModelDeprecatedError: A or B is deprecated.
            FailedPreconditionError: Another experiment is running on the same alias.
            AlreadyExistsError: The experiment name is taken.
            InvalidArgumentError: A bad name, a split outside [0, 1], a threshold outside (0, 1),
                ``minimum_samples`` outside [1, 10,000,000], B the same model as A, or an arm that is
                not a version of ``model_name`` (it could never be promoted to its alias).
        """
        plan = plan or RolloutPlan()
        _check_start_arguments(test_name, minimum_samples, statistical_threshold, initial_split)
        with self._lock:
            self.reload()
            running = self.active_for(model_name, alias)
            if running is not None:
                raise FailedPreconditionError(
                    f"experiment {running.test_name!r} is already running on {model_name}@{alias}; "
                    "stop or finish it first",
                    test_name=running.test_name,
                )
            model_a = self.registry.get_alias(model_name, alias)
            if model_a.deprecated:
                self.registry.resolve(model_a.model_id)  # raises ModelDeprecatedError with the reason
            model_b = self.registry.resolve(candidate)
            if model_b.model_id == model_a.model_id:
                raise InvalidArgumentError(f"{quoted(candidate)} is already what {model_name}@{alias} points to")
            for arm, record in (("control", model_a), ("candidate", model_b)):
                if record.metadata.model_name != model_name:
                    raise InvalidArgumentError(
                        f"{arm} {record.model_id!r} is a version of {record.metadata.model_name!r}, not of "
                        f"{model_name!r}: an experiment compares versions of one model, and promotes one to its alias",
                        model_id=record.model_id,
                    )
            split = plan.steps[0] if initial_split is None else initial_split
            if self.warm_up is not None:
                try:
                    self.warm_up(model_b.model_id)
                except Exception as exc:  # the canary's error guardrail deals with a broken candidate
                    logger.warning("candidate %s failed to warm up: %s", model_b.model_id, exc)
            try:
                config = ABTestConfig(
                    test_name=test_name,
                    model_a_id=model_a.model_id,
                    model_b_id=model_b.model_id,
                    traffic_split=split,
                    minimum_samples=minimum_samples,
                    metrics_to_track=list(TRACKED_METRICS),
                    statistical_threshold=statistical_threshold,
                )
            except ValidationError as exc:
                raise InvalidArgumentError(f"invalid experiment: {describe_validation_error(exc)}") from exc
            self.framework.start_test(config)
            state = RolloutState(
                test_name=test_name,
                model_name=model_name,
                alias=alias,
                model_a_id=model_a.model_id,
                model_b_id=model_b.model_id,
                plan=plan,
                step_started_at=self.clock(),
            )
            self._save(state, "started", f"ramping {model_b.ref} against {model_a.ref} at {split:.0%}")
            return state

    def _save(self, state: RolloutState, action: str, reason: str) -> None:
        state.reason = reason
        self.store.save_rollout(state.test_name, state.model_dump_json())
        self._states[state.test_name] = state
        logger.info("experiment %s: %s (%s)", state.test_name, action, reason)
        if self.hooks is not None:
            event = RolloutEvent(
                experiment=state.test_name,
                action=action,  # type: ignore[arg-type]
                traffic_split=state.split,
                model_a_id=state.model_a_id,
                model_b_id=state.model_b_id,
                reason=reason,
            )
            notify_safely(self.hooks.hook.rag_factory_on_rollout, event=event)

    def _step_figures(self, state: RolloutState) -> tuple[float, int, int]:
        """B's error rate and error-sample count, and B's served requests, since the current step began."""
        columns = self.store.load_results(state.test_name)
        in_step = columns.is_b & (columns.timestamps >= state.step_started_at)
        errors = columns.metrics.get(ERROR_METRIC)
        with_error = in_step & ~np.isnan(errors) if errors is not None else np.zeros(len(columns), dtype=bool)
        error_samples = int(with_error.sum())
        error_rate = float(errors[with_error].mean()) if errors is not None and error_samples else 0.0
        latency = columns.metrics.get(LATENCY_METRIC)
        served = in_step & ~np.isnan(latency) if latency is not None else in_step
        return error_rate, error_samples, int(served.sum())

    def tick(self, test_name: str) -> RolloutState:
        """Check one ramping rollout: end it when an arm broke, roll back on a breach, advance or promote.

        An arm that can no longer serve ends the experiment first (see
        :mod:`rag_factory.experiments.arm_health`): a broken candidate is rolled back, a broken
        control or a moved alias stops it. A promotion that fails rolls the candidate back instead
        of failing again on every tick (a busy database is retried).
        """
        with self._lock:
            state = self.state(test_name)
            if state.status != "ramping":
                return state
            problem = arm_problem(self.registry, state.model_name, state.alias, state.model_a_id, state.model_b_id)
            if problem is not None:
                return self._end(state, problem.ending, problem.reason)
            error_rate, error_samples, samples = self._step_figures(state)
            if error_samples >= state.plan.min_error_samples and error_rate > state.plan.max_error_rate:
                limit = state.plan.max_error_rate
                return self.rollback(test_name, f"candidate error rate {error_rate:.1%} > {limit:.1%}")
            analysis = self.framework.analyze(test_name)
            # A guardrail protects users whatever the primary metric says, so a significant breach rolls
            # back even while engagement data is still too thin to pick a winner.
            enough = min(analysis.result.model_a_samples, analysis.result.model_b_samples) >= self._minimum(test_name)
            breaches = [c for c in analysis.decision.guardrail_checks if c.breached]
            if breaches and (enough or analysis.decision.verdict == "guardrail_breach"):
                described = "; ".join(
                    f"{c.guardrail.metric} {c.guardrail.statistic}: B {c.value_b:.4g} vs A {c.value_a:.4g} "
                    f"(p={c.p_value:.2g})"
                    for c in breaches
                )
                return self.rollback(test_name, f"guardrail breached: {described}")
            held = self.clock() - state.step_started_at
            if samples < state.plan.min_samples_per_step or held < state.plan.min_step_duration_s:
                return state
            if state.step_index + 1 >= len(state.plan.steps):
                return self._promote_or_roll_back(
                    state, f"all steps passed; last step held {held:.0f} s with {samples} samples"
                )
            return self._advance(state, state.step_index + 1, f"step passed with {samples} candidate requests")

    def _promote_or_roll_back(self, state: RolloutState, reason: str) -> RolloutState:
        try:
            return self.promote(state.test_name, reason)
        except UnavailableError:
            raise  # the database was busy: the next tick promotes
        except Exception as exc:  # it would fail the same way on every tick, with users still split
            logger.warning("experiment %s: promotion failed", state.test_name, exc_info=True)
            failure = f"{type(exc).__name__}: {exc}"[: QUOTE_CHARS * 3]
            return self._end(state, "rolled_back", f"promotion failed ({failure}); rolled back")

    def _minimum(self, test_name: str) -> int:
        config = self.framework.active_tests.get(test_name)
        return config.minimum_samples if config is not None else 1

    def tick_all(self) -> list[RolloutState]:
        """Reload, then tick every ramping rollout (the sidecar calls this periodically).

        One experiment whose check fails (logged; retried on the next call) does not keep the others
        from being checked. Returns the states of the rollouts that were checked.
        """
        self.reload()
        checked: list[RolloutState] = []
        for state in self.states():
            if state.status != "ramping":
                continue
            try:
                checked.append(self.tick(state.test_name))
            except Exception:
                logger.exception("experiment %s: checking the rollout failed", state.test_name)
        return checked

    def _advance(self, state: RolloutState, index: int, reason: str) -> RolloutState:
        state.step_index = index
        state.step_started_at = self.clock()
        self.framework.gradual_rollout(state.test_name, state.plan.steps[index])
        self._save(state, "ramped", f"{reason}; now {state.split:.0%}")
        return state

    def ramp(self, test_name: str, split: float | None = None) -> RolloutState:
        """Advance to the next step now, or to the first step at or above ``split``.

        Raises:
            InvalidArgumentError: ``split`` outside [0, 1].
            FailedPreconditionError: The rollout is not ramping.
        """
        with self._lock:
            state = self._ramping(test_name)
            if split is not None and (math.isnan(split) or not 0.0 <= split <= 1.0):
                raise InvalidArgumentError(f"traffic split must be within [0, 1], got {split}")
            if split is None:
                index = min(state.step_index + 1, len(state.plan.steps) - 1)
            else:
                index = next(i for i, step in enumerate(state.plan.steps) if step >= split - 1e-12)
            return self._advance(state, index, "ramped by hand")

    def _ramping(self, test_name: str) -> RolloutState:
        state = self.state(test_name)
        if state.status != "ramping":
            raise FailedPreconditionError(f"experiment {test_name!r} is {state.status}, not ramping")
        return state

    def promote(self, test_name: str, reason: str = "promoted by hand") -> RolloutState:
        """Point the alias at B and end the experiment; A stays available for ``rollback``."""
        with self._lock:
            state = self._ramping(test_name)
            self.registry.set_alias(state.model_name, state.alias, state.model_b_id)
            self._stop_test(test_name)
            state.status = "promoted"
            self._save(state, "promoted", reason)
            return state

    def rollback(self, test_name: str, reason: str = "rolled back by hand") -> RolloutState:
        """Send no more traffic to B; after a promotion, move the alias back to A.

        Raises:
            NotFoundError: No rollout of that name.
            FailedPreconditionError: It is already rolled back or stopped.
            InvalidArgumentError: ``reason`` is not one line of at most 500 printable characters (it is
                stored, and returned with the experiment ever after).
        """
        if len(reason) > MAX_REASON_CHARS or not reason.isprintable():
            raise InvalidArgumentError(
                f"reason {quoted(reason)} is not valid: use one line of at most {MAX_REASON_CHARS} printable characters"
            )
        with self._lock:
            state = self.state(test_name)
            if state.status == "promoted":
                self.registry.rollback(state.model_name, state.alias)
            elif state.status != "ramping":
                raise FailedPreconditionError(f"experiment {test_name!r} is already {state.status}")
            return self._end(state, "rolled_back", reason)

    def stop(self, test_name: str, reason: str = "stopped by hand") -> RolloutState:
        """End the experiment without changing the alias."""
        with self._lock:
            return self._end(self._ramping(test_name), "stopped", reason)

    def _end(self, state: RolloutState, status: RolloutStatus, reason: str) -> RolloutState:
        """Record ``status``; a ramping experiment first stops routing (B's share drops to 0)."""
        if state.status == "ramping":
            # NotFoundError: the test is not running (stopped by another process), nothing goes to B.
            with contextlib.suppress(NotFoundError):
                self.framework.gradual_rollout(state.test_name, 0.0)
            self._stop_test(state.test_name)
        state.status = status
        self._save(state, status, reason)
        return state

    def _stop_test(self, test_name: str) -> None:
        # NotFoundError: already stopped, e.g. by another process between its write and our reload.
        with contextlib.suppress(NotFoundError):
            self.framework.stop_test(test_name)


MAX_NAME_CHARS = 200  # as ABTestConfig.test_name
MAX_REASON_CHARS = 500


def _check_start_arguments(
    test_name: str, minimum_samples: int, statistical_threshold: float, initial_split: float | None
) -> None:
    """Refuse what no experiment can be started with, before anything is looked up."""
    if not 0 < len(test_name) <= MAX_NAME_CHARS or not test_name.isprintable() or test_name != test_name.strip():
        raise InvalidArgumentError(
            f"experiment name {quoted(test_name)} is not valid: use 1 to {MAX_NAME_CHARS} printable characters, "
            "without leading or trailing spaces"
        )
    if isinstance(minimum_samples, bool) or not 1 <= minimum_samples <= MAX_MINIMUM_SAMPLES:
        raise InvalidArgumentError(
            f"minimum_samples must be within [1, {MAX_MINIMUM_SAMPLES:,}], got {minimum_samples}"
        )
    if not 0.0 < statistical_threshold < 1.0:  # also refuses NaN, which compares false to everything
        raise InvalidArgumentError(f"statistical_threshold must be within (0, 1), got {statistical_threshold}")
    if initial_split is not None and not 0.0 <= initial_split <= 1.0:
        raise InvalidArgumentError(f"traffic split must be within [0, 1], got {initial_split}")
