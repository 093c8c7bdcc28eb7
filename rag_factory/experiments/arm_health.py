"""Whether an experiment's arms can still serve: versions deprecated, deleted or moved away during a test.

An experiment routes its alias's traffic to two fixed model ids. When the registry changes under it
(an operator deprecates or deletes an arm's version, or moves the alias by hand), the experiment
would keep routing users to a version that now fails, and never decide. The rollout manager asks
:func:`arm_problem` on every tick and ends the experiment with the reason:

* the **candidate** cannot serve (deprecated, deleted, or not a version of the experiment's model,
  which older code let through): roll back, so the alias keeps serving the control;
* the **control** cannot serve, or the alias no longer points at it: stop. Neither arm has earned
  the alias (the candidate's ramp is unfinished), so it is left as the registry has it, for the
  operator to decide; stopping also ends the routing that overrode their change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rag_factory.errors import NotFoundError, quoted
from rag_factory.models.embedding.registry import ModelRegistry

Ending = Literal["rolled_back", "stopped"]


@dataclass(frozen=True)
class ArmProblem:
    """Why an experiment must end, and how."""

    ending: Ending  # "rolled_back" when the candidate broke, "stopped" when the control did
    reason: str


def arm_problem(
    registry: ModelRegistry, model_name: str, alias: str, model_a_id: str, model_b_id: str
) -> ArmProblem | None:
    """What stops an experiment's arms from serving, or ``None`` while both can.

    Args:
        registry: Where the arms are registered.
        model_name: The experiment's model name.
        alias: The alias under test.
        model_a_id: The control (the alias's target when the experiment started).
        model_b_id: The candidate.
    """
    candidate = _unusable(registry, model_b_id, model_name)
    if candidate:
        return ArmProblem("rolled_back", f"candidate {candidate}; rolled back, the alias serves the control")
    control = _unusable(registry, model_a_id, model_name)
    if control:
        return ArmProblem("stopped", f"control {control}; stopped, the alias is left as it is")
    try:
        target = registry.get_alias(model_name, alias).model_id
    except NotFoundError:
        return ArmProblem("stopped", f"alias {model_name}@{alias} was removed; stopped")
    # The candidate as target is a promotion in progress (another process moves the alias first).
    if target not in (model_a_id, model_b_id):
        return ArmProblem(
            "stopped", f"alias {model_name}@{alias} was moved to {target!r} by hand; stopped, the alias is left there"
        )
    return None


def _unusable(registry: ModelRegistry, model_id: str, model_name: str) -> str:
    """Why ``model_id`` cannot serve as an arm of ``model_name`` ("" when it can)."""
    try:
        record = registry.get_record(model_id)
    except NotFoundError:
        return f"{model_id!r} was deleted"
    if record.deprecated:
        return f"{model_id!r} was deprecated: {quoted(record.deprecation_reason or 'no reason given')}"
    if record.metadata.model_name != model_name:
        return f"{model_id!r} is a version of {record.metadata.model_name!r}, not of {model_name!r}"
    return ""
