"""``rag-factory eval``, ``compare`` and ``bench`` run in-process: exit codes, output and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_factory.cli import main
from rag_factory.models.embedding import ModelRegistry


@pytest.mark.slow
def test_eval_writes_every_metric_to_json_and_a_report(
    eval_registry: ModelRegistry, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """eval exits 0, prints the metrics, and writes the JSON and the report folder."""
    code = main(["eval", "--model", "minilm@production", "--data", str(tiny_dataset), "--registry", str(eval_registry.path),
                 "--json", str(tmp_path / "out.json"), "--report", str(tmp_path / "report"), "--projection", "tsne",
                 "--cache-dir", str(tmp_path / "cache"), "--k", "1,5", "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "out.json").read_text())
    assert code == 0
    assert {"ndcg@10", "ndcg@1", "ndcg@5", "recall@100", "map@100"} <= set(data["metrics"])
    assert (data["model_id"], data["backend"], data["precision"]) == ("minilm-1.1.0", "onnx", "int8")
    assert "ndcg@10" in out and "onnx/int8" in out
    assert (tmp_path / "report" / "report.html").is_file() and (tmp_path / "report" / "report.md").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--split", "dev"], "no qrels for split 'dev'"), (["--k", "0"], "k must be a positive integer, got 0"),
     (["--k", "five"], "--k takes integers")],
    ids=["split-without-qrels", "k-zero", "k-not-a-number"],
)  # fmt: skip
def test_eval_bad_input_exits_2_with_the_reason(
    tiny_dataset: Path, tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad input is reported on stderr with its reason, exit code 2."""
    code = main(["eval", "--model", "unused", "--data", str(tiny_dataset), "--no-cache", "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert "error (INVALID" in err and message in err


@pytest.mark.slow
def test_compare_prints_the_tests_and_error_analysis_and_writes_a_report(
    eval_registry: ModelRegistry, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """compare exits 0, prints p-values and changed queries, and writes the comparison report and JSON."""
    code = main(["compare", "minilm@1.0.0", "minilm@production", "--data", str(tiny_dataset), "--registry", str(eval_registry.path),
                 "--report", str(tmp_path / "report"), "--projection", "tsne", "--json", str(tmp_path / "cmp.json"),
                 "--cache-dir", str(tmp_path / "cache"), "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "cmp.json").read_text())
    assert code == 0
    assert "wilcoxon p" in out and "failure categories" in out and "queries improved" in out
    assert set(data["tests"]) >= {"ndcg@10", "mrr@10"} and "error_analysis" in data
    assert "t-test p" in (tmp_path / "report" / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_bench_prints_one_table_per_model(
    eval_registry: ModelRegistry, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench runs each model over each dataset and prints a Markdown table."""
    code = main(["bench", "--model", "minilm@production", "--data", str(tiny_dataset), "--registry", str(eval_registry.path),
                 "--cache-dir", str(tmp_path / "cache"), "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "| dataset | split | domain | queries | docs | ndcg@10 | mrr@10 | recall@100 |" in out
    assert "| scifact_tiny | test | in | 20 |" in out
