"""The README's main job: the demo runs end to end on the bundled defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag_factory.cli import main
from rag_factory.models.embedding import ModelRegistry

pytestmark = pytest.mark.slow


def test_demo_registers_three_models_and_reports_their_agreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One epoch keeps the suite's time down; the README's demo runs the full default recipe.
    assert main(["demo", "--workdir", str(tmp_path / "demo"), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "minilm-onnx-int8-1.0.0   vs minilm-st-1.0.0: mean 0.99" in out
    assert "minilm-hf-1.0.0          vs minilm-st-1.0.0: mean 1.00000" in out
    # Stage 4 runs the default recipe within the demo's budget (here cut to one epoch).
    assert "(default recipe, at most 1 epoch, validation over 300 documents)" in out
    registry = ModelRegistry(tmp_path / "demo" / "registry")
    assert registry.ancestors("minilm-onnx-int8-1.0.0") == ["minilm-st-1.0.0"]
    aliases = registry.aliases("minilm")
    assert aliases["candidate"] == "minilm-1.1.0"  # the fine-tuned version, registered with lineage
    assert registry.ancestors("minilm-1.1.0") == ["minilm-st-1.0.0"]
    # The canary ends either way, and the alias agrees with the printed decision.
    assert aliases["production"] in ("minilm-1.1.0", "minilm-st-1.0.0")
    assert f"minilm@production now -> {aliases['production']}" in out
    assert "A = minilm-st-1.0.0 (sentence_transformers / fp32), B = minilm-1.1.0 (sentence_transformers / fp32)" in out
    # The report does not embed the corpus again: the fine-tuning run stored both models' vectors where
    # evaluation looks.
    assert "(corpus vectors: A hit, B hit)" in out
    # Stage 6: the candidate's shadow index was built before traffic reached it, and each arm's queries
    # were searched in that arm's own index through a LlamaIndex query engine.
    assert "shadow index of minilm-1.1.0: 300/300 nodes" in out
    assert "shadow index ready in" in out and "pinned to minilm@1.1.0 (minilm-1.1.0)" in out
    assert "control  : click-through@5" in out and "candidate: click-through@5" in out
    assert "report: " in out and (tmp_path / "demo" / "report" / "report.html").is_file()
    assert registry.get_record("minilm-onnx-int8-1.0.0").metrics["docs_per_second_cpu"] > 0
    # Stage 4: the real sidecar served a LlamaIndex index built through the plugin.
    assert "every node stamped with model minilm-st-1.0.0; index pinned to minilm@1.0.0 (minilm-st-1.0.0)" in out
    assert out.count("served by minilm-st-1.0.0 v1.0.0") == 4
    # The same sidecar answered the OpenAI-format HTTP API with the gRPC vector of the pinned model.
    http_line = re.search(r"/v1/embeddings \(OpenAI format, model minilm@1\.0\.0\): served by minilm-st-1\.0\.0, "
                          r"cosine to the gRPC vector (\S+)", out)  # fmt: skip
    assert http_line is not None and float(http_line.group(1)) >= 0.9999
    # Stage 8: the alias moved under the index; its queries kept the old version until it was re-embedded.
    assert "minilm@staging now -> minilm-1.1.0" in out
    assert out.count("old index, query embedded by minilm-st-1.0.0 v1.0.0") == 3
    assert "300 of 300 nodes are stale for minilm@1.1.0 (minilm-1.1.0)" in out
    assert "re-embedding: 300/300 nodes" in out
    assert out.count("new index, query embedded by minilm-1.1.0 v1.1.0") == 3
