"""``rag-factory serve``: run the gRPC sidecar."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach the ``serve`` command."""
    parser = subparsers.add_parser("serve", help="run the gRPC sidecar (binds 127.0.0.1 by default)")
    parser.add_argument("--config", help="YAML settings file (RAG_FACTORY_* environment variables override it)")
    parser.add_argument("--address", help="HOST:PORT to bind (overrides the config)")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Load settings and serve until SIGTERM."""
    # Imported here: the rest of the CLI must not need grpc.
    from sidecar.server import serve
    from sidecar.settings import load_settings

    settings = load_settings(args.config)
    if args.address:
        settings = settings.model_copy(update={"address": args.address})
    return serve(settings)
