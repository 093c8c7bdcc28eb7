#!/usr/bin/env bash
# Set up if needed, check the code (ruff, the import contracts, mypy --strict), then run the whole test
# suite (slow, real-model tests included) with coverage. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The non-Python client test (Node.js, @grpc/grpc-js) needs its packages from the npm registry.
if command -v npm >/dev/null && [ ! -d tests/node/node_modules ]; then
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
export HF_HUB_OFFLINE=1
echo "ruff check"
.venv/bin/ruff check .
echo "import contracts (pyproject.toml [tool.importlinter])"
.venv/bin/lint-imports --no-logo --no-cache
echo "mypy --strict"
.venv/bin/mypy rag_factory sidecar plugin
exec .venv/bin/python -m pytest --cov --cov-report=term "$@"
