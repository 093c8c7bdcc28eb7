"""Canary rollouts: ramp a candidate through traffic steps, promote it, or roll it back by itself."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
import pluggy
from pydantic import BaseModel, Field, field_validator

from rag_factory.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError, describe_choices
from rag_factory.experiments.arms import CANDIDATE, Arm
from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.experiments.store import ExperimentStore
from rag_factory.hooks.events import RolloutEvent
from rag_factory.hooks.manager import notify_safely
from rag_factory.models.embedding.models import ABTestConfig
from rag_factory.models.embedding.registry import ModelRegistry

logger = logging.getLogger(__name__)

DEFAULT_STEPS = (0.01, 0.05, 0.10, 0.25, 0.50, 1.0)
# Metrics the sidecar records for every routed request, plus engagement reported by clients.
TRACKED_METRICS = ["engagement", "latency_ms", "error"]
RolloutStatus = Literal["ramping", "promoted", "rolled_back", "stopped"]


MAX_STEP_DURATION_S = 366 * 24 * 3600.0  # a year; anything longer is a mistake, not a canary


class RolloutPlan(BaseModel):
    """How a candidate is ramped, and when it is rolled back."""

    steps: list[float] = Field(default_factory=lambda: list(DEFAULT_STEPS), description="Traffic shares to B.")
    min_samples_per_step: int = Field(default=100, gt=0, description="B requests needed before advancing.")
    # Finite and bounded: an infinite duration used to be stored as JSON null, which no later load could read.
    min_step_duration_s: float = Field(
        default=300.0, ge=0, le=MAX_STEP_DURATION_S, allow_inf_nan=False, description="Time spent on a step."
    )
    max_error_rate: float = Field(
        default=0.02, ge=0, le=1, allow_inf_nan=False, description="B error rate that triggers rollback."
    )
    min_error_samples: int = Field(default=20, gt=0, description="B requests before the error rate counts.")

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, steps: list[float]) -> list[float]:
        if not steps or any(not 0 < s <= 1 for s in steps) or steps != sorted(steps) or steps[-1] != 1.0:
            raise ValueError("steps must rise strictly within (0, 1] and end at 1.0, e.g. [0.05, 0.25, 1.0]")
        return steps


class RolloutState(BaseModel):
    """Where one rollout stands; stored as JSON so it survives restarts."""

    test_name: str = Field(description="Experiment name.")
    model_name: str = Field(description="Model name whose alias is being rolled out.")
    alias: str = Field(description="Alias under test, e.g. 'production'.")
    model_a_id: str = Field(description="The alias's target when the rollout started (control).")
    model_b_id: str = Field(description="The candidate.")
    plan: RolloutPlan = Field(description="Ramp schedule and rollback thresholds.")
    step_index: int = Field(default=0, description="Index into plan.steps.")
    step_started_at: float = Field(description="Unix time the current step began.")
    status: RolloutStatus = Field(default="ramping", description="ramping, promoted, rolled_back or stopped.")
    reason: str = Field(default="", description="Why the last status change happened.")

    @property
    def split(self) -> float:
        """Traffic share of B now."""
        return 0.0 if self.status in ("rolled_back", "stopped") else self.plan.steps[self.step_index]

    def model_for(self, arm: Arm) -> str:
        """The model that serves ``arm``: ``model_a_id`` for A, ``model_b_id`` for B."""
        return self.model_b_id if arm == CANDIDATE else self.model_a_id


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
        self.reload()

    def reload(self) -> None:
        """Re-read experiments and rollout states written by any process."""
        with self._lock:
            self.framework.reload()
            self._states = {n: RolloutState.model_validate_json(s) for n, s in self.store.load_rollouts().items()}

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
                f"experiment {test_name!r} does not exist; experiments: {describe_choices(self._states)}",
                test_name=test_name,
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
            InvalidArgumentError: A split outside [0, 1], a threshold outside (0, 1), or B is the same model as A.
        """
        plan = plan or RolloutPlan()
        if initial_split is not None and not 0.0 <= initial_split <= 1.0:
            raise InvalidArgumentError(f"traffic split must be within [0, 1], got {initial_split}")
        if not 0.0 < statistical_threshold < 1.0:  # also refuses NaN, which compares false to everything
            raise InvalidArgumentError(f"statistical_threshold must be within (0, 1), got {statistical_threshold}")
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
                raise InvalidArgumentError(f"{candidate!r} is already what {model_name}@{alias} points to")
            split = plan.steps[0] if initial_split is None else initial_split
            if self.warm_up is not None:
                try:
                    self.warm_up(model_b.model_id)
                except Exception as exc:  # the canary's error guardrail deals with a broken candidate
                    logger.warning("candidate %s failed to warm up: %s", model_b.model_id, exc)
            self.framework.start_test(
                ABTestConfig(
                    test_name=test_name,
                    model_a_id=model_a.model_id,
                    model_b_id=model_b.model_id,
                    traffic_split=split,
                    minimum_samples=minimum_samples,
                    metrics_to_track=list(TRACKED_METRICS),
                    statistical_threshold=statistical_threshold,
                )
            )
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
        errors = columns.metrics.get("error")
        with_error = in_step & ~np.isnan(errors) if errors is not None else np.zeros(len(columns), dtype=bool)
        error_samples = int(with_error.sum())
        error_rate = float(errors[with_error].mean()) if errors is not None and error_samples else 0.0
        latency = columns.metrics.get("latency_ms")
        served = in_step & ~np.isnan(latency) if latency is not None else in_step
        return error_rate, error_samples, int(served.sum())

    def tick(self, test_name: str) -> RolloutState:
        """Check one ramping rollout: roll back on a breach, advance or promote when a step is done."""
        with self._lock:
            state = self.state(test_name)
            if state.status != "ramping":
                return state
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
                return self.promote(test_name, f"all steps passed; last step held {held:.0f} s with {samples} samples")
            return self._advance(state, state.step_index + 1, f"step passed with {samples} candidate requests")

    def _minimum(self, test_name: str) -> int:
        config = self.framework.active_tests.get(test_name)
        return config.minimum_samples if config is not None else 1

    def tick_all(self) -> list[RolloutState]:
        """Reload, then tick every ramping rollout (the sidecar calls this periodically)."""
        self.reload()
        return [self.tick(s.test_name) for s in self.states() if s.status == "ramping"]

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
            self.framework.stop_test(test_name)
            state.status = "promoted"
            self._save(state, "promoted", reason)
            return state

    def rollback(self, test_name: str, reason: str = "rolled back by hand") -> RolloutState:
        """Send no more traffic to B; after a promotion, move the alias back to A."""
        with self._lock:
            state = self.state(test_name)
            if state.status == "ramping":
                self.framework.gradual_rollout(test_name, 0.0)
                self.framework.stop_test(test_name)
            elif state.status == "promoted":
                self.registry.rollback(state.model_name, state.alias)
            else:
                raise FailedPreconditionError(f"experiment {test_name!r} is already {state.status}")
            state.status = "rolled_back"
            self._save(state, "rolled_back", reason)
            return state

    def stop(self, test_name: str) -> RolloutState:
        """End the experiment without changing the alias."""
        with self._lock:
            state = self._ramping(test_name)
            self.framework.stop_test(test_name)
            state.status = "stopped"
            self._save(state, "stopped", "stopped by hand")
            return state
