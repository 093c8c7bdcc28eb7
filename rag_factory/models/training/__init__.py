"""Fine-tuning: training data, splits, hard-negative mining, strategies, the trainer, export and registration.

``fine_tune`` returns a :class:`FineTuneResult`; registering it is a separate step
(``register_fine_tuned``), composed with training by ``rag_factory.jobs.publishing``.
"""

from __future__ import annotations

from rag_factory.models.training.config import DEFAULT_RECIPE, FineTuneConfig, SearchSpace
from rag_factory.models.training.events import TrainingEvent, TrainingEventSink
from rag_factory.models.training.examples import (
    TrainingData,
    deduplicate,
    from_beir,
    load_llamaindex_json,
    load_query_logs,
    save_llamaindex_json,
)
from rag_factory.models.training.mining import mine_hard_negatives
from rag_factory.models.training.registration import ensure_base_registered, register_fine_tuned
from rag_factory.models.training.result import FineTuneResult, RunCorpusVectors, RunInputs
from rag_factory.models.training.splits import check_disjoint, split_by_query
from rag_factory.models.training.strategies import STRATEGIES, Strategy, get_strategy, make_student
from rag_factory.models.training.trainer import fine_tune

__all__ = [
    "DEFAULT_RECIPE",
    "STRATEGIES",
    "FineTuneConfig",
    "FineTuneResult",
    "RunCorpusVectors",
    "RunInputs",
    "SearchSpace",
    "Strategy",
    "TrainingData",
    "TrainingEvent",
    "TrainingEventSink",
    "check_disjoint",
    "deduplicate",
    "ensure_base_registered",
    "fine_tune",
    "from_beir",
    "get_strategy",
    "load_llamaindex_json",
    "load_query_logs",
    "make_student",
    "mine_hard_negatives",
    "register_fine_tuned",
    "save_llamaindex_json",
    "split_by_query",
]
