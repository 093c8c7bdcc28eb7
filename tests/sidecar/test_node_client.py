"""A non-Python client: tests/node/embed.js, built from protos/ with @grpc/grpc-js, embeds through the sidecar."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plugin import RagFactoryClient

pytestmark = pytest.mark.slow

NODE_PROJECT = Path(__file__).resolve().parents[1] / "node"
TEXT = "Autophagy declines in aged organisms."


@pytest.fixture(scope="module")
def node_project() -> Path:
    """tests/node with its locked dependencies installed."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed; the Node.js client test needs node >= 18 and npm")
    if not (NODE_PROJECT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        # Exactly the versions in package-lock.json; scripts/test.sh normally does this first.
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_PROJECT, check=True, timeout=300)
    return NODE_PROJECT


@pytest.fixture(scope="module")
def node_output(node_project: Path, sidecar_address: str) -> dict[str, Any]:
    completed = subprocess.run(
        ["node", "embed.js", sidecar_address, TEXT],
        cwd=node_project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    output: dict[str, Any] = json.loads(completed.stdout)
    return output


def test_node_client_gets_one_384_dim_vector(node_output: dict[str, Any]) -> None:
    assert (node_output["count"], node_output["dimension"], len(node_output["vector"])) == (1, 384, 384)
    assert node_output["first_values"] == node_output["vector"][:5]


def test_node_client_is_told_which_model_served_it(node_output: dict[str, Any]) -> None:
    assert (node_output["model_id"], node_output["version"]) == ("minilm-onnx", "1.0.0")


def test_node_and_python_clients_get_the_same_vector(node_output: dict[str, Any], sidecar_address: str) -> None:
    python_vector = RagFactoryClient(sidecar_address, timeout_s=60).embed([TEXT]).vectors[0]
    node_vector = np.asarray(node_output["vector"], dtype=np.float32)

    cosine = float(node_vector @ python_vector / (np.linalg.norm(node_vector) * np.linalg.norm(python_vector)))
    assert cosine >= 0.9999
