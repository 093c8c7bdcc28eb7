"""Benchmark: seconds to analyse an A/B test holding 1,000,000 recorded outcomes (target < 2 s)."""

from __future__ import annotations

import time

import numpy as np

from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.models.embedding.models import ABTestConfig

OUTCOMES = 1_000_000


def main() -> None:
    rng = np.random.default_rng(0)
    framework = ABTestingFramework(seed=0)
    framework.start_test(ABTestConfig(test_name="bench", model_a_id="a", model_b_id="b"))
    half = OUTCOMES // 2
    start = time.perf_counter()
    for model, shift in (("a", 0.0), ("b", 0.01)):
        framework.record_results(
            "bench",
            model,
            {
                "latency": rng.lognormal(3.0 - shift, 0.4, half),
                "accuracy": (rng.random(half) < 0.70 + shift).astype(float),
                "recall@5": rng.beta(5.0 + shift, 2.0, half),
            },
        )
    print(f"recorded {OUTCOMES:,} outcomes in batches: {time.perf_counter() - start:.2f} s")

    start = time.perf_counter()
    for i in range(10_000):
        framework.record_result("bench", "ab"[i % 2], {"latency": 20.0, "accuracy": 1.0, "recall@5": 0.8})
    print(f"record_result, one at a time: {(time.perf_counter() - start) / 10_000 * 1e6:.1f} µs/call")

    timings = []
    for _ in range(3):
        start = time.perf_counter()
        result = framework.analyze_test("bench")
        timings.append(time.perf_counter() - start)
    samples = result.model_a_samples + result.model_b_samples
    print(f"analyze_test over {samples:,} outcomes: best {min(timings):.3f} s, worst {max(timings):.3f} s")
    print(f"winner={result.winner}: {result.recommendation}")


if __name__ == "__main__":
    main()
