#!/usr/bin/env bash
# The main job: set up if needed, then run the end-to-end demo on the bundled defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/rag-factory demo "$@"
