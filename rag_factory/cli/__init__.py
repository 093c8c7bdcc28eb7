"""The ``rag-factory`` command line: one module per command group, wired together here."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from rag_factory.errors import RagFactoryError

# Each command module exposes ``add_parser(subparsers)``; the parser it adds sets ``func``.
CommandAdder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


# Command name -> module adding it. Only the module of the command being run is imported, so
# `rag-factory serve` does not pay for torch (train) or scipy (ab, eval) before it starts serving.
COMMAND_MODULES: dict[str, str] = {
    "registry": "rag_factory.cli.registry",
    "serve": "rag_factory.cli.serve",
    "ab": "rag_factory.cli.ab",
    "demo": "rag_factory.cli.demo",
    "train": "rag_factory.cli.train",
    "eval": "rag_factory.cli.evaluate",
    "compare": "rag_factory.cli.evaluate",
    "bench": "rag_factory.cli.evaluate",
}


def _command_adders(argv: Sequence[str] | None = None) -> list[CommandAdder]:
    words = [word for word in (argv or ()) if not word.startswith("-")]
    wanted = COMMAND_MODULES.get(words[0]) if words else None
    modules = [wanted] if wanted else list(dict.fromkeys(COMMAND_MODULES.values()))
    return [importlib.import_module(module).add_parser for module in modules]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser: every command group, or only the one ``argv`` runs."""
    parser = argparse.ArgumentParser(
        prog="rag-factory", description="Fine-tune, serve, compare and roll out embedding models."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _command_adders(argv):
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


# Packages of the `server` extra: the base install is only the thin client (the plugin).
SERVER_PACKAGES = frozenset(
    {"torch", "sentence_transformers", "transformers", "onnxruntime", "scipy", "yaml", "semver", "grpc_health"}
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rag-factory`` console script."""
    prepare_process_environment()
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(arguments)
    except KeyboardInterrupt:  # Ctrl-C before a command installs its own handler (serve loading a model)
        return 130
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in SERVER_PACKAGES:
            raise
        print(
            f"error: this command needs the server extra ({exc.name} is missing); "
            'install it with: pip install "rag-factory[server]"',
            file=sys.stderr,
        )
        return 1


def _run(arguments: list[str]) -> int:
    args = build_parser(arguments).parse_args(arguments)
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
