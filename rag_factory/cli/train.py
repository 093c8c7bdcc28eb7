"""``rag-factory train``: fine-tune a base model on a dataset, then export, evaluate and register it."""

from __future__ import annotations

import argparse
from pathlib import Path

from rag_factory.cli.arguments import positive_int
from rag_factory.cli.registry import DEFAULT_REGISTRY
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach the ``train`` command."""
    parser = subparsers.add_parser(
        "train",
        help="fine-tune an embedding model (default recipe: only --data is needed)",
        description="Fine-tune, export (sentence-transformers, ONNX, int8), evaluate and register a model.",
    )
    parser.add_argument("--data", required=True, type=Path, help="BEIR directory, LlamaIndex JSON or query-log JSONL")
    parser.add_argument("--corpus", type=Path, default=None, help="corpus JSONL, for query logs")
    parser.add_argument("--base", default=DEFAULT_BASE_MODEL, help="base model: registry reference, path or hub id")
    # Not argparse choices: listing them would import torch; an unknown name gets a typed error naming them.
    parser.add_argument(
        "--strategy", default=None, help="training strategy: mnrl, cached_mnrl, triplet, hard_negative, distillation"
    )
    parser.add_argument("--out", type=Path, default=None, help="directory receiving the sentence-transformers model")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="training device")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=None,
        help="training arithmetic (default auto: bf16 autocast on a GPU that supports it, fp32 on CPU)",
    )
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="model registry directory")
    parser.add_argument("--no-register", action="store_true", help="train and export only")
    parser.add_argument("--epochs", type=positive_int, default=None, help="maximum epochs (default: the recipe's)")
    parser.add_argument("--search", action="store_true", help="hyperparameter search on validation first")
    parser.add_argument("--work-dir", type=Path, default=Path(".rag_factory_training"), help="checkpoints and caches")
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Run the default recipe with the given overrides and print base against fine-tuned."""
    from tqdm.auto import tqdm

    from rag_factory.jobs.publishing import fine_tune_and_publish
    from rag_factory.models.embedding.registry import ModelRegistry
    from rag_factory.models.training.config import FineTuneConfig, SearchSpace
    from rag_factory.models.training.events import TrainingEvent
    from rag_factory.models.training.registration import ensure_base_registered

    base = args.base
    registry_path = None if args.no_register else Path(args.registry)
    if registry_path is not None:
        with ModelRegistry(registry_path) as registry:
            base = ensure_base_registered(registry, args.base).model_id
    overrides: dict[str, object] = {}
    if args.strategy is not None:
        overrides["strategy"] = args.strategy
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.precision is not None:
        overrides["precision"] = args.precision
    if args.search:
        overrides["search"] = SearchSpace()
    config = FineTuneConfig(
        data=args.data,
        corpus=args.corpus,
        base_model=base,
        registry_path=registry_path,
        output_dir=args.out,
        work_dir=args.work_dir,
        device=args.device,
        show_progress=True,
        **overrides,  # type: ignore[arg-type]
    )

    def report(event: TrainingEvent) -> None:
        if event.kind != "step":
            tqdm.write(f"[{event.kind}] {event.message}".rstrip())

    result = fine_tune_and_publish(config, on_event=report)
    print(f"\nstrategy {result.strategy}: " + ", ".join(f"{k}={v:g}" for k, v in result.hyperparameters.items()))
    print(f"trained {result.epochs_trained:.1f} epochs on {result.train_rows} rows in {result.train_seconds:.0f} s")
    if result.averaged_epochs:
        print(f"weights: {result.weights_summary()}")
    for trial in result.search_trials:
        print("search trial: " + ", ".join(f"{k}={v:g}" for k, v in trial.items()))
    print(f"{'':<22}{'base':>8}{'fine-tuned':>12}")
    rows = (
        ("validation nDCG@10", result.base_validation, result.validation),
        ("test nDCG@10", result.base_test, result.test),
    )
    for label, before, after in rows:
        if before and after:
            print(f"{label:<22}{before['ndcg@10']:>8.4f}{after['ndcg@10']:>12.4f}")
    if result.comparison is not None:
        c = result.comparison
        print(
            f"paired test over {c.n} test queries: mean diff {c.mean_diff:+.4f} "
            f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}], t-test p={c.t_pvalue:.2e}, Wilcoxon p={c.wilcoxon_pvalue:.2e}"
        )
    print(f"model: {result.output_dir} ({result.model_size_mb:.0f} MB, {result.latency_ms:.1f} ms per 32 queries)")
    if result.model_ref is not None:
        print(f"registered {result.model_ref} (id {result.model_id}) as candidate, lineage from {base}")
    print(f"total {result.total_seconds:.0f} s")
    return 0
