#!/usr/bin/env bash
# Set up if needed, then run the whole test suite (slow, real-model tests included) with coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest --cov --cov-report=term "$@"
