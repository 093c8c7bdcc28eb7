"""The two arms of an experiment, named once: ``Arm`` inside, and the name each edge gives an arm.

Inside the experiments (stores, framework, rollouts, routing) an arm is ``"A"`` (the control: the
alias's target when the experiment started) or ``"B"`` (the candidate).  Two edges name the arms
differently, and their names are part of contracts that clients read, so they are mapped here:

=======  ================================  ===========================================
arm      SPEC §2 ``ABTestResult``          served variant (``Route``, ``served_by``)
=======  ================================  ===========================================
``"A"``  ``"model_a"`` (winner, fields)    ``"control"``  (``VARIANT_CONTROL``)
``"B"``  ``"model_b"`` (winner, fields)    ``"candidate"`` (``VARIANT_CANDIDATE``)
=======  ================================  ===========================================

The ``candidate`` *alias* of the registry (where training puts a new version) is another concept.
"""

from __future__ import annotations

from typing import Final, Literal

from rag_factory.models.embedding.models import Winner

Arm = Literal["A", "B"]
ServedVariant = Literal["control", "candidate"]
ResultName = Literal["model_a", "model_b"]

CONTROL: Final[Arm] = "A"
CANDIDATE: Final[Arm] = "B"
ARMS: Final[tuple[Arm, Arm]] = (CONTROL, CANDIDATE)

# The SPEC result's winner when neither arm won.
NO_DIFFERENCE: Final[Winner] = "no_difference"

_SERVED_VARIANTS: Final[dict[Arm, ServedVariant]] = {CONTROL: "control", CANDIDATE: "candidate"}
_RESULT_NAMES: Final[dict[Arm, ResultName]] = {CONTROL: "model_a", CANDIDATE: "model_b"}
_ARMS_BY_VARIANT: Final[dict[str, Arm]] = {variant: arm for arm, variant in _SERVED_VARIANTS.items()}


def arm_of(is_b: bool) -> Arm:
    """The arm of a routing decision or a stored ``is_b`` flag."""
    return CANDIDATE if is_b else CONTROL


def served_variant(arm: Arm) -> ServedVariant:
    """The served variant of an arm: ``"control"`` for A, ``"candidate"`` for B (``served_by.variant``)."""
    return _SERVED_VARIANTS[arm]


def arm_of_served_variant(variant: str) -> Arm | None:
    """The arm a served variant names; ``None`` for ``""`` (not routed by an experiment) or any other name."""
    return _ARMS_BY_VARIANT.get(variant)


def result_name(arm: Arm) -> ResultName:
    """The SPEC §2 result's name of an arm: ``"model_a"`` for A, ``"model_b"`` for B (also a winner value)."""
    return _RESULT_NAMES[arm]
