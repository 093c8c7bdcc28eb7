"""``rag-factory serve``: run the gRPC sidecar."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach the ``serve`` command."""
    parser = subparsers.add_parser("serve", help="run the gRPC sidecar (binds 127.0.0.1 by default)")
    parser.add_argument("--config", help="YAML settings file (RAG_FACTORY_* environment variables override it)")
    parser.add_argument("--address", help="HOST:PORT to bind (overrides the config)")
    parser.add_argument(
        "--http-address",
        metavar="HOST:PORT|off",
        help="HOST:PORT of the HTTP API (OpenAI /v1/embeddings, probes; default 127.0.0.1:8080); off turns it off",
    )
    parser.add_argument(
        "--model",
        metavar="REF|DIR|HUB_ID",
        help=(
            "default model to serve: a registry reference (id, name@version, name@alias, name), a local "
            "sentence-transformers directory or a hub id with a local copy (both registered on first use); "
            "default: models.embedding.default_model_id, 'minilm', the bundled all-MiniLM-L6-v2"
        ),
    )
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Load settings and serve until SIGTERM."""
    # Imported here: the rest of the CLI must not need grpc.
    from sidecar.server import serve
    from sidecar.settings import load_settings

    settings = load_settings(args.config)
    if args.address:
        settings = settings.model_copy(update={"address": args.address})
    if args.http_address:
        off = args.http_address.strip().lower() in ("off", "none", "null")
        settings = settings.model_copy(update={"http_address": None if off else args.http_address})
    return serve(settings, model=args.model)
