"""Compare fine-tuning recipes on SciFact *validation* only; this is how the default recipe is chosen.

Usage: ``python benchmarks/recipe_validation.py NAME [--set key=value ...] [--work DIR]``

Each run trains on the train part of SciFact's train split and reports validation nDCG@10 per epoch
(the split carved from train). The test split is never loaded for scoring (``test_split=None``), so
nothing printed here can leak test information into a default.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    """Run one recipe variant and print its validation curve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", help="label of this variant")
    parser.add_argument("--set", action="append", default=[], help="FineTuneConfig override, key=JSON value")
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag_factory_recipes"))
    args = parser.parse_args()

    from rag_factory.data.beir import load_beir
    from rag_factory.models.training.config import FineTuneConfig
    from rag_factory.models.training.events import TrainingEvent
    from rag_factory.models.training.examples import normalise_query
    from rag_factory.models.training.trainer import fine_tune

    # Without a test split, fine_tune cannot drop training queries that repeat a test query's text;
    # drop them here, so the split (and so validation) is exactly the one the default run uses.
    beir = load_beir(args.scifact)
    test_texts = {normalise_query(beir.queries[q]) for q in beir.split("test")}
    repeats = [q for q in beir.split("train") if normalise_query(beir.queries[q]) in test_texts]

    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    config = FineTuneConfig(
        data=args.scifact, test_split=None, export_onnx=False, work_dir=args.work,
        output_dir=args.work / f"model-{args.name}", **overrides,
    )  # fmt: skip
    started = time.perf_counter()

    def report(event: TrainingEvent) -> None:
        if event.kind == "evaluation":
            print(f"{args.name}: {time.perf_counter() - started:6.0f} s epoch {event.epoch:.1f} "
                  f"validation nDCG@10 {event.metrics.get('ndcg@10', float('nan')):.4f}", flush=True)  # fmt: skip

    result = fine_tune(config, on_event=report, exclude_ids=repeats)
    print(f"{args.name}: overrides {overrides}; base validation nDCG@10 {result.base_validation['ndcg@10']:.4f}, "
          f"best {result.validation.get('ndcg@10', float('nan')):.4f} after {result.epochs_trained:.1f} epochs; "
          f"train {result.train_seconds:.0f} s, total {result.total_seconds:.0f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
