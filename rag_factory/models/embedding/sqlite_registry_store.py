"""The registry's SQLite store: the schema migrations and ``SQLiteRegistryStore`` (WAL mode)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rag_factory.errors import (
    DuplicateVersionError,
    FailedPreconditionError,
    InvalidArgumentError,
    ModelNotFoundError,
    describe_choices,
)
from rag_factory.models.embedding.models import EmbeddingModelMetadata
from rag_factory.models.embedding.records import AliasAction, AliasEvent, ModelRecord, utcnow
from rag_factory.models.embedding.registry_store import RecordCheck, RecordUpdate
from rag_factory.models.embedding.versions import sort_versions
from rag_factory.storage.sqlite import SQLiteDatabase

# Schema migrations, applied in order; the database's PRAGMA user_version counts those applied.
# To change the schema, append a new tuple of statements; never edit one that has shipped.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE models (
            model_id TEXT PRIMARY KEY,
            model_name TEXT NOT NULL,
            version TEXT NOT NULL,
            domain TEXT,
            format TEXT NOT NULL,
            metadata TEXT NOT NULL,
            metrics TEXT NOT NULL DEFAULT '{}',
            load_config TEXT NOT NULL DEFAULT '{}',
            artifact_sha256 TEXT,
            deprecated INTEGER NOT NULL DEFAULT 0,
            deprecation_reason TEXT NOT NULL DEFAULT '',
            registered_at TEXT NOT NULL,
            UNIQUE (model_name, version)
        )""",
        "CREATE INDEX models_artifact ON models (artifact_sha256)",
        """CREATE TABLE lineage (
            child_id TEXT NOT NULL,
            parent_id TEXT NOT NULL,
            PRIMARY KEY (child_id, parent_id)
        )""",
        "CREATE INDEX lineage_parent ON lineage (parent_id)",
        # The current stack of targets per alias; rollback pops the top.
        """CREATE TABLE alias_stack (
            model_name TEXT NOT NULL,
            alias TEXT NOT NULL,
            position INTEGER NOT NULL,
            model_id TEXT NOT NULL,
            PRIMARY KEY (model_name, alias, position)
        )""",
        # Append-only history of every alias change.
        """CREATE TABLE alias_events (
            sequence INTEGER PRIMARY KEY AUTOINCREMENT,
            model_name TEXT NOT NULL,
            alias TEXT NOT NULL,
            action TEXT NOT NULL,
            model_id TEXT,
            previous_model_id TEXT,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX alias_events_alias ON alias_events (model_name, alias, sequence)",
    ),
)


class SQLiteRegistryStore(SQLiteDatabase):
    """``RegistryStore`` on SQLite (see :class:`SQLiteDatabase` for durability and concurrency)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._migrate()

    def _migrate(self) -> None:
        if self.schema_version() == len(MIGRATIONS):
            return
        with self._write() as conn:
            applied = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if applied > len(MIGRATIONS):
                raise FailedPreconditionError(
                    f"registry database {self.path} has schema version {applied}, newer than this "
                    f"release understands ({len(MIGRATIONS)}); upgrade rag-factory"
                )
            for number in range(applied, len(MIGRATIONS)):
                for statement in MIGRATIONS[number]:
                    conn.execute(statement)
                # user_version is transactional: a crash mid-migration leaves the old version.
                conn.execute(f"PRAGMA user_version = {number + 1}")

    def schema_version(self) -> int:
        """The number of registry migrations applied to the database."""
        return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    # -- models -----------------------------------------------------------------------------------

    def insert_model(
        self,
        record: ModelRecord,
        *,
        parent_id: str | None = None,
        check: RecordCheck | None = None,
        aliases: Sequence[str] = (),
    ) -> None:
        """See ``RegistryStore.insert_model``."""
        meta = record.metadata
        with self._write() as conn:
            if check is not None:
                check(record)
            if _row(conn, "SELECT 1 FROM models WHERE model_id = ?", meta.model_id) is not None:
                raise DuplicateVersionError(
                    f"model id {meta.model_id!r} is already registered; choose another id",
                    model_id=meta.model_id,
                )
            existing = [
                r["version"]
                for r in conn.execute("SELECT version FROM models WHERE model_name = ?", (meta.model_name,))
            ]
            if meta.version in existing:
                raise DuplicateVersionError(
                    f"{meta.model_name}@{meta.version} is already registered; existing versions: "
                    f"{', '.join(sort_versions(existing))}",
                    model_id=meta.model_id,
                )
            conn.execute(
                f"INSERT INTO models ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})",
                _record_params(record),
            )
            if parent_id is not None:
                # Only registered parents make edges; a hub id as base_model is not in the graph.
                conn.execute(
                    "INSERT INTO lineage (child_id, parent_id) SELECT ?, model_id FROM models"
                    " WHERE model_id = ? AND model_id != ?",
                    (meta.model_id, parent_id, meta.model_id),
                )
            for alias in aliases:
                _push_alias(conn, meta.model_name, alias, meta.model_id)

    def get_model(self, model_id: str) -> ModelRecord | None:
        """See ``RegistryStore.get_model``."""
        row = _row(self._connection(), "SELECT * FROM models WHERE model_id = ?", model_id)
        return None if row is None else _to_record(row)

    def find_version(self, model_name: str, version: str) -> ModelRecord | None:
        """See ``RegistryStore.find_version``."""
        row = _row(
            self._connection(),
            "SELECT * FROM models WHERE model_name = ? AND version = ?",
            model_name,
            version,
        )
        return None if row is None else _to_record(row)

    def list_models(
        self,
        *,
        name: str | None = None,
        domain: str | None = None,
        format: str | None = None,
        include_deprecated: bool = True,
    ) -> list[ModelRecord]:
        """See ``RegistryStore.list_models``."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("model_name", name), ("domain", domain), ("format", format)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if not include_deprecated:
            clauses.append("deprecated = 0")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._connection().execute(
            f"SELECT * FROM models{where} ORDER BY model_name, registered_at, model_id", params
        )
        return [_to_record(row) for row in rows]

    def update_model(self, model_id: str, update: RecordUpdate) -> ModelRecord | None:
        """See ``RegistryStore.update_model``; identity fields (id, name, version) cannot change."""
        with self._write() as conn:
            row = _row(conn, "SELECT * FROM models WHERE model_id = ?", model_id)
            if row is None:
                return None
            old = _to_record(row)
            new = update(old)
            for field in ("model_id", "model_name", "version"):
                if getattr(new.metadata, field) != getattr(old.metadata, field):
                    raise InvalidArgumentError(f"{field} of a registered model cannot change")
            conn.execute(
                f"UPDATE models SET {', '.join(f'{c} = :{c}' for c in _COLUMNS)} WHERE model_id = :model_id",
                _record_params(new),
            )
            return new

    def delete_model(self, model_id: str) -> tuple[bool, str | None]:
        """See ``RegistryStore.delete_model``."""
        with self._write() as conn:
            row = _row(conn, "SELECT model_name, artifact_sha256 FROM models WHERE model_id = ?", model_id)
            if row is None:
                return False, None
            pointing = [r["alias"] for r in conn.execute(_CURRENT_TARGETS + " WHERE s.model_id = ?", (model_id,))]
            if pointing:
                raise FailedPreconditionError(
                    f"model {model_id!r} is the target of alias {describe_choices(pointing)} of "
                    f"{row['model_name']!r}; move or remove the alias first",
                    model_id=model_id,
                )
            conn.execute("DELETE FROM models WHERE model_id = ?", (model_id,))
            conn.execute("DELETE FROM lineage WHERE child_id = ? OR parent_id = ?", (model_id, model_id))
            # Older stack entries can no longer be rolled back to; the event history stays.
            conn.execute("DELETE FROM alias_stack WHERE model_id = ?", (model_id,))
            digest: str | None = row["artifact_sha256"]
            return True, digest

    def release_artifact(self, digest: str, remove: Callable[[str], object]) -> bool:
        """See ``RegistryStore.release_artifact``."""
        with self._write() as conn:
            if _row(conn, "SELECT 1 FROM models WHERE artifact_sha256 = ?", digest) is not None:
                return False
            remove(digest)
            return True

    # -- aliases ---------------------------------------------------------------------------------

    def push_alias(self, model_name: str, alias: str, model_id: str, check: RecordCheck) -> str | None:
        """See ``RegistryStore.push_alias``; setting the current target again records nothing."""
        with self._write() as conn:
            return _push_alias(conn, model_name, alias, self._checked_target(conn, model_name, model_id, check))

    def pop_alias(
        self, model_name: str, alias: str, check: RecordCheck, *, unset_first: bool = False
    ) -> tuple[str, str | None] | None:
        """See ``RegistryStore.pop_alias``."""
        with self._write() as conn:
            stack = [
                (int(r["position"]), str(r["model_id"]))
                for r in conn.execute(
                    "SELECT position, model_id FROM alias_stack WHERE model_name = ? AND alias = ?"
                    " ORDER BY position DESC",
                    (model_name, alias),
                )
            ]
            if not stack:
                return None
            current = stack[0][1]
            # Skip entries equal to the current target (left behind when a model in between was deleted).
            earlier = [entry for entry in stack[1:] if entry[1] != current]
            if not earlier and unset_first:
                # Back to before the first set: unset, so a mistaken first target can always be undone.
                conn.execute("DELETE FROM alias_stack WHERE model_name = ? AND alias = ?", (model_name, alias))
                _log_event(conn, model_name, alias, "rollback", None, current)
                return current, None
            if not earlier:
                raise FailedPreconditionError(
                    f"alias {alias!r} of {model_name!r} has no earlier target to roll back to; roll back with "
                    "force to unset it, as it was before it was first set",
                    model_name=model_name,
                    alias=alias,
                )
            position, target = earlier[0]
            self._checked_target(conn, model_name, target, check)
            conn.execute(
                "DELETE FROM alias_stack WHERE model_name = ? AND alias = ? AND position > ?",
                (model_name, alias, position),
            )
            _log_event(conn, model_name, alias, "rollback", target, current)
            return current, target

    def remove_alias(self, model_name: str, alias: str) -> bool:
        """See ``RegistryStore.remove_alias``."""
        with self._write() as conn:
            top = _stack_top(conn, model_name, alias)
            if top is None:
                return False
            conn.execute("DELETE FROM alias_stack WHERE model_name = ? AND alias = ?", (model_name, alias))
            _log_event(conn, model_name, alias, "remove", None, str(top["model_id"]))
            return True

    def aliases(self, model_name: str) -> dict[str, str]:
        """See ``RegistryStore.aliases``."""
        rows = self._connection().execute(_CURRENT_TARGETS + " WHERE s.model_name = ? ORDER BY s.alias", (model_name,))
        return {str(r["alias"]): str(r["model_id"]) for r in rows}

    def alias_history(self, model_name: str, alias: str) -> list[AliasEvent]:
        """See ``RegistryStore.alias_history``."""
        rows = self._connection().execute(
            "SELECT * FROM alias_events WHERE model_name = ? AND alias = ? ORDER BY sequence",
            (model_name, alias),
        )
        return [
            AliasEvent(
                sequence=r["sequence"],
                model_name=r["model_name"],
                alias=r["alias"],
                action=r["action"],
                model_id=r["model_id"],
                previous_model_id=r["previous_model_id"],
                created_at=datetime.fromisoformat(r["created_at"]),
            )
            for r in rows
        ]

    def _checked_target(self, conn: sqlite3.Connection, model_name: str, model_id: str, check: RecordCheck) -> str:
        # Re-read inside the transaction: the target may have been deleted or deprecated meanwhile.
        row = _row(conn, "SELECT * FROM models WHERE model_id = ?", model_id)
        if row is None or row["model_name"] != model_name:
            raise ModelNotFoundError(
                f"model {model_id!r} is not a registered version of {model_name!r}", model_id=model_id
            )
        check(_to_record(row))
        return model_id

    # -- lineage ---------------------------------------------------------------------------------

    def ancestors(self, model_id: str) -> list[str]:
        """See ``RegistryStore.ancestors``."""
        return self._walk(model_id, "child_id", "parent_id")

    def descendants(self, model_id: str) -> list[str]:
        """See ``RegistryStore.descendants``."""
        return self._walk(model_id, "parent_id", "child_id")

    def _walk(self, model_id: str, source: str, target: str) -> list[str]:
        # Depth-limited recursive CTE; MIN(depth) keeps each model at its nearest distance,
        # so ordering by depth gives nearest-first / breadth-first order.
        rows = self._connection().execute(
            f"""WITH RECURSIVE walk(id, depth) AS (
                    SELECT {target}, 1 FROM lineage WHERE {source} = ?
                    UNION
                    SELECT l.{target}, w.depth + 1 FROM lineage l JOIN walk w ON l.{source} = w.id
                    WHERE w.depth < 1000
                )
                SELECT id, MIN(depth) AS depth FROM walk WHERE id != ? GROUP BY id ORDER BY depth, id""",
            (model_id, model_id),
        )
        return [str(r["id"]) for r in rows]

    def lineage_edges(self) -> list[tuple[str, str]]:
        """See ``RegistryStore.lineage_edges``."""
        rows = self._connection().execute("SELECT child_id, parent_id FROM lineage ORDER BY parent_id, child_id")
        return [(str(r["child_id"]), str(r["parent_id"])) for r in rows]


# Current target of every alias: the top of its stack.
_CURRENT_TARGETS = (
    "SELECT s.model_name, s.alias, s.model_id FROM alias_stack s JOIN ("
    " SELECT model_name, alias, MAX(position) AS top FROM alias_stack GROUP BY model_name, alias"
    ") t ON s.model_name = t.model_name AND s.alias = t.alias AND s.position = t.top"
)


def _row(conn: sqlite3.Connection, sql: str, *params: Any) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
    return row


def _push_alias(conn: sqlite3.Connection, model_name: str, alias: str, target: str) -> str | None:
    # Push ``target`` on the alias's stack and log it; returns the previous target. Setting the
    # current target again records nothing.
    top = _stack_top(conn, model_name, alias)
    previous = None if top is None else str(top["model_id"])
    if previous == target:
        return previous
    position = 0 if top is None else int(top["position"]) + 1
    conn.execute(
        "INSERT INTO alias_stack (model_name, alias, position, model_id) VALUES (?, ?, ?, ?)",
        (model_name, alias, position, target),
    )
    _log_event(conn, model_name, alias, "set", target, previous)
    return previous


def _stack_top(conn: sqlite3.Connection, model_name: str, alias: str) -> sqlite3.Row | None:
    return _row(
        conn,
        "SELECT position, model_id FROM alias_stack WHERE model_name = ? AND alias = ? ORDER BY position DESC LIMIT 1",
        model_name,
        alias,
    )


def _log_event(
    conn: sqlite3.Connection,
    model_name: str,
    alias: str,
    action: AliasAction,
    model_id: str | None,
    previous: str | None,
) -> None:
    conn.execute(
        "INSERT INTO alias_events (model_name, alias, action, model_id, previous_model_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (model_name, alias, action, model_id, previous, utcnow().isoformat()),
    )


_COLUMNS = (
    "model_id", "model_name", "version", "domain", "format", "metadata", "metrics", "load_config",
    "artifact_sha256", "deprecated", "deprecation_reason", "registered_at",
)  # fmt: skip


def _record_params(record: ModelRecord) -> dict[str, Any]:
    meta = record.metadata
    return {
        "model_id": meta.model_id,
        "model_name": meta.model_name,
        "version": meta.version,
        "domain": meta.domain,
        "format": meta.format.value,
        "metadata": meta.model_dump_json(),
        "metrics": json.dumps(record.metrics),
        "load_config": json.dumps(record.load_config),
        "artifact_sha256": record.artifact_sha256,
        "deprecated": int(record.deprecated),
        "deprecation_reason": record.deprecation_reason,
        "registered_at": record.registered_at.isoformat(),
    }


def _to_record(row: sqlite3.Row) -> ModelRecord:
    return ModelRecord(
        metadata=EmbeddingModelMetadata.model_validate_json(row["metadata"]),
        metrics=json.loads(row["metrics"]),
        load_config=json.loads(row["load_config"]),
        artifact_sha256=row["artifact_sha256"],
        deprecated=bool(row["deprecated"]),
        deprecation_reason=row["deprecation_reason"],
        registered_at=datetime.fromisoformat(row["registered_at"]),
    )
