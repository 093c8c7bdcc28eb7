"""Plain records passed to hooks; they carry no library types so plugins stay decoupled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Side = Literal["sidecar", "plugin"]


@dataclass(frozen=True)
class EmbeddingEvent:
    """One embedding call, as observed by the sidecar or by the client plugin."""

    side: Side
    model_id: str
    version: str
    variant: str  # "control", "candidate" or "" when no experiment routed the call
    latency_ms: float
    count: int  # number of texts
    request_id: str = ""
    experiment: str = ""
    fallback: bool = False
    requested_model: str = ""


@dataclass(frozen=True)
class RolloutEvent:
    """A change in an experiment's rollout: a ramp step, a promotion or a rollback."""

    experiment: str
    action: Literal["started", "ramped", "promoted", "rolled_back", "stopped"]
    traffic_split: float
    model_a_id: str
    model_b_id: str
    reason: str = ""
    details: dict[str, float] = field(default_factory=dict)
