"""The ``rag-factory registry`` commands: list, show, register, alias, rollback, compare, lineage, ..."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.embedding.models import EmbeddingModelMetadata, ModelFormat
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.embedding.versions import parse_version

DEFAULT_REGISTRY = "./model_registry"
REGISTRY_ENV = "RAG_FACTORY_REGISTRY"

Handler = Callable[[ModelRegistry, argparse.Namespace], int]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach the ``registry`` command group to the top-level parser."""
    # --registry is accepted both before and after the subcommand; SUPPRESS keeps a leaf's
    # missing option from overwriting the group's value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    group = subparsers.add_parser("registry", help="manage registered models, versions and aliases")
    group.add_argument(
        "--registry",
        default=None,
        metavar="PATH",
        help=f"registry directory (default: ${REGISTRY_ENV} or {DEFAULT_REGISTRY})",
    )
    commands = group.add_subparsers(dest="registry_command", required=True, metavar="SUBCOMMAND")

    def leaf(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[common], help=help_text)
        parser.set_defaults(func=lambda args: _run(handler, args))
        return parser

    p = leaf("list", _list, "list models as a table")
    p.add_argument("--domain")
    p.add_argument("--format", choices=[f.value for f in ModelFormat])
    p.add_argument("--tag", action="append", dest="tags", metavar="TAG", help="any of these tags")
    p.add_argument("--name")
    p.add_argument("--text", help="case-insensitive substring of name or description")
    p.add_argument("--range", dest="version_range", metavar="RANGE", help="e.g. '>=1.0.0,<2.0.0'")
    p.add_argument("--active", action="store_true", help="hide deprecated versions")

    p = leaf("show", _show, "show one model as JSON")
    p.add_argument("ref", metavar="REF", help="model id, name@version, name@alias or name")

    p = leaf("register", _register, "register a model version")
    p.add_argument("--id", dest="model_id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--format", required=True, choices=[f.value for f in ModelFormat])
    p.add_argument("--dim", type=int, required=True, help="embedding dimension")
    p.add_argument("--max-seq-length", type=int, required=True)
    p.add_argument("--artifact", metavar="PATH", help="file or directory to store with the model")
    p.add_argument("--base", metavar="ID", help="model id (or hub id) this was derived from")
    p.add_argument("--domain")
    p.add_argument("--tag", action="append", dest="tags", default=[], metavar="TAG")
    p.add_argument("--description")
    p.add_argument(
        "--load-config",
        metavar="JSON",
        help='loading options, e.g. \'{"pooling_strategy": "cls"}\'; only here, on the server, may they name code '
        "(additional_config.module_class) or set trust_remote_code",
    )

    p = leaf("delete", _delete, "delete a model version")
    p.add_argument("model_id", metavar="ID")

    p = leaf("search", _search, "search names and descriptions")
    p.add_argument("query", metavar="QUERY")

    p = leaf("metrics", _metrics, "record metrics for a model")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("pairs", nargs="+", metavar="KEY=VALUE")

    p = leaf("alias", _alias, "point NAME@ALIAS at a version")
    p.add_argument("name", metavar="NAME")
    p.add_argument("alias", metavar="ALIAS")
    p.add_argument("target", metavar="TARGET", help="model id, version, or another alias")
    p.add_argument("--force", action="store_true", help="allow a deprecated target")

    p = leaf("rollback", _rollback, "re-point NAME@ALIAS to its previous target")
    p.add_argument("name", metavar="NAME")
    p.add_argument("alias", metavar="ALIAS")
    p.add_argument("--force", action="store_true", help="allow a deprecated target")

    p = leaf("deprecate", _deprecate, "refuse a version for new traffic")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("--reason", default="")
    p.add_argument("--undo", action="store_true", help="clear the deprecation instead")

    p = leaf("compare", _compare, "compare two models side by side")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")

    p = leaf("lineage", _lineage, "show what a model derives from and what derives from it")
    p.add_argument("model_id", metavar="ID")


def open_registry(args: argparse.Namespace) -> ModelRegistry:
    """The registry named by ``--registry``, ``$RAG_FACTORY_REGISTRY`` or the default path."""
    # The environment is read here, at the process edge, and nowhere deeper.
    return ModelRegistry(getattr(args, "registry", None) or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY)


def _run(handler: Handler, args: argparse.Namespace) -> int:
    with open_registry(args) as registry:
        return handler(registry, args)


def _list(registry: ModelRegistry, args: argparse.Namespace) -> int:
    records = registry.list_records(
        args.domain, args.format, args.tags, name=args.name, text=args.text,
        version_range=args.version_range, include_deprecated=not args.active,
    )  # fmt: skip
    _print_table(records)
    return 0


def _search(registry: ModelRegistry, args: argparse.Namespace) -> int:
    _print_table(registry.list_records(text=args.query))
    return 0


def _show(registry: ModelRegistry, args: argparse.Namespace) -> int:
    record = registry.resolve(args.ref, allow_deprecated=True)
    data = record.model_dump(mode="json")
    data["aliases"] = sorted(
        a for a, mid in registry.aliases(record.metadata.model_name).items() if mid == record.model_id
    )
    _print_json(data)
    return 0


def _register(registry: ModelRegistry, args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {
        "model_id": args.model_id, "model_name": args.name, "version": args.version,
        "format": args.format, "embedding_dim": args.dim, "max_seq_length": args.max_seq_length,
        "base_model": args.base, "domain": args.domain, "tags": args.tags, "description": args.description,
    }  # fmt: skip
    parse_version(args.version)  # a typed INVALID_VERSION error rather than a generic one
    try:
        metadata = EmbeddingModelMetadata(**fields)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidArgumentError(f"invalid model metadata: {exc}") from exc
    record = registry.register_model(metadata, artifact_path=args.artifact, load_config=_load_config(args.load_config))
    digest = f" (artifact sha256 {record.artifact_sha256})" if record.artifact_sha256 else ""
    print(f"registered {record.model_id} as {record.ref}{digest}")
    return 0


def _load_config(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"--load-config is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidArgumentError("--load-config must be a JSON object")
    return value


def _delete(registry: ModelRegistry, args: argparse.Namespace) -> int:
    if not registry.delete_model(args.model_id):
        print(f"model {args.model_id!r} is not registered; nothing deleted", file=sys.stderr)
        return 1
    print(f"deleted {args.model_id}")
    return 0


def _metrics(registry: ModelRegistry, args: argparse.Namespace) -> int:
    registry.update_metrics(args.model_id, parse_metric_pairs(args.pairs))
    _print_json(registry.get_record(args.model_id).all_metrics())
    return 0


def parse_metric_pairs(pairs: Sequence[str]) -> dict[str, float]:
    """Parse ``KEY=VALUE`` arguments into a metrics dict.

    Raises:
        InvalidArgumentError: A pair has no ``=`` or its value is not a number.
    """
    metrics: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep or not key:
                raise ValueError(pair)
            metrics[key] = float(value)
        except ValueError as exc:
            raise InvalidArgumentError(f"metric {pair!r} is not KEY=NUMBER, e.g. ndcg_at_10=0.71") from exc
    return metrics


def _alias(registry: ModelRegistry, args: argparse.Namespace) -> int:
    record = registry.set_alias(args.name, args.alias, args.target, force=args.force)
    print(f"{args.name}@{args.alias} -> {record.model_id} ({record.ref})")
    return 0


def _rollback(registry: ModelRegistry, args: argparse.Namespace) -> int:
    record = registry.rollback(args.name, args.alias, force=args.force)
    print(f"{args.name}@{args.alias} rolled back to {record.model_id} ({record.ref})")
    return 0


def _deprecate(registry: ModelRegistry, args: argparse.Namespace) -> int:
    if args.undo:
        record = registry.undeprecate(args.model_id)
        print(f"{record.model_id} ({record.ref}) is no longer deprecated")
    else:
        record = registry.deprecate(args.model_id, args.reason)
        print(f"deprecated {record.model_id} ({record.ref})")
    return 0


def _compare(registry: ModelRegistry, args: argparse.Namespace) -> int:
    comparison = registry.compare(args.a, args.b)
    rows = [["field", comparison.model_a, comparison.model_b, "delta"]]
    rows += [[k, _cell(a), _cell(b), ""] for k, (a, b) in comparison.metadata_diff.items()]
    rows += [[k, _cell(m.a), _cell(m.b), _cell(m.delta)] for k, m in comparison.metrics.items()]
    _print_rows(rows)
    return 0


def _lineage(registry: ModelRegistry, args: argparse.Namespace) -> int:
    ancestors, descendants = registry.ancestors(args.model_id), registry.descendants(args.model_id)
    print(f"model: {args.model_id}")
    print(f"ancestors (nearest first): {', '.join(ancestors) or '-'}")
    print(f"descendants: {', '.join(descendants) or '-'}")
    return 0


def _print_table(records: list[ModelRecord]) -> None:
    if not records:
        print("no models match")
        return
    rows = [["ID", "NAME", "VERSION", "FORMAT", "DIM", "DOMAIN", "DEPRECATED", "TAGS"]]
    for r in records:
        meta = r.metadata
        rows.append([
            meta.model_id, meta.model_name, meta.version, meta.format.value, str(meta.embedding_dim),
            meta.domain or "-", "yes" if r.deprecated else "", ",".join(meta.tags),
        ])  # fmt: skip
    _print_rows(rows)


def _print_rows(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))
