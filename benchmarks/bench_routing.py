"""Benchmark: nanoseconds per A/B routing decision, keyed (sticky hash) and keyless (random)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.experiments.routing import assign_variant
from rag_factory.models.embedding.models import ABTestConfig

CALLS = 200_000


def ns_per_call(fn: Callable[[int], object]) -> float:
    """Best of three timed loops of ``CALLS`` calls, in nanoseconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter_ns()
        for i in range(CALLS):
            fn(i)
        best = min(best, (time.perf_counter_ns() - start) / CALLS)
    return best


def main() -> None:
    keys = [f"user-{i}" for i in range(CALLS)]
    rng = random.Random(0)
    framework = ABTestingFramework(seed=0)
    framework.start_test(ABTestConfig(test_name="bench", model_a_id="a", model_b_id="b"))
    rows = [
        ("assign_variant, keyed", lambda i: assign_variant("bench", "salt", 0.5, keys[i], rng)),
        ("assign_variant, random", lambda i: assign_variant("bench", "salt", 0.5, None, rng)),
        ("should_use_model_b, keyed", lambda i: framework.should_use_model_b("bench", keys[i])),
        ("should_use_model_b, random", lambda i: framework.should_use_model_b("bench")),
    ]
    for label, fn in rows:
        print(f"{label:<30} {ns_per_call(fn):8.0f} ns/call  (target: well under 10000)")


if __name__ == "__main__":
    main()
