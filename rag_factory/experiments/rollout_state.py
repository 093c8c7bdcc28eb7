"""What a canary rollout is: its plan and state, stored as JSON, and read back even when older code wrote it."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from rag_factory.errors import describe_validation_error
from rag_factory.experiments.arms import CANDIDATE, Arm

DEFAULT_STEPS = (0.01, 0.05, 0.10, 0.25, 0.50, 1.0)
MAX_STEP_DURATION_S = 366 * 24 * 3600.0  # a year; anything longer is a mistake, not a canary
RolloutStatus = Literal["ramping", "promoted", "rolled_back", "stopped"]
# How much of a validation error a stored reason quotes.
_PROBLEM_CHARS = 200


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
    step_index: int = Field(default=0, ge=0, description="Index into plan.steps.")
    step_started_at: float = Field(description="Unix time the current step began.")
    status: RolloutStatus = Field(default="ramping", description="ramping, promoted, rolled_back or stopped.")
    reason: str = Field(default="", description="Why the last status change happened.")

    @model_validator(mode="after")
    def _check_step_index(self) -> RolloutState:
        if self.step_index >= len(self.plan.steps):
            raise ValueError(f"step_index {self.step_index} is past the plan's {len(self.plan.steps)} steps")
        return self

    @property
    def split(self) -> float:
        """Traffic share of B now."""
        return 0.0 if self.status in ("rolled_back", "stopped") else self.plan.steps[self.step_index]

    def model_for(self, arm: Arm) -> str:
        """The model that serves ``arm``: ``model_a_id`` for A, ``model_b_id`` for B."""
        return self.model_b_id if arm == CANDIDATE else self.model_a_id


def load_state(stored: str) -> tuple[RolloutState, str]:
    """Read a stored state; a plan that no longer validates is salvaged rather than refused.

    Older code stored plans that today's validation refuses (an infinite ``min_step_duration_s``
    became JSON ``null``). Such a state is read with the plan's invalid fields at their defaults and
    ``step_index`` kept within the plan, and the problem is returned: the caller must not keep
    ramping on a plan the operator never chose (the rollout manager rolls it back).

    Returns:
        The state, and ``""`` or a one-line description of what was invalid.

    Raises:
        ValueError: Not JSON, or fields other than the plan and the step are missing or invalid
            (pydantic's ``ValidationError`` is a ``ValueError``).
    """
    try:
        return RolloutState.model_validate_json(stored), ""
    except ValidationError as exc:
        problem = describe_validation_error(exc)[:_PROBLEM_CHARS]
    data = json.loads(stored)
    if not isinstance(data, dict):
        raise ValueError("a stored rollout state must be a JSON object")
    plan = _salvaged_plan(data.get("plan"))
    step = data.get("step_index")
    step_index = min(max(step, 0), len(plan.steps) - 1) if isinstance(step, int) else 0
    return RolloutState.model_validate({**data, "plan": plan, "step_index": step_index}), problem


def _salvaged_plan(stored: Any) -> RolloutPlan:
    """The stored plan with null or invalid fields at their defaults (all defaults if nothing is usable)."""
    fields = {k: v for k, v in stored.items() if v is not None} if isinstance(stored, dict) else {}
    try:
        return RolloutPlan.model_validate(fields)
    except ValidationError as exc:
        invalid = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    try:
        return RolloutPlan.model_validate({k: v for k, v in fields.items() if k not in invalid})
    except ValidationError:
        return RolloutPlan()
