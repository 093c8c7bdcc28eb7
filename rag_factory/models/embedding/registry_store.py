"""What the model registry needs from a database: the ``RegistryStore`` protocol.

``SQLiteRegistryStore`` (``sqlite_registry_store.py``) implements it; a store shared by several
sidecar replicas (PostgreSQL, say) would implement the same methods with the same atomicity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from rag_factory.models.embedding.records import AliasEvent, ModelRecord

RecordCheck = Callable[[ModelRecord], None]
RecordUpdate = Callable[[ModelRecord], ModelRecord]


class RegistryStore(Protocol):
    """What ``ModelRegistry`` needs from a database. Every method is atomic and thread-safe."""

    def insert_model(
        self,
        record: ModelRecord,
        *,
        parent_id: str | None = None,
        check: RecordCheck | None = None,
        aliases: Sequence[str] = (),
    ) -> None:
        """Insert a record, plus a lineage edge to ``parent_id`` if that model is registered.

        ``check`` runs inside the transaction, before the insert; whatever it raises aborts it.
        Each of ``aliases`` is pointed at the new record in the same transaction, as ``push_alias``
        would, so no reader ever sees the record without them.

        Raises:
            DuplicateVersionError: The model id or (name, version) is taken.
        """
        ...

    def get_model(self, model_id: str) -> ModelRecord | None:
        """The record with this id, or None."""
        ...

    def find_version(self, model_name: str, version: str) -> ModelRecord | None:
        """The record of ``model_name`` at ``version``, or None."""
        ...

    def list_models(
        self,
        *,
        name: str | None = None,
        domain: str | None = None,
        format: str | None = None,
        include_deprecated: bool = True,
    ) -> list[ModelRecord]:
        """Records matching every given filter, ordered by name then registration."""
        ...

    def update_model(self, model_id: str, update: RecordUpdate) -> ModelRecord | None:
        """Read, transform and write a record in one transaction; None if it is not registered."""
        ...

    def delete_model(self, model_id: str) -> tuple[bool, str | None]:
        """Delete a record and its lineage edges.

        Returns:
            Whether it existed, and its artifact digest (which other records may share).

        Raises:
            FailedPreconditionError: An alias currently points to the model.
        """
        ...

    def release_artifact(self, digest: str, remove: Callable[[str], object]) -> bool:
        """Call ``remove(digest)`` under the write lock if no record uses the digest; return whether it did.

        Holding the lock serialises this with ``insert_model``, whose ``check`` can then see
        whether the artifact it refers to still exists.
        """
        ...

    def push_alias(self, model_name: str, alias: str, model_id: str, check: RecordCheck) -> str | None:
        """Point an alias at ``model_id`` (after ``check`` accepts it); return the previous target."""
        ...

    def pop_alias(
        self, model_name: str, alias: str, check: RecordCheck, *, unset_first: bool = False
    ) -> tuple[str, str | None] | None:
        """Re-point an alias to its previous target (after ``check`` accepts it).

        Args:
            model_name: The model name.
            alias: The alias.
            check: Refuses a target (deprecated, say) by raising.
            unset_first: When the current target is the alias's first, unset the alias instead of raising.

        Returns:
            ``(old_target, new_target)``, with ``new_target`` None when the alias was unset, or None if
            the alias is not set.

        Raises:
            FailedPreconditionError: There is no earlier target and ``unset_first`` is False.
        """
        ...

    def remove_alias(self, model_name: str, alias: str) -> bool:
        """Unset an alias, keeping its history; False if it was not set."""
        ...

    def aliases(self, model_name: str) -> dict[str, str]:
        """Alias -> current model id, for every alias set on ``model_name``."""
        ...

    def alias_history(self, model_name: str, alias: str) -> list[AliasEvent]:
        """Every event of one alias, oldest first."""
        ...

    def ancestors(self, model_id: str) -> list[str]:
        """Model ids this model derives from, nearest first."""
        ...

    def descendants(self, model_id: str) -> list[str]:
        """Model ids derived from this model, breadth-first."""
        ...

    def lineage_edges(self) -> list[tuple[str, str]]:
        """Every ``(child_id, parent_id)`` edge."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
