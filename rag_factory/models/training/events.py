"""Progress events of a fine-tuning run, and the trainer callbacks that emit them and honour cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

EventKind = Literal["mining", "step", "evaluation", "export", "registered", "done"]


class TrainingEvent(BaseModel):
    """One progress report; the sidecar streams these to clients."""

    model_config = ConfigDict(frozen=True)

    kind: EventKind = Field(description="What happened: mining, step, evaluation, export, registered or done.")
    step: int = Field(default=0, ge=0, description="Optimizer steps done so far.")
    total_steps: int = Field(default=0, ge=0, description="Planned optimizer steps (0 when not training).")
    epoch: float = Field(default=0.0, ge=0, description="Fractional epoch reached.")
    loss: float | None = Field(default=None, description="Latest training loss, when known.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Validation or test metrics, by name.")
    eta_s: float | None = Field(default=None, ge=0, description="Estimated seconds left in training.")
    message: str = Field(default="", description="Human-readable detail.")


TrainingEventSink = Callable[[TrainingEvent], None]
"""Receives the progress events of a fine-tuning run, as they happen."""


class EventCallback(TrainerCallback):  # type: ignore[misc]
    """Turns trainer hooks into ``TrainingEvent`` objects for ``on_event``."""

    def __init__(self, emit: TrainingEventSink, metric_prefix: str = "eval_validation_") -> None:
        self._emit = emit
        self._prefix = metric_prefix
        self._started = time.perf_counter()
        self._loss: float | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._started = time.perf_counter()

    def _eta(self, state: TrainerState) -> float | None:
        if state.global_step <= 0 or state.max_steps <= 0:
            return None
        per_step = (time.perf_counter() - self._started) / state.global_step
        return max(0.0, per_step * (state.max_steps - state.global_step))

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._emit(
            TrainingEvent(
                kind="step",
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=float(state.epoch or 0.0),
                loss=self._loss,
                eta_s=self._eta(state),
            )
        )

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        if logs and "loss" in logs:
            self._loss = float(logs["loss"])

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        found = {
            k.removeprefix(self._prefix).removeprefix("cosine_"): float(v)
            for k, v in (metrics or {}).items()
            if k.startswith(self._prefix) and isinstance(v, int | float)
        }
        self._emit(
            TrainingEvent(
                kind="evaluation",
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=float(state.epoch or 0.0),
                loss=self._loss,
                metrics=found,
                eta_s=self._eta(state),
                message=f"validation ndcg@10 {found.get('ndcg@10', float('nan')):.4f}",
            )
        )


class CancelCallback(TrainerCallback):  # type: ignore[misc]
    """Stops training at the next step once ``cancel`` is set (no checkpoint is saved)."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if self._cancel.is_set():
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False
