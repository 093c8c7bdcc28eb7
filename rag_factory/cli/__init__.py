"""The ``rag-factory`` command line: one module per command group, wired together here."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from rag_factory.errors import RagFactoryError

# Each command module exposes ``add_parser(subparsers)``; the parser it adds sets ``func``.
CommandAdder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _command_adders() -> list[CommandAdder]:
    from rag_factory.cli import ab, demo, evaluate, registry, serve, train

    return [
        registry.add_parser, serve.add_parser, ab.add_parser, demo.add_parser, train.add_parser, evaluate.add_parser
    ]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command group attached."""
    parser = argparse.ArgumentParser(
        prog="rag-factory", description="Fine-tune, serve, compare and roll out embedding models."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _command_adders():
        add(subparsers)
    return parser


def prepare_process_environment() -> None:
    """Settings for this process, applied once at the edge before heavy imports.

    Model hubs cannot be reached from our machines: without HF_HUB_OFFLINE a hub lookup hangs
    for about 75 s before failing, so offline mode is the default (users may override it).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rag-factory`` console script."""
    prepare_process_environment()
    args = build_parser().parse_args(argv)
    # Third-party libraries log chatty INFO lines on the root logger; ours stay at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("rag_factory").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        result: int = args.func(args)
    except RagFactoryError as exc:
        print(f"error ({exc.reason}): {exc.message}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
