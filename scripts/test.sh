#!/usr/bin/env bash
# Set up if needed, then run the whole test suite (slow, real-model tests included) with coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The non-Python client test (Node.js, @grpc/grpc-js) needs its packages from the npm registry.
if command -v npm >/dev/null && [ ! -d tests/node/node_modules ]; then
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest --cov --cov-report=term "$@"
