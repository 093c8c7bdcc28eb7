"""``rag-factory demo``: the end-to-end tour on the bundled defaults (model, dataset, SQLite registry)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rag_factory.cli.arguments import positive_int
from rag_factory.data import bundled_dataset
from rag_factory.data.beir import load_beir
from rag_factory.demo.context import DemoContext, section
from rag_factory.demo.finetune_stage import DEMO_EPOCHS
from rag_factory.models.embedding import CustomModelLoader, ModelRegistry
from rag_factory.storage import database_path


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach the ``demo`` command."""
    parser = subparsers.add_parser("demo", help="run the end-to-end demo on the bundled defaults")
    parser.add_argument("--workdir", default="demo_output", help="where the demo writes (replaced each run)")
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=DEMO_EPOCHS,
        help=f"maximum fine-tuning epochs (default: {DEMO_EPOCHS}, the demo's budget)",
    )
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Run every stage of the demo and print what each shows."""
    from transformers.utils import logging as transformers_logging

    from rag_factory.demo import (
        ab_stage,
        finetune_stage,
        registry_stage,
        reindex_stage,
        report_stage,
        sidecar_stage,
    )

    # A weight-loading bar per model load would bury the demo's own output.
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    ctx = DemoContext(
        workdir=workdir,
        registry=ModelRegistry(workdir / "registry"),
        loader=CustomModelLoader(cache_dir=workdir / "cache"),
        dataset=load_beir(bundled_dataset("scifact_mini")),
    )
    registry_stage.register_models(ctx)
    registry_stage.compare_backends(ctx)
    finetune_stage.fine_tune_candidate(ctx, epochs=args.epochs)
    with sidecar_stage.running_sidecar(ctx):
        sidecar_stage.llama_index_through_the_sidecar(ctx)
        ab_stage.ab_test_and_rollout(ctx)
        report_stage.write_report(ctx)
        reindex_stage.move_alias_and_reembed(ctx)

    section("Done")
    print(f"registry: {database_path(ctx.registry.path)} ({len(ctx.registry.list_models())} models)")
    print(f"try: .venv/bin/rag-factory registry --registry {ctx.registry.path} list")
    print(f"     .venv/bin/rag-factory ab --registry {ctx.registry.path} list")
    return 0
