"""Online experiments: the A/B framework, analysis, guardrails, sticky routing, canary rollouts and their stores."""

from __future__ import annotations

from rag_factory.experiments.analysis import ArmsAnalysis, Decision, MetricTest, analyze_arms, compare_metric, decide
from rag_factory.experiments.framework import DEFAULT_SALT, ABTestingFramework, ExperimentAnalysis
from rag_factory.experiments.guardrails import Guardrail, GuardrailCheck, check_guardrail
from rag_factory.experiments.memory_store import (
    ExperimentRecord,
    ExperimentStore,
    InMemoryExperimentStore,
    OutcomeBatch,
    OutcomeColumns,
)
from rag_factory.experiments.rollout import DEFAULT_STEPS, RolloutManager, RolloutPlan, RolloutState
from rag_factory.experiments.routing import assign_variant, routing_bucket
from rag_factory.experiments.sqlite_store import RequestAssignment, SQLiteExperimentStore

__all__ = [
    "DEFAULT_SALT",
    "DEFAULT_STEPS",
    "ABTestingFramework",
    "ArmsAnalysis",
    "Decision",
    "ExperimentAnalysis",
    "ExperimentRecord",
    "ExperimentStore",
    "Guardrail",
    "GuardrailCheck",
    "InMemoryExperimentStore",
    "MetricTest",
    "OutcomeBatch",
    "OutcomeColumns",
    "RequestAssignment",
    "RolloutManager",
    "RolloutPlan",
    "RolloutState",
    "SQLiteExperimentStore",
    "analyze_arms",
    "assign_variant",
    "check_guardrail",
    "compare_metric",
    "decide",
    "routing_bucket",
]
