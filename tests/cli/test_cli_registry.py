"""The ``rag-factory registry`` commands, run in-process through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_factory.cli import main
from rag_factory.models.embedding.registry import ModelRegistry


@pytest.fixture
def reg(tmp_path: Path) -> str:
    return str(tmp_path / "reg")


def register(reg: str, model_id: str, version: str, *extra: str) -> int:
    return main([
        "registry", "--registry", reg, "register", "--id", model_id, "--name", "legal",
        "--version", version, "--format", "sentence_transformers", "--dim", "384",
        "--max-seq-length", "256", *extra,
    ])  # fmt: skip


@pytest.fixture
def populated(reg: str) -> str:
    assert register(reg, "legal-1", "1.0.0", "--domain", "legal", "--tag", "small") == 0
    assert register(reg, "legal-2", "1.1.0", "--base", "legal-1", "--description", "Contract tuned") == 0
    assert register(reg, "legal-3", "2.0.0", "--base", "legal-2") == 0
    return reg


def test_register_prints_reference(reg: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert register(reg, "legal-1", "1.0.0") == 0
    assert "registered legal-1 as legal@1.0.0" in capsys.readouterr().out


def test_the_operator_sets_loading_options_on_the_server(reg: str) -> None:
    # Options that name code are refused over gRPC (tests/sidecar/test_hostile_clients.py), not here.
    options = '{"pooling_strategy": "cls", "additional_config": {"module_class": "my_pkg.model:Encoder"}}'

    assert register(reg, "legal-1", "1.0.0", "--load-config", options) == 0

    assert ModelRegistry(reg).get_record("legal-1").load_config == json.loads(options)


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]"])
def test_loading_options_must_be_a_json_object(reg: str, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert register(reg, "legal-1", "1.0.0", "--load-config", bad) == 2
    assert "--load-config" in capsys.readouterr().err


def test_register_with_artifact_stores_it(reg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w")
    assert register(reg, "legal-1", "1.0.0", "--artifact", str(weights)) == 0
    assert "artifact sha256" in capsys.readouterr().out
    path = ModelRegistry(reg).artifact_path("legal-1")
    assert path is not None and path.read_bytes() == b"w"


@pytest.mark.parametrize(
    ("version", "reason"),
    [("1.2", "INVALID_VERSION"), ("1.0.0", "DUPLICATE_VERSION")],
    ids=["invalid-semver", "duplicate-version"],
)
def test_bad_register_exits_2_and_keeps_data(
    populated: str, capsys: pytest.CaptureFixture[str], version: str, reason: str
) -> None:
    capsys.readouterr()
    assert register(populated, "legal-9", version) == 2
    assert f"error ({reason}):" in capsys.readouterr().err
    assert len(ModelRegistry(populated).versions("legal")) == 3


@pytest.mark.parametrize(
    ("args", "shown", "hidden"),
    [
        ([], ["legal-1", "legal-2", "legal-3"], []),
        (["--domain", "legal"], ["legal-1"], ["legal-2"]),
        (["--tag", "small"], ["legal-1"], ["legal-3"]),
        (["--text", "contract"], ["legal-2"], ["legal-1"]),
        (["--range", ">=1.1.0,<2.0.0"], ["legal-2"], ["legal-1", "legal-3"]),
    ],
    ids=["all", "domain", "tag", "text", "range"],
)
def test_list_filters(
    populated: str, capsys: pytest.CaptureFixture[str], args: list[str], shown: list[str], hidden: list[str]
) -> None:
    capsys.readouterr()
    assert main(["registry", "--registry", populated, "list", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ID ")
    assert all(i in out for i in shown) and not any(i in out for i in hidden)


def test_registry_path_from_environment(
    populated: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_FACTORY_REGISTRY", populated)
    capsys.readouterr()
    assert main(["registry", "search", "CONTRACT"]) == 0
    assert "legal-2" in capsys.readouterr().out


def test_registry_option_after_subcommand(populated: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["registry", "show", "legal@1.1.0", "--registry", populated]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["model_id"] == "legal-2"


def test_show_unknown_exits_2_listing_versions(populated: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "--registry", populated, "show", "legal@2.1.0"]) == 2
    err = capsys.readouterr().err
    assert "error (MODEL_NOT_FOUND): model 'legal@2.1.0' is not registered; registered: legal@2.0.0" in err


def test_metrics_then_compare(populated: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "--registry", populated, "metrics", "legal-1", "ndcg_at_10=0.6", "recall@5=0.5"]) == 0
    assert main(["registry", "--registry", populated, "metrics", "legal-2", "ndcg_at_10=0.7"]) == 0
    capsys.readouterr()
    assert main(["registry", "--registry", populated, "compare", "legal-1", "legal-2"]) == 0
    out = capsys.readouterr().out
    assert "ndcg_at_10" in out and "0.1" in out and "version" in out


@pytest.mark.parametrize("pair", ["ndcg", "ndcg=high", "=0.5", "x=nan"], ids=str)
def test_bad_metric_pair_exits_2(populated: str, capsys: pytest.CaptureFixture[str], pair: str) -> None:
    assert main(["registry", "--registry", populated, "metrics", "legal-1", pair]) == 2
    assert "error (INVALID_ARGUMENT)" in capsys.readouterr().err


def test_metrics_for_unknown_model_exits_2(populated: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "--registry", populated, "metrics", "ghost", "ndcg_at_10=0.5"]) == 2
    assert "error (MODEL_NOT_FOUND)" in capsys.readouterr().err


def test_alias_then_rollback(populated: str, capsys: pytest.CaptureFixture[str]) -> None:
    for target in ["1.0.0", "legal-3"]:
        assert main(["registry", "--registry", populated, "alias", "legal", "production", target]) == 0
    assert main(["registry", "--registry", populated, "rollback", "legal", "production"]) == 0
    assert "rolled back to legal-1" in capsys.readouterr().out
    assert main(["registry", "--registry", populated, "rollback", "legal", "production"]) == 2
    assert "error (FAILED_PRECONDITION)" in capsys.readouterr().err


def test_alias_to_deprecated_needs_force(populated: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "--registry", populated, "deprecate", "legal-3", "--reason", "drift"]) == 0
    assert main(["registry", "--registry", populated, "alias", "legal", "production", "2.0.0"]) == 2
    err = capsys.readouterr().err
    assert "error (MODEL_DEPRECATED)" in err and "drift" in err
    assert main(["registry", "--registry", populated, "alias", "legal", "production", "2.0.0", "--force"]) == 0


def test_lineage_shows_both_directions(populated: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["registry", "--registry", populated, "lineage", "legal-2"]) == 0
    out = capsys.readouterr().out
    assert "ancestors (nearest first): legal-1" in out and "descendants: legal-3" in out


def test_delete_known_then_unknown(populated: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "--registry", populated, "delete", "legal-3"]) == 0
    assert main(["registry", "--registry", populated, "delete", "legal-3"]) == 1
    assert "nothing deleted" in capsys.readouterr().err
