"""Progress of an evaluation: the stages, one report per step, and the callback that receives them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Stage = Literal["loading_model", "embedding_corpus", "embedding_queries", "searching", "scoring", "done"]


@dataclass(frozen=True)
class EvaluationProgress:
    """One progress report: ``done`` of ``total`` units of ``stage`` (documents, queries, or 1 step)."""

    stage: Stage
    done: int
    total: int
    message: str = ""


ProgressCallback = Callable[[EvaluationProgress], None]
"""Called from the evaluating thread; an exception it raises aborts the evaluation (use it to cancel)."""


def notify(callback: ProgressCallback | None, stage: Stage, done: int, total: int, message: str = "") -> None:
    """Report progress to ``callback``, if there is one."""
    if callback is not None:
        callback(EvaluationProgress(stage, done, total, message))
