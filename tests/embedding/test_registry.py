"""The model registry: CRUD, filters, versions, aliases, deprecation, lineage, comparison and artifacts."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rag_factory.errors import (
    AliasNotFoundError,
    ArtifactIntegrityError,
    DuplicateVersionError,
    FailedPreconditionError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidVersionError,
    ModelDeprecatedError,
    ModelNotFoundError,
    ModelPathNotFoundError,
    UnknownFormatError,
)
from rag_factory.models.embedding.models import EmbeddingModelMetadata, ModelFormat
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.embedding.sqlite_registry_store import MIGRATIONS, SQLiteRegistryStore


def meta(model_id: str, name: str = "legal", version: str = "1.0.0", **fields: Any) -> EmbeddingModelMetadata:
    base: dict[str, Any] = {
        "format": ModelFormat.SENTENCE_TRANSFORMERS,
        "embedding_dim": 384,
        "max_seq_length": 256,
    }
    return EmbeddingModelMetadata(model_id=model_id, model_name=name, version=version, **{**base, **fields})


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "reg")


@pytest.fixture
def legal(registry: ModelRegistry) -> ModelRegistry:
    """A registry holding legal@1.0.0, legal@1.1.0 and legal@2.0.0 (ids legal-1, legal-2, legal-3)."""
    for n, version in enumerate(["1.0.0", "1.1.0", "2.0.0"], start=1):
        registry.register_model(meta(f"legal-{n}", version=version, domain="legal"))
    return registry


def ids(items: list[EmbeddingModelMetadata]) -> list[str]:
    return [m.model_id for m in items]


# -- registering and persistence -------------------------------------------------------------------


def test_register_then_get_returns_metadata(registry: ModelRegistry) -> None:
    registry.register_model(meta("m1", description="contracts"))
    got = registry.get_model("m1")
    assert got is not None and got.description == "contracts"


def test_get_unknown_model_returns_none(registry: ModelRegistry) -> None:
    assert registry.get_model("nope") is None


def test_everything_persists_across_instances(tmp_path: Path) -> None:
    first = ModelRegistry(tmp_path / "reg")
    first.register_model(meta("base", "mini"))
    first.register_model(meta("v1", version="1.0.0", base_model="base"), metrics={"recall@5": 0.5})
    first.register_model(meta("v2", version="2.0.0"))
    first.set_alias("legal", "production", "v1")
    first.deprecate("v2", "bad recall")
    first.close()

    second = ModelRegistry(tmp_path / "reg")
    record = second.get_record("v1")
    assert record.metrics == {"recall@5": 0.5}
    assert second.aliases("legal") == {"production": "v1"}
    assert second.ancestors("v1") == ["base"]
    assert second.get_record("v2").deprecation_reason == "bad recall"


def test_duplicate_version_is_refused_listing_existing_versions(legal: ModelRegistry) -> None:
    with pytest.raises(DuplicateVersionError, match=r"existing versions: 1\.0\.0, 1\.1\.0, 2\.0\.0"):
        legal.register_model(meta("other-id", version="1.1.0", description="impostor"))
    assert legal.get_model("other-id") is None
    assert len(legal.versions("legal")) == 3


def test_duplicate_model_id_is_refused_and_original_kept(legal: ModelRegistry) -> None:
    with pytest.raises(DuplicateVersionError, match="legal-1"):
        legal.register_model(meta("legal-1", name="other", version="9.0.0"))
    kept = legal.get_model("legal-1")
    assert kept is not None and kept.model_name == "legal"


def test_invalid_semver_in_metadata_is_rejected_by_the_model() -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        meta("x", version="1.2")


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"pooling_strategy": "median"}, InvalidConfigError),
        ({"batch_size": 0}, InvalidConfigError),
        ({"pooling": "mean"}, InvalidConfigError),
        ({"model_path": "/elsewhere"}, InvalidConfigError),
    ],
    ids=["bad-pooling", "bad-batch", "unknown-key", "reserved-key"],
)
def test_invalid_load_config_is_refused(registry: ModelRegistry, config: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        registry.register_model(meta("m1"), load_config=config)
    assert registry.get_model("m1") is None


def test_load_config_is_kept_as_given(registry: ModelRegistry) -> None:
    registry.register_model(meta("m1"), load_config={"pooling_strategy": "cls", "quantization": "int8"})
    assert registry.get_record("m1").load_config == {"pooling_strategy": "cls", "quantization": "int8"}


# -- listing and search ----------------------------------------------------------------------------


@pytest.fixture
def mixed(registry: ModelRegistry) -> ModelRegistry:
    registry.register_model(meta("med-1", "med", "1.0.0", domain="medical", tags=["bio", "small"]))
    registry.register_model(meta("med-2", "med", "1.4.0", domain="medical", tags=["bio"], description="PubMed tuned"))
    registry.register_model(meta("law-1", "law", "2.0.0", domain="legal", format=ModelFormat.ONNX, tags=["fast"]))
    registry.deprecate("med-1", "superseded")
    return registry


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"domain": "medical"}, ["med-1", "med-2"]),
        ({"format": "onnx"}, ["law-1"]),
        ({"format": ModelFormat.ONNX}, ["law-1"]),
        ({"tags": ["small", "fast"]}, ["law-1", "med-1"]),
        ({"name": "med"}, ["med-1", "med-2"]),
        ({"text": "PUBMED"}, ["med-2"]),
        ({"version_range": ">=1.2.0,<2.0.0"}, ["med-2"]),
        ({"version_range": "^2.0.0"}, ["law-1"]),
        ({"include_deprecated": False}, ["law-1", "med-2"]),
        ({"domain": "medical", "tags": ["small"]}, ["med-1"]),
    ],
    ids=["domain", "format-str", "format-enum", "any-tag", "name", "text", "range", "caret", "active", "and"],
)
def test_list_filters(mixed: ModelRegistry, filters: dict[str, Any], expected: list[str]) -> None:
    assert ids(mixed.list_models(**filters)) == expected


def test_list_unknown_format_names_choices(mixed: ModelRegistry) -> None:
    with pytest.raises(UnknownFormatError, match="sentence_transformers"):
        mixed.list_models(format="tensorflow")


def test_list_invalid_range_raises_invalid_version(mixed: ModelRegistry) -> None:
    with pytest.raises(InvalidVersionError):
        mixed.list_models(version_range=">=1.x")


@pytest.mark.parametrize(("query", "expected"), [("MED", ["med-1", "med-2"]), ("pubmed", ["med-2"]), ("zzz", [])])
def test_search_is_case_insensitive_on_name_or_description(
    mixed: ModelRegistry, query: str, expected: list[str]
) -> None:
    assert ids(mixed.search_models(query)) == expected


# -- metrics ---------------------------------------------------------------------------------------


def test_update_metrics_splits_metadata_fields_and_free_form(registry: ModelRegistry) -> None:
    registry.register_model(meta("m1"))
    updated = registry.update_metrics("m1", {"ndcg_at_10": 0.71, "recall@5": 0.8, "mrr_score": 0.6})
    assert (updated.ndcg_at_10, updated.mrr_score) == (0.71, 0.6)
    assert registry.get_record("m1").metrics == {"recall@5": 0.8}


def test_update_metrics_unknown_model_raises_not_found(legal: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError, match="'ghost' is not registered; registered: legal-1, legal-2"):
        legal.update_metrics("ghost", {"ndcg_at_10": 0.5})
    assert legal.get_model("ghost") is None


@pytest.mark.parametrize(
    "metrics",
    [{"ndcg_at_10": math.nan}, {"recall@5": math.inf}, {"x": "high"}, {"": 1.0}, {"model_size_mb": -1.0}],
    ids=["nan-field", "inf-free", "string", "empty-key", "negative-size"],
)
def test_invalid_metrics_are_refused_and_nothing_changes(registry: ModelRegistry, metrics: dict[str, Any]) -> None:
    registry.register_model(meta("m1"), metrics={"recall@5": 0.3})
    with pytest.raises(InvalidArgumentError):
        registry.update_metrics("m1", metrics)
    record = registry.get_record("m1")
    assert record.metrics == {"recall@5": 0.3} and record.metadata.ndcg_at_10 is None


# -- delete ----------------------------------------------------------------------------------------


def test_delete_returns_false_for_unknown(registry: ModelRegistry) -> None:
    assert registry.delete_model("nope") is False


def test_delete_removes_model(legal: ModelRegistry) -> None:
    assert legal.delete_model("legal-2") is True
    assert legal.get_model("legal-2") is None


def test_delete_refuses_alias_target_naming_the_alias(legal: ModelRegistry) -> None:
    legal.set_alias("legal", "production", "legal-2")
    with pytest.raises(FailedPreconditionError, match="production"):
        legal.delete_model("legal-2")
    assert legal.get_model("legal-2") is not None


def test_delete_keeps_artifact_shared_with_another_model(registry: ModelRegistry, tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"same weights")
    registry.register_model(meta("a", version="1.0.0"), artifact_path=weights)
    registry.register_model(meta("b", version="1.0.1"), artifact_path=weights)
    registry.delete_model("a")
    path = registry.artifact_path("b")
    assert path is not None and path.read_bytes() == b"same weights"


def test_delete_removes_unshared_artifact(registry: ModelRegistry, tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"only mine")
    digest = registry.register_model(meta("a"), artifact_path=weights).artifact_sha256
    assert digest is not None
    registry.delete_model("a")
    assert not registry.artifacts.exists(digest)


# -- references, versions and deprecation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("legal-1", "legal-1"),
        ("legal@1.1.0", "legal-2"),
        ("legal", "legal-3"),
        ("legal@candidate", "legal-1"),
    ],
    ids=["id", "name@version", "bare-name-highest", "name@alias"],
)
def test_resolve_reference_forms(legal: ModelRegistry, ref: str, expected: str) -> None:
    legal.set_alias("legal", "candidate", "1.0.0")
    assert legal.resolve(ref).model_id == expected


def test_bare_name_prefers_production_alias(legal: ModelRegistry) -> None:
    legal.set_alias("legal", "production", "legal-2")
    assert legal.resolve("legal").model_id == "legal-2"


def test_bare_name_skips_deprecated_highest_version(legal: ModelRegistry) -> None:
    legal.deprecate("legal-3", "regression")
    assert legal.resolve("legal").model_id == "legal-2"


def test_resolve_unknown_version_lists_registered(legal: ModelRegistry) -> None:
    with pytest.raises(
        ModelNotFoundError, match=r"'legal@2\.1\.0' is not registered; registered: legal@2\.0\.0, legal@1\.1"
    ):
        legal.resolve("legal@2.1.0")


def test_resolve_deprecated_raises_with_reason_unless_allowed(legal: ModelRegistry) -> None:
    legal.deprecate("legal-1", "tokenizer bug")
    with pytest.raises(ModelDeprecatedError, match=r"'legal-1' \(legal@1\.0\.0\) is deprecated: tokenizer bug"):
        legal.resolve("legal@1.0.0")
    assert legal.resolve("legal@1.0.0", allow_deprecated=True).model_id == "legal-1"


def test_undeprecate_makes_version_usable_again(legal: ModelRegistry) -> None:
    legal.deprecate("legal-1")
    legal.undeprecate("legal-1")
    assert legal.resolve("legal-1").deprecated is False


def test_versions_sorted_by_semver(registry: ModelRegistry) -> None:
    for version in ["1.10.0", "1.2.0", "1.9.0"]:
        registry.register_model(meta(f"v{version}", version=version))
    assert [r.metadata.version for r in registry.versions("legal")] == ["1.2.0", "1.9.0", "1.10.0"]


@pytest.mark.parametrize(("bump", "expected"), [("major", "3.0.0"), ("minor", "2.1.0"), ("patch", "2.0.1")])
def test_next_version_bumps_highest(legal: ModelRegistry, bump: str, expected: str) -> None:
    assert legal.next_version("legal", bump) == expected


def test_next_version_of_new_name_is_1_0_0(registry: ModelRegistry) -> None:
    assert registry.next_version("fresh") == "1.0.0"


# -- aliases ---------------------------------------------------------------------------------------


def test_alias_to_missing_version_raises_and_keeps_alias(legal: ModelRegistry) -> None:
    legal.set_alias("legal", "production", "1.0.0")
    with pytest.raises(ModelNotFoundError, match=r"legal@3\.0\.0"):
        legal.set_alias("legal", "production", "3.0.0")
    assert legal.aliases("legal") == {"production": "legal-1"}


def test_alias_to_deprecated_version_needs_force(legal: ModelRegistry) -> None:
    legal.deprecate("legal-3", "drift")
    with pytest.raises(ModelDeprecatedError):
        legal.set_alias("legal", "production", "2.0.0")
    assert legal.aliases("legal") == {}
    assert legal.set_alias("legal", "production", "2.0.0", force=True).model_id == "legal-3"


def test_alias_to_model_of_another_name_is_refused(legal: ModelRegistry) -> None:
    legal.register_model(meta("med-1", name="med"))
    with pytest.raises(InvalidArgumentError, match="not of 'legal'"):
        legal.set_alias("legal", "production", "med-1")


@pytest.mark.parametrize("alias", ["", "a@b", "1.0.0"], ids=["empty", "at-sign", "looks-like-version"])
def test_bad_alias_names_are_refused(legal: ModelRegistry, alias: str) -> None:
    with pytest.raises(InvalidArgumentError):
        legal.set_alias("legal", alias, "legal-1")


def test_registering_with_an_alias_points_it_at_the_new_version_with_history(legal: ModelRegistry) -> None:
    legal.set_alias("legal", "candidate", "legal-3")
    record = legal.register_model(meta("legal-4", version="2.1.0"), aliases=("candidate",))
    assert legal.get_alias("legal", "candidate").model_id == record.model_id == "legal-4"
    assert legal.rollback("legal", "candidate").model_id == "legal-3"  # the previous target is kept


def test_one_alias_given_as_a_string_is_one_alias_not_its_letters(registry: ModelRegistry) -> None:
    registry.register_model(meta("legal-1"), aliases="candidate")
    assert registry.aliases("legal") == {"candidate": "legal-1"}


@pytest.mark.parametrize("alias", ["", "a@b", "1.0.0"], ids=["empty", "at-sign", "looks-like-version"])
def test_registering_with_a_bad_alias_stores_nothing(registry: ModelRegistry, tmp_path: Path, alias: str) -> None:
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(b"weights")
    with pytest.raises(InvalidArgumentError, match="alias"):
        registry.register_model(meta("legal-1"), artifact_path=artifact, aliases=(alias,))
    assert registry.get_model("legal-1") is None
    assert registry.gc_artifacts() == []  # refused before the artifact was copied


def test_a_refused_registration_leaves_the_alias_where_it_was(legal: ModelRegistry) -> None:
    legal.set_alias("legal", "candidate", "legal-2")
    with pytest.raises(DuplicateVersionError):
        legal.register_model(meta("legal-9", version="2.0.0"), aliases=("candidate",))
    assert legal.aliases("legal") == {"candidate": "legal-2"}


@pytest.mark.parametrize("refusal", ["duplicate-version", "failed-check"])
def test_the_store_sets_no_alias_when_the_insert_it_belongs_to_fails(tmp_path: Path, refusal: str) -> None:
    # Below ModelRegistry's own pre-checks: the alias and the insert are one transaction.
    store = SQLiteRegistryStore(tmp_path / "r.db")
    store.insert_model(ModelRecord(metadata=meta("legal-1")), aliases=("candidate",))
    history = store.alias_history("legal", "candidate")

    def refuse(record: ModelRecord) -> None:
        raise FailedPreconditionError("refused by the check")

    if refusal == "duplicate-version":
        with pytest.raises(DuplicateVersionError):
            store.insert_model(ModelRecord(metadata=meta("legal-2", version="1.0.0")), aliases=("candidate",))
    else:
        with pytest.raises(FailedPreconditionError, match="refused by the check"):
            store.insert_model(ModelRecord(metadata=meta("legal-2", version="1.1.0")), aliases=("candidate",),
                               check=refuse)  # fmt: skip
    assert store.get_model("legal-2") is None
    assert store.aliases("legal") == {"candidate": "legal-1"}
    assert store.alias_history("legal", "candidate") == history
    store.close()


def test_unset_alias_error_lists_set_aliases(legal: ModelRegistry) -> None:
    legal.set_alias("legal", "candidate", "legal-2")
    with pytest.raises(AliasNotFoundError, match="set aliases: candidate"):
        legal.get_alias("legal", "production")


def test_alias_can_promote_another_alias(legal: ModelRegistry) -> None:
    legal.set_alias("legal", "candidate", "legal-3")
    legal.set_alias("legal", "production", "candidate")
    assert legal.get_alias("legal", "production").model_id == "legal-3"


def test_rollback_twice_walks_back_through_history(legal: ModelRegistry) -> None:
    for target in ["legal-1", "legal-2", "legal-3"]:
        legal.set_alias("legal", "production", target)
    assert legal.rollback("legal", "production").model_id == "legal-2"
    assert legal.rollback("legal", "production").model_id == "legal-1"
    with pytest.raises(FailedPreconditionError, match="no earlier target"):
        legal.rollback("legal", "production")
    assert legal.get_alias("legal", "production").model_id == "legal-1"


def test_a_forced_rollback_of_the_first_target_unsets_the_alias(legal: ModelRegistry) -> None:
    """Issue 18, item 12: a never-set ``production`` pointed at a broken version could not be rolled back
    ("no earlier target"), so a client's mistake stuck; a forced rollback returns to before the first set."""
    legal.deprecate("legal-3", "broken")
    legal.set_alias("legal", "production", "legal-1")  # a version that is not the name's default
    with pytest.raises(FailedPreconditionError, match="force"):
        legal.rollback("legal", "production")

    back = legal.rollback("legal", "production", force=True)

    assert legal.aliases("legal") == {}
    assert back.model_id == legal.resolve("legal").model_id == "legal-2"  # the bare name's default again
    assert [(e.action, e.model_id) for e in legal.alias_history("legal", "production")][-1] == ("rollback", None)
    with pytest.raises(AliasNotFoundError):
        legal.rollback("legal", "production", force=True)  # nothing further back


def test_rollback_of_unset_alias_raises_alias_not_found(legal: ModelRegistry) -> None:
    with pytest.raises(AliasNotFoundError):
        legal.rollback("legal", "production")


def test_alias_history_keeps_every_event(legal: ModelRegistry) -> None:
    legal.set_alias("legal", "production", "legal-1")
    legal.set_alias("legal", "production", "legal-2")
    legal.rollback("legal", "production")
    legal.remove_alias("legal", "production")
    history = legal.alias_history("legal", "production")
    assert [(e.action, e.previous_model_id, e.model_id) for e in history] == [
        ("set", None, "legal-1"),
        ("set", "legal-1", "legal-2"),
        ("rollback", "legal-2", "legal-1"),
        ("remove", "legal-1", None),
    ]


# -- issue 18, item 14: what a new registration may store ---------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"model_id": "legal\x00one"}, "model_id"),
        ({"model_id": "legal\x1b[2Jone"}, "model_id"),
        ({"model_id": "legal\u200bone"}, "model_id"),
        ({"model_id": ".hidden"}, "model_id"),
        ({"model_id": "x" * 129}, "model_id"),
        ({"name": "legal team"}, "model_name"),
        ({"version": "99999999999999999999999.0.0"}, "2147483647"),
        ({"domain": "legal\nmedical"}, "domain"),
        ({"description": "right-to-left \u202e override"}, "description"),
        ({"tags": [f"t{n}" for n in range(65)]}, "tags"),
        ({"max_seq_length": 10**9}, "max_seq_length"),
    ],
    ids=["nul", "escape", "zero-width", "leading-dot", "too-long", "space-in-name", "version-beyond-32-bits",
         "newline-in-domain", "bidi-override", "too-many-tags", "absurd-token-limit"],
)  # fmt: skip
def test_malformed_metadata_is_refused_and_nothing_is_stored(
    registry: ModelRegistry, tmp_path: Path, fields: dict[str, Any], named: str
) -> None:
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(b"weights")
    metadata = meta(fields.pop("model_id", "legal-1"), **fields)

    with pytest.raises(InvalidArgumentError, match=named):
        registry.register_model(metadata, artifact_path=artifact)

    assert registry.list_models() == [] and registry.gc_artifacts() == []  # refused before the copy


@pytest.mark.parametrize("model_id", ["legal-1.0.0+gpu", "org/legal_v2", "L"], ids=["build-metadata", "slash", "one"])
def test_ids_in_the_documented_character_set_are_accepted(registry: ModelRegistry, model_id: str) -> None:
    registry.register_model(meta(model_id, description="Verträge, 合同\nsecond line", tags=["dataset:cuad"]))
    assert registry.get_record(model_id).metadata.description == "Verträge, 合同\nsecond line"


def test_records_stored_before_the_rules_stay_readable_and_updatable(tmp_path: Path) -> None:
    store = SQLiteRegistryStore(tmp_path / "reg" / "registry.db")
    store.insert_model(ModelRecord(metadata=meta("old id with spaces", version="99999999999.0.0")))
    registry = ModelRegistry(tmp_path / "reg", store=store)

    registry.update_metrics("old id with spaces", {"ndcg_at_10": 0.5})

    assert registry.resolve("old id with spaces").metadata.ndcg_at_10 == 0.5


@pytest.mark.parametrize("alias", ["my alias", "prod\x00", "a" * 129], ids=["space", "nul", "too-long"])
def test_alias_names_follow_the_character_set(legal: ModelRegistry, alias: str) -> None:
    with pytest.raises(InvalidArgumentError, match="alias"):
        legal.set_alias("legal", alias, "legal-1")
    assert legal.aliases("legal") == {}


@pytest.mark.parametrize(
    ("metrics", "fragment"),
    [
        ({"ndcg_at_10": -5.0}, "ndcg_at_10"),
        ({"mrr_score": 1.5}, "mrr_score"),
        ({"test_recall@100": 2.0}, "test_recall@100"),
        ({"scifact/test/map@10": -0.1}, "scifact/test/map@10"),
        ({"bad\x00name": 1.0}, "metric name"),
    ],
    ids=["negative-ndcg", "mrr-above-one", "prefixed-recall", "evaluation-key", "nul-in-name"],
)
def test_metrics_out_of_their_range_are_refused(legal: ModelRegistry, metrics: dict[str, float], fragment: str) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(fragment)):
        legal.update_metrics("legal-1", metrics)
    with pytest.raises(InvalidArgumentError, match=re.escape(fragment)):
        legal.register_model(meta("legal-9", version="9.0.0"), metrics=metrics)
    assert legal.get_record("legal-1").all_metrics() == {}


def test_metrics_without_a_known_range_keep_any_finite_value(legal: ModelRegistry) -> None:
    legal.update_metrics("legal-1", {"p99_ms": 12.0, "test_ndcg@10_delta": -0.02, "hp_learning_rate": 2e-5})
    assert legal.get_record("legal-1").metrics["test_ndcg@10_delta"] == -0.02


def test_a_deprecation_reason_is_printable_and_bounded(legal: ModelRegistry) -> None:
    with pytest.raises(InvalidArgumentError, match="deprecation reason"):
        legal.deprecate("legal-1", "x" * 5000)
    with pytest.raises(InvalidArgumentError, match="deprecation reason"):
        legal.deprecate("legal-1", "leaks\x1b[2J")
    assert legal.deprecate("legal-1", "leaks PII;\nsee ticket 12").deprecated


def _sentence_transformers_dir(directory: Path, width: int) -> Path:
    (directory / "1_Pooling").mkdir(parents=True)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "config.json").write_text(json.dumps({"hidden_size": width}))
    pooling = {"word_embedding_dimension": width, "pooling_mode_mean_tokens": True}
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return directory


def test_an_embedding_dim_other_than_the_artifacts_is_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    """Issue 18, item 14: ``embedding_dim`` 7 was stored for a 384-dimensional model, which then served 384."""
    artifact = _sentence_transformers_dir(tmp_path / "model", 384)

    with pytest.raises(
        InvalidArgumentError, match="declare 384-dimensional vectors; register it with embedding_dim=384"
    ):
        registry.register_model(meta("legal-1", embedding_dim=7), artifact_path=artifact)

    assert registry.list_models() == [] and registry.gc_artifacts() == []
    assert registry.register_model(meta("legal-1"), artifact_path=artifact).metadata.embedding_dim == 384


def test_an_artifact_whose_files_do_not_say_its_dimension_is_not_checked(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    artifact = tmp_path / "custom"
    artifact.mkdir()
    (artifact / "model.safetensors").write_bytes(b"\x00" * 16)
    assert registry.register_model(meta("legal-1", embedding_dim=7), artifact_path=artifact).metadata.embedding_dim == 7


# -- comparison and lineage ------------------------------------------------------------------------


def test_compare_lists_differing_metadata_and_metric_deltas(registry: ModelRegistry) -> None:
    registry.register_model(meta("a", version="1.0.0", domain="legal"), metrics={"ndcg_at_10": 0.6, "recall@5": 0.7})
    registry.register_model(meta("b", version="1.1.0", domain="legal"), metrics={"ndcg_at_10": 0.7, "p95_ms": 12.0})
    comparison = registry.compare("legal@1.0.0", "b")
    assert comparison.metadata_diff["version"] == ("1.0.0", "1.1.0")
    assert "domain" not in comparison.metadata_diff
    assert comparison.metrics["ndcg_at_10"].delta == pytest.approx(0.1)
    assert (comparison.metrics["recall@5"].b, comparison.metrics["p95_ms"].a) == (None, None)


@pytest.fixture
def chain(registry: ModelRegistry) -> ModelRegistry:
    """base -> v1 -> v2, plus a sibling v1b of v1."""
    registry.register_model(meta("base", "mini"))
    registry.register_model(meta("v1", version="1.0.0", base_model="base"))
    registry.register_model(meta("v2", version="2.0.0", base_model="v1"))
    registry.register_model(meta("v1b", version="1.5.0", base_model="base"))
    return registry


def test_ancestors_are_nearest_first(chain: ModelRegistry) -> None:
    assert chain.ancestors("v2") == ["v1", "base"]


def test_descendants_are_breadth_first(chain: ModelRegistry) -> None:
    assert chain.descendants("base") == ["v1", "v1b", "v2"]


def test_lineage_edges_and_hub_base_without_edge(chain: ModelRegistry) -> None:
    chain.register_model(meta("hubbed", "x", base_model="sentence-transformers/all-MiniLM-L6-v2"))
    assert sorted(chain.lineage_edges()) == [("v1", "base"), ("v1b", "base"), ("v2", "v1")]


def test_lineage_of_unknown_model_raises(chain: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError):
        chain.descendants("ghost")


# -- artifacts through the registry ----------------------------------------------------------------


def test_artifact_path_returns_verified_directory(registry: ModelRegistry, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "sub").mkdir(parents=True)
    (model_dir / "config.json").write_text("{}")
    (model_dir / "sub" / "weights.bin").write_bytes(b"\x00" * 100)
    registry.register_model(meta("m1"), artifact_path=model_dir)
    path = registry.artifact_path("m1")
    assert path is not None and (path / "sub" / "weights.bin").read_bytes() == b"\x00" * 100


def test_corrupt_artifact_is_detected_naming_the_file(registry: ModelRegistry, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(b"\x01\x02\x03\x04")
    registry.register_model(meta("m1"), artifact_path=model_dir)
    stored = registry.artifact_path("m1")
    assert stored is not None
    data = bytearray((stored / "weights.bin").read_bytes())
    data[2] ^= 0xFF
    (stored / "weights.bin").write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="weights.bin"):
        registry.artifact_path("m1")
    assert registry.get_model("m1") is not None


def test_model_without_artifact_has_no_path(registry: ModelRegistry) -> None:
    registry.register_model(meta("m1"))
    assert registry.artifact_path("m1") is None


def test_missing_artifact_path_registers_nothing(registry: ModelRegistry, tmp_path: Path) -> None:
    with pytest.raises(ModelPathNotFoundError, match="absent"):
        registry.register_model(meta("m1"), artifact_path=tmp_path / "absent")
    assert registry.get_model("m1") is None


def test_gc_removes_only_unreferenced_artifacts(registry: ModelRegistry, tmp_path: Path) -> None:
    used, stray = tmp_path / "used.bin", tmp_path / "stray.bin"
    used.write_bytes(b"used")
    stray.write_bytes(b"stray")
    kept = registry.register_model(meta("m1"), artifact_path=used).artifact_sha256
    orphan = registry.artifacts.put(stray)  # as an interrupted registration would leave it
    assert registry.gc_artifacts() == [orphan]
    assert registry.artifacts.digests() == [kept]


# -- the database ----------------------------------------------------------------------------------


def test_new_database_has_every_migration_applied(tmp_path: Path) -> None:
    store = SQLiteRegistryStore(tmp_path / "r.db")
    assert store.schema_version() == len(MIGRATIONS)
    assert store.integrity_check() == "ok"


def test_database_from_newer_release_is_refused(tmp_path: Path) -> None:
    SQLiteRegistryStore(tmp_path / "r.db").close()
    with sqlite3.connect(tmp_path / "r.db") as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(FailedPreconditionError, match="upgrade rag-factory"):
        SQLiteRegistryStore(tmp_path / "r.db")


def test_registry_accepts_an_injected_store(tmp_path: Path) -> None:
    store = SQLiteRegistryStore(tmp_path / "elsewhere.db")
    ModelRegistry(tmp_path / "reg", store=store).register_model(meta("m1"))
    assert ModelRegistry(tmp_path / "other", store=store).get_model("m1") is not None
    assert not (tmp_path / "reg" / "registry.db").exists()


def test_rollback_to_deprecated_version_needs_force(legal: ModelRegistry) -> None:
    legal.set_alias("legal", "production", "legal-1")
    legal.set_alias("legal", "production", "legal-2")
    legal.deprecate("legal-1", "leaks PII")
    with pytest.raises(ModelDeprecatedError, match="leaks PII"):
        legal.rollback("legal", "production")
    assert legal.get_alias("legal", "production").model_id == "legal-2"
    assert legal.rollback("legal", "production", force=True).model_id == "legal-1"
