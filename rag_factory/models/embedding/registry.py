"""The model registry: versions, aliases, lineage, deprecation and artifacts of embedding models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rag_factory.errors import (
    AliasNotFoundError,
    DuplicateVersionError,
    InvalidArgumentError,
    ModelDeprecatedError,
    ModelNotFoundError,
    UnavailableError,
    UnknownFormatError,
    describe_choices,
    quoted,
)
from rag_factory.models.embedding.artifacts import ArtifactStore
from rag_factory.models.embedding.models import EmbeddingModelMetadata, ModelFormat
from rag_factory.models.embedding.names import MAX_NAME_CHARS, check_name, check_text
from rag_factory.models.embedding.records import (
    MAX_REASON_CHARS,
    METADATA_METRIC_FIELDS,
    AliasEvent,
    MetricDelta,
    ModelComparison,
    ModelRecord,
    check_declared_dimension,
    check_load_config,
    check_metrics,
    check_new_metadata,
)
from rag_factory.models.embedding.registry_store import RegistryStore
from rag_factory.models.embedding.sqlite_registry_store import SQLiteRegistryStore
from rag_factory.models.embedding.versions import (
    BUMPS,
    VersionRange,
    bump_version,
    is_version,
    version_key,
)
from rag_factory.storage import database_path

if TYPE_CHECKING:
    from rag_factory.models.embedding.backends.base import EmbeddingModel
    from rag_factory.models.embedding.loader import CustomModelLoader

PRODUCTION = "production"


class ModelRegistry:
    """Registered embedding models, persisted under ``registry_path``.

    Models are referenced by id, by ``name@version``, by ``name@alias`` or by a bare name (its
    ``production`` alias, else its highest non-deprecated version). Every change is stored at
    once, so a new ``ModelRegistry`` on the same path, in any process, sees it.

    Args:
        registry_path: Directory holding ``registry.db`` and ``artifacts/`` (created if needed).
        store: Database to use instead of ``<registry_path>/registry.db``.
    """

    def __init__(self, registry_path: str | Path = "./model_registry", *, store: RegistryStore | None = None) -> None:
        self.path = Path(registry_path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._store: RegistryStore = store or SQLiteRegistryStore(database_path(self.path))
        self.artifacts = ArtifactStore(self.path / "artifacts")

    def close(self) -> None:
        """Release database connections."""
        self._store.close()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- registering and reading -----------------------------------------------------------------

    def register_model(
        self,
        metadata: EmbeddingModelMetadata,
        *,
        artifact_path: str | Path | None = None,
        load_config: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        aliases: Sequence[str] = (),
    ) -> ModelRecord:
        """Register a new model version.

        Args:
            metadata: The model's metadata; ``model_id`` and ``(model_name, version)`` must be new.
                A ``base_model`` that is a registered id becomes a lineage edge.
            artifact_path: File or directory to store content-addressed with the record.
            load_config: Loading options, i.e. ``ModelConfig`` fields other than ``model_path``
                and ``model_format`` (pooling_strategy, normalize_embeddings, quantization, ...).
            metrics: Initial metrics; metadata metric fields go into the metadata.
            aliases: Aliases of ``metadata.model_name`` to point at the new version, in the same
                transaction as the registration (say ``("candidate",)``): either both happen or neither.

        Returns:
            The stored record.

        Raises:
            DuplicateVersionError: The id or the version is taken (the message lists the versions).
            InvalidArgumentError: Bad metadata (see ``check_new_metadata``), metrics, artifact path or
                alias name, or an ``embedding_dim`` other than the one the artifact's files declare.
            InvalidConfigError: ``load_config`` is not valid loading options.
        """
        if not isinstance(metadata, EmbeddingModelMetadata):
            raise InvalidArgumentError(f"metadata must be an EmbeddingModelMetadata, got {type(metadata).__name__}")
        check_new_metadata(metadata)
        config = check_load_config(load_config or {}, metadata.format)
        aliases = (aliases,) if isinstance(aliases, str) else tuple(aliases or ())  # one name, not its letters
        for alias in aliases:
            _check_alias_name(alias)
        # Fail before copying a possibly large artifact; the store re-checks atomically.
        if self._store.get_model(metadata.model_id) is not None:
            raise DuplicateVersionError(
                f"model id {metadata.model_id!r} is already registered; choose another id",
                model_id=metadata.model_id,
            )
        if self._store.find_version(metadata.model_name, metadata.version) is not None:
            raise DuplicateVersionError(
                f"{metadata.model_name}@{metadata.version} is already registered; existing versions: "
                f"{', '.join(r.metadata.version for r in self.versions(metadata.model_name))}",
                model_id=metadata.model_id,
            )
        record = ModelRecord(metadata=metadata, load_config=config).with_metrics(metrics or {})
        if artifact_path is not None:
            check_declared_dimension(metadata, Path(artifact_path))
        for _ in range(3):
            if artifact_path is not None:
                # Stored before the row exists, so no row ever points to a missing artifact.
                record.artifact_sha256 = self.artifacts.put(artifact_path)
            try:
                self._store.insert_model(
                    record, parent_id=metadata.base_model, check=self._artifact_present, aliases=aliases
                )
                return record
            except _ArtifactVanished:
                continue  # a concurrent delete or gc removed the shared copy; store it again
        raise UnavailableError(f"artifact of {metadata.model_id!r} keeps being removed concurrently; retry")

    def _artifact_present(self, record: ModelRecord) -> None:
        # Runs under the store's write lock, as release_artifact does, so the two cannot interleave.
        if record.artifact_sha256 is not None and not self.artifacts.exists(record.artifact_sha256):
            raise _ArtifactVanished(record.artifact_sha256)

    def get_model(self, model_id: str) -> EmbeddingModelMetadata | None:
        """The metadata of ``model_id``, or None if it is not registered."""
        record = self._store.get_model(model_id)
        return None if record is None else record.metadata

    def find_record(self, model_id: str) -> ModelRecord | None:
        """The full record of ``model_id``, or None if it is not registered."""
        return self._store.get_model(model_id)

    def get_record(self, model_id: str) -> ModelRecord:
        """The full record of ``model_id``.

        Raises:
            ModelNotFoundError: It is not registered.
        """
        record = self._store.get_model(model_id)
        if record is None:
            raise self._not_found(model_id)
        return record

    def list_records(
        self,
        domain: str | None = None,
        format: ModelFormat | str | None = None,
        tags: Iterable[str] | None = None,
        *,
        name: str | None = None,
        text: str | None = None,
        version_range: str | None = None,
        include_deprecated: bool = True,
    ) -> list[ModelRecord]:
        """Records matching every given filter, by name then semver; see ``list_models``."""
        fmt = None if format is None else _parse_format(format)
        wanted_tags = {tags} if isinstance(tags, str) else set(tags or ())
        needle = None if text is None else text.casefold()
        in_range = None if version_range is None else VersionRange.parse(version_range)
        found = []
        for record in self._store.list_models(
            name=name, domain=domain, format=fmt, include_deprecated=include_deprecated
        ):
            meta = record.metadata
            if wanted_tags and wanted_tags.isdisjoint(meta.tags):
                continue
            if needle is not None and not _text_matches(meta, needle):
                continue
            if in_range is not None and not in_range.contains(meta.version):
                continue
            found.append(record)
        return sorted(found, key=lambda r: (r.metadata.model_name, version_key(r.metadata.version)))

    def list_models(
        self,
        domain: str | None = None,
        format: ModelFormat | str | None = None,
        tags: Iterable[str] | None = None,
        *,
        name: str | None = None,
        text: str | None = None,
        version_range: str | None = None,
        include_deprecated: bool = True,
    ) -> list[EmbeddingModelMetadata]:
        """Metadata of the models matching every given filter.

        Args:
            domain: Exact domain.
            format: Storage format.
            tags: Matches a model having ANY of these tags.
            name: Exact model name.
            text: Case-insensitive substring of the name or description.
            version_range: Such as ``">=1.0.0,<2.0.0"``, ``"^1.2.0"`` or ``"~1.2.0"``.
            include_deprecated: Whether deprecated versions are listed.

        Raises:
            UnknownFormatError: ``format`` is not a known format.
            InvalidVersionError: ``version_range`` is malformed.
        """
        records = self.list_records(
            domain, format, tags, name=name, text=text,
            version_range=version_range, include_deprecated=include_deprecated,
        )  # fmt: skip
        return [record.metadata for record in records]

    def search_models(self, query: str) -> list[EmbeddingModelMetadata]:
        """Models whose name or description contains ``query``, ignoring case."""
        return self.list_models(text=query)

    def delete_model(self, model_id: str) -> bool:
        """Delete a model version; its artifact goes too unless another model shares it.

        Returns:
            False if it was not registered.

        Raises:
            FailedPreconditionError: An alias points to it (the message names the alias).
        """
        deleted, digest = self._store.delete_model(model_id)
        if digest is not None:
            self._store.release_artifact(digest, self.artifacts.remove)
        return deleted

    def gc_artifacts(self) -> list[str]:
        """Remove stored artifacts no model uses (left by interrupted registrations); return their digests."""
        return [d for d in self.artifacts.digests() if self._store.release_artifact(d, self.artifacts.remove)]

    def update_metrics(self, model_id: str, metrics: Mapping[str, float]) -> EmbeddingModelMetadata:
        """Record metrics; metadata metric fields update the metadata, other keys the metrics map.

        Raises:
            ModelNotFoundError: The model is not registered.
            InvalidArgumentError: A key is empty or a value is not a finite number.
        """
        check_metrics(metrics)  # before taking the write lock
        record = self._store.update_model(model_id, lambda old: old.with_metrics(metrics))
        if record is None:
            raise self._not_found(model_id)
        return record.metadata

    def deprecate(self, model_id: str, reason: str = "") -> ModelRecord:
        """Mark a version deprecated: ``resolve`` refuses it for new traffic unless forced.

        Raises:
            ModelNotFoundError: The model is not registered.
            InvalidArgumentError: ``reason`` is longer than ``MAX_REASON_CHARS`` or holds control characters.
        """
        return self._set_deprecated(model_id, True, reason)

    def undeprecate(self, model_id: str) -> ModelRecord:
        """Clear a deprecation.

        Raises:
            ModelNotFoundError: The model is not registered.
        """
        return self._set_deprecated(model_id, False, "")

    def _set_deprecated(self, model_id: str, deprecated: bool, reason: str) -> ModelRecord:
        check_text("deprecation reason", reason, MAX_REASON_CHARS)
        update = {"deprecated": deprecated, "deprecation_reason": reason}
        record = self._store.update_model(model_id, lambda old: old.model_copy(update=update))
        if record is None:
            raise self._not_found(model_id)
        return record

    # -- references and versions -----------------------------------------------------------------

    def resolve(self, ref: str, *, allow_deprecated: bool = False) -> ModelRecord:
        """Find the record a reference names.

        Args:
            ref: A model id, ``name@1.2.0``, ``name@alias``, or a bare name (its ``production``
                alias if set, else its highest non-deprecated version). An id wins over a name.
            allow_deprecated: Return deprecated versions instead of refusing them.

        Raises:
            ModelNotFoundError: Nothing matches.
            AliasNotFoundError: ``name@alias`` names an alias that is not set.
            ModelDeprecatedError: The target is deprecated and ``allow_deprecated`` is False.
        """
        record = self._store.get_model(ref)
        if record is None:
            name, _, selector = ref.partition("@")
            if not selector:
                record = self._default_version(name)
            elif is_version(selector):
                record = self._store.find_version(name, selector)
                if record is None:
                    raise self._not_found(ref)
            else:
                record = self.get_alias(name, selector)
        if not allow_deprecated:
            _check_usable(record)
        return record

    def _default_version(self, name: str) -> ModelRecord:
        production = self._store.aliases(name).get(PRODUCTION)
        if production is not None:
            return self.get_record(production)
        records = self.versions(name)
        if not records:
            raise self._not_found(name)
        usable = [r for r in records if not r.deprecated]
        return usable[-1] if usable else records[-1]  # all deprecated: resolve() decides

    def versions(self, name: str) -> list[ModelRecord]:
        """Every version of ``name``, lowest to highest semver (empty if none)."""
        return sorted(self._store.list_models(name=name), key=lambda r: version_key(r.metadata.version))

    def next_version(self, name: str, bump: str = "minor") -> str:
        """The version after the highest of ``name`` (``"1.0.0"`` when it has none).

        Raises:
            InvalidArgumentError: ``bump`` is not ``major``, ``minor`` or ``patch``.
        """
        if bump not in BUMPS:
            raise InvalidArgumentError(f"cannot bump {quoted(bump)}; choose one of: {', '.join(BUMPS)}")
        records = self.versions(name)
        return bump_version(records[-1].metadata.version, bump) if records else "1.0.0"

    # -- aliases ---------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, target: str, *, force: bool = False) -> ModelRecord:
        """Point ``name@alias`` at a version; the previous target is kept for ``rollback``.

        Args:
            name: Model name.
            alias: Alias such as ``production`` or ``candidate`` (not a version, no ``@``).
            target: A model id or a version of ``name``, or another alias of it (to promote).
            force: Allow a deprecated target.

        Raises:
            InvalidArgumentError: Bad alias name, or a model id of another name.
            ModelNotFoundError: No such version.
            ModelDeprecatedError: The target is deprecated and ``force`` is False.
        """
        _check_alias_name(alias)
        record = self._store.get_model(target)
        if record is None:
            if is_version(target):
                record = self._store.find_version(name, target)
            elif target in self._store.aliases(name):
                record = self.get_alias(name, target)
            if record is None:
                raise self._not_found(f"{name}@{target}")
        if record.metadata.model_name != name:
            raise InvalidArgumentError(
                f"model {quoted(target)} is a version of {record.metadata.model_name!r}, not of {quoted(name)}"
            )
        self._store.push_alias(name, alias, record.model_id, _no_check if force else _check_usable)
        return record

    def get_alias(self, name: str, alias: str) -> ModelRecord:
        """The version ``name@alias`` points to.

        Raises:
            AliasNotFoundError: The alias is not set (the message lists the set ones).
        """
        current = self._store.aliases(name)
        if alias not in current:
            if not self._store.list_models(name=name):
                raise self._not_found(name)
            raise AliasNotFoundError(
                f"alias {quoted(alias)} is not set for {quoted(name)}; set aliases: {describe_choices(current)}",
                model_name=name[:MAX_NAME_CHARS], alias=alias[:MAX_NAME_CHARS],
            )  # fmt: skip
        return self.get_record(current[alias])

    def aliases(self, name: str) -> dict[str, str]:
        """Every alias set on ``name`` -> the model id it points to."""
        return self._store.aliases(name)

    def alias_history(self, name: str, alias: str) -> list[AliasEvent]:
        """Every change of ``name@alias``, oldest first."""
        return self._store.alias_history(name, alias)

    def rollback(self, name: str, alias: str, *, force: bool = False) -> ModelRecord:
        """Re-point ``name@alias`` to its previous target; rolling back again goes further back.

        With ``force``, rolling back an alias's first target unsets the alias, as it was before it was
        first set: a client that pointed a never-set ``production`` at a broken model can undo that, and
        the bare name then resolves to its highest non-deprecated version again. Without ``force`` that
        is refused, since the bare name may then resolve to a version nobody chose.

        Args:
            name: Model name.
            alias: Alias to roll back.
            force: Allow a deprecated earlier target, and unset an alias that has none.

        Returns:
            The record the alias points at now; once unset, the record the bare name resolves to.

        Raises:
            AliasNotFoundError: The alias is not set.
            FailedPreconditionError: There is no earlier target and ``force`` is False.
            ModelDeprecatedError: The earlier target is deprecated and ``force`` is False.
        """
        moved = self._store.pop_alias(name, alias, _no_check if force else _check_usable, unset_first=force)
        if moved is None:
            self.get_alias(name, alias)  # raises the right "not set" error
            raise AliasNotFoundError(f"alias {quoted(alias)} is not set for {quoted(name)}")  # set meanwhile
        target = moved[1]
        return self.get_record(target) if target is not None else self.resolve(name, allow_deprecated=True)

    def remove_alias(self, name: str, alias: str) -> bool:
        """Unset an alias (its history stays); False if it was not set."""
        return self._store.remove_alias(name, alias)

    # -- comparison, lineage and artifacts -------------------------------------------------------

    def compare(self, a: str, b: str) -> ModelComparison:
        """Two models side by side: metadata fields that differ, and every metric with b - a.

        Raises:
            ModelNotFoundError: A reference matches nothing.
        """
        left, right = self.resolve(a, allow_deprecated=True), self.resolve(b, allow_deprecated=True)
        meta_a = left.metadata.model_dump(mode="json", exclude=set(METADATA_METRIC_FIELDS))
        meta_b = right.metadata.model_dump(mode="json", exclude=set(METADATA_METRIC_FIELDS))
        diff = {k: (meta_a[k], meta_b[k]) for k in meta_a if meta_a[k] != meta_b[k]}
        metrics_a, metrics_b = left.all_metrics(), right.all_metrics()
        metrics = {}
        for key in sorted(set(metrics_a) | set(metrics_b)):
            va, vb = metrics_a.get(key), metrics_b.get(key)
            delta = None if va is None or vb is None else vb - va
            metrics[key] = MetricDelta(a=va, b=vb, delta=delta)
        return ModelComparison(model_a=left.model_id, model_b=right.model_id, metadata_diff=diff, metrics=metrics)

    def ancestors(self, model_id: str) -> list[str]:
        """Ids this model was derived from, nearest first (base of base last).

        Raises:
            ModelNotFoundError: The model is not registered.
        """
        return self._store.ancestors(self.get_record(model_id).model_id)

    def descendants(self, model_id: str) -> list[str]:
        """Ids derived from this model, breadth-first.

        Raises:
            ModelNotFoundError: The model is not registered.
        """
        return self._store.descendants(self.get_record(model_id).model_id)

    def lineage_edges(self) -> list[tuple[str, str]]:
        """Every ``(child_id, parent_id)`` lineage edge."""
        return self._store.lineage_edges()

    def artifact_path(self, model_id: str, *, verify: bool = True) -> Path | None:
        """The stored artifact (file or directory) of a model, or None if it has none.

        Raises:
            ModelNotFoundError: The model is not registered.
            ArtifactIntegrityError: ``verify`` is True and the artifact is missing or corrupt.
        """
        digest = self.get_record(model_id).artifact_sha256
        if digest is None:
            return None
        return self.artifacts.verify(digest) if verify else self.artifacts.content_path(digest)

    # -- loading ---------------------------------------------------------------------------------
    def load_model(
        self,
        ref: str,
        loader: CustomModelLoader,
        *,
        allow_deprecated: bool = False,
        overrides: Mapping[str, Any] | None = None,
    ) -> tuple[ModelRecord, EmbeddingModel]:
        """Resolve ``ref``, refuse a deprecated version, verify the artifact and load it.

        Raises:
            ModelNotFoundError, AliasNotFoundError, ModelDeprecatedError: As :meth:`resolve`.
            FailedPreconditionError, ArtifactIntegrityError: See ``registry_loading.load_record``.
        """
        from rag_factory.models.embedding.registry_loading import load_record

        record = self.resolve(ref, allow_deprecated=allow_deprecated)
        return record, load_record(self, record, loader, overrides=overrides)

    def _not_found(self, ref: str) -> ModelNotFoundError:
        name, _, _ = ref.partition("@")
        versions = self.versions(name)
        if versions:
            known = ", ".join(r.ref for r in reversed(versions))
        else:
            known = describe_choices(r.model_id for r in self._store.list_models())
        return ModelNotFoundError(
            f"model {quoted(ref)} is not registered; registered: {known}", model_id=ref[:MAX_NAME_CHARS]
        )


class _ArtifactVanished(Exception):
    """Internal: the artifact a new record refers to was removed before the record was inserted."""


def _no_check(record: ModelRecord) -> None:
    """Accept any target (used with ``force``)."""


def _check_usable(record: ModelRecord) -> None:
    if record.deprecated:
        reason = record.deprecation_reason[:MAX_REASON_CHARS] or "no reason given"
        raise ModelDeprecatedError(
            f"model {record.model_id!r} ({record.ref}) is deprecated: {reason}; pass force/allow_deprecated "
            "to use it anyway",
            model_id=record.model_id,
        )


def _check_alias_name(alias: str) -> None:
    check_name("alias", alias)
    if is_version(alias):
        raise InvalidArgumentError(f"alias {alias!r} looks like a version; 'name@{alias}' would be ambiguous")


def _parse_format(value: ModelFormat | str) -> str:
    try:
        return ModelFormat(value).value
    except ValueError as exc:
        choices = ", ".join(f.value for f in ModelFormat)
        raise UnknownFormatError(f"unknown format {quoted(str(value))}; choose one of: {choices}") from exc


def _text_matches(meta: EmbeddingModelMetadata, needle: str) -> bool:
    return needle in meta.model_name.casefold() or needle in (meta.description or "").casefold()
