"""A non-Python client: tests/node/embed.js, built from protos/ with @grpc/grpc-js, embeds through the sidecar.

The contract these tests show for any client language: ``served_by.model_id`` names the model whose vectors
came back, and so the index to search. When the requested model fails, the call fails (UNAVAILABLE, reason
FALLBACK_REFUSED) unless the request set ``allow_fallback``; then the default model answers and says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from plugin import RagFactoryClient

if TYPE_CHECKING:
    from tests.conftest import RunningSidecar

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


def run_embed_js(node_project: Path, address: str, *flags: str) -> tuple[int, dict[str, Any]]:
    """Exit status and JSON output of ``node embed.js ADDRESS TEXT FLAGS...``."""
    completed = subprocess.run(
        ["node", "embed.js", address, TEXT, *flags],
        cwd=node_project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.stdout, completed.stderr
    output: dict[str, Any] = json.loads(completed.stdout)
    return completed.returncode, output


@pytest.fixture(scope="module")
def node_output(node_project: Path, sidecar_address: str) -> dict[str, Any]:
    returncode, output = run_embed_js(node_project, sidecar_address)
    assert returncode == 0, output
    return output


def test_node_client_gets_one_384_dim_vector(node_output: dict[str, Any]) -> None:
    assert (node_output["count"], node_output["dimension"], len(node_output["vector"])) == (1, 384, 384)
    assert node_output["first_values"] == node_output["vector"][:5]


def test_node_client_is_told_which_model_served_it(node_output: dict[str, Any]) -> None:
    assert (node_output["model_id"], node_output["version"]) == ("minilm-onnx", "1.0.0")
    assert (node_output["fallback"], node_output["fallback_reason"], node_output["experiment"]) == (False, "", "")


def test_node_and_python_clients_get_the_same_vector(node_output: dict[str, Any], sidecar_address: str) -> None:
    python_vector = RagFactoryClient(sidecar_address, timeout_s=60).embed([TEXT]).vectors[0]
    node_vector = np.asarray(node_output["vector"], dtype=np.float32)

    cosine = float(node_vector @ python_vector / (np.linalg.norm(node_vector) * np.linalg.norm(python_vector)))
    assert cosine >= 0.9999


# ft@1.1.0 is registered in damaged_sidecar's registry but its weights are damaged, so it always fails to
# load; the sidecar's default model is minilm-onnx. Its vectors are of another space than ft's would be.


def test_node_client_is_refused_another_models_vectors_by_default(
    node_project: Path, damaged_sidecar: RunningSidecar
) -> None:
    returncode, output = run_embed_js(node_project, damaged_sidecar.address, "--model", "ft@1.1.0")

    assert returncode == 1
    error = output["error"]
    assert (error["code"], error["reason"]) == ("UNAVAILABLE", "FALLBACK_REFUSED")
    # The message names the model that failed and the default model that could have answered ...
    assert "ft-1.1.0" in error["details"] and "minilm-onnx" in error["details"]
    # ... and so does the machine-readable ErrorInfo, decoded from the grpc-status-details-bin trailer.
    assert (error["metadata"]["model_id"], error["metadata"]["fallback_model_id"]) == ("ft-1.1.0", "minilm-onnx")


def test_node_client_allowing_fallback_is_told_to_search_the_default_models_index(
    node_project: Path, damaged_sidecar: RunningSidecar
) -> None:
    returncode, output = run_embed_js(node_project, damaged_sidecar.address, "--model", "ft@1.1.0", "--allow-fallback")

    assert returncode == 0, output
    assert (output["dimension"], len(output["vector"])) == (384, 384)
    # The vector is minilm-onnx's, not ft's: it must be searched in minilm-onnx's index.
    assert (output["model_id"], output["fallback"], output["requested_model"]) == ("minilm-onnx", True, "ft@1.1.0")
    assert "ModelLoadError" in output["fallback_reason"]
