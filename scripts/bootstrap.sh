#!/usr/bin/env bash
# Create .venv in the repo and install the project with its server and dev extras; a no-op when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.rag-factory-installed"
wanted="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "Installing rag-factory and its dependencies into .venv (first run takes a few minutes)..."
    # torch is pinned to the CPU build provided on this machine (see README). --no-compile skips
    # byte-compiling every installed module up front (95 -> 61 s on 2 cores); Python compiles the
    # ones actually imported on first use instead (about 9 s for the whole stack, once).
    extra=()
    [ -d /opt/wheels ] && extra=(--find-links /opt/wheels)
    .venv/bin/python -m pip install --quiet --no-compile --disable-pip-version-check "${extra[@]}" -e ".[server,dev]" 2>&1 \
        | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import rag_factory, torch, sentence_transformers, onnxruntime" \
        || { echo "installation failed" >&2; exit 1; }
    echo "$wanted" > "$stamp"
fi
