"""Online experiments: the A/B framework, analysis, guardrails, sticky routing, canary rollouts and their stores."""

from __future__ import annotations

from rag_factory.experiments.analysis import ArmsAnalysis, Decision, MetricTest, analyze_arms, compare_metric, decide
from rag_factory.experiments.arms import (
    ARMS,
    CANDIDATE,
    CONTROL,
    NO_DIFFERENCE,
    Arm,
    ResultName,
    ServedVariant,
    arm_of,
    arm_of_served_variant,
    result_name,
    served_variant,
)
from rag_factory.experiments.framework import DEFAULT_SALT, ABTestingFramework, ExperimentAnalysis
from rag_factory.experiments.guardrails import Guardrail, GuardrailCheck, check_guardrail, default_guardrails
from rag_factory.experiments.memory_store import InMemoryExperimentStore
from rag_factory.experiments.results import RecordedOutcome
from rag_factory.experiments.rollout import DEFAULT_STEPS, RolloutManager, RolloutPlan, RolloutState
from rag_factory.experiments.routing import assign_variant, routing_bucket
from rag_factory.experiments.sqlite_store import SQLiteExperimentStore
from rag_factory.experiments.store import (
    ExperimentRecord,
    ExperimentStatus,
    ExperimentStore,
    OutcomeBatch,
    OutcomeColumns,
    RequestAssignment,
)

__all__ = [
    "ARMS",
    "CANDIDATE",
    "CONTROL",
    "DEFAULT_SALT",
    "DEFAULT_STEPS",
    "NO_DIFFERENCE",
    "ABTestingFramework",
    "Arm",
    "ArmsAnalysis",
    "Decision",
    "ExperimentAnalysis",
    "ExperimentRecord",
    "ExperimentStatus",
    "ExperimentStore",
    "Guardrail",
    "GuardrailCheck",
    "InMemoryExperimentStore",
    "MetricTest",
    "OutcomeBatch",
    "OutcomeColumns",
    "RecordedOutcome",
    "RequestAssignment",
    "ResultName",
    "RolloutManager",
    "RolloutPlan",
    "RolloutState",
    "SQLiteExperimentStore",
    "ServedVariant",
    "analyze_arms",
    "arm_of",
    "arm_of_served_variant",
    "assign_variant",
    "check_guardrail",
    "compare_metric",
    "decide",
    "default_guardrails",
    "result_name",
    "routing_bucket",
    "served_variant",
]
