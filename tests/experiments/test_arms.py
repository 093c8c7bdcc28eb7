"""The arms' one vocabulary maps onto the SPEC result's names and the served variants, and back."""

from __future__ import annotations

import pytest

from rag_factory.experiments.arms import (
    ARMS,
    CANDIDATE,
    CONTROL,
    Arm,
    arm_of,
    arm_of_served_variant,
    result_name,
    served_variant,
)
from rag_factory_contract.v1 import common_pb2


@pytest.mark.parametrize(
    ("arm", "is_b", "spec_name", "variant"),
    [("A", False, "model_a", "control"), ("B", True, "model_b", "candidate")],
    ids=["control", "candidate"],
)
def test_each_arm_has_one_name_at_each_edge(arm: Arm, is_b: bool, spec_name: str, variant: str) -> None:
    assert arm_of(is_b) == arm
    assert result_name(arm) == spec_name
    assert served_variant(arm) == variant
    assert arm_of_served_variant(variant) == arm


def test_the_arms_are_control_then_candidate() -> None:
    assert ARMS == (CONTROL, CANDIDATE) == ("A", "B")


@pytest.mark.parametrize("variant", ["", "A", "model_b", "treatment"], ids=["unrouted", "arm", "spec", "unknown"])
def test_anything_but_a_served_variant_names_no_arm(variant: str) -> None:
    assert arm_of_served_variant(variant) is None


def test_served_variants_match_the_wire_enum_names() -> None:
    for arm in ARMS:
        assert common_pb2.Variant.Value(f"VARIANT_{served_variant(arm).upper()}") > 0
