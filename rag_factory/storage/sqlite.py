"""The SQLite plumbing every store shares: per-thread connections, WAL, durable writes, migrations.

Stores (registry, experiments, training jobs, metric history) live in their own modules and share one
database file; each applies its own list of migrations, tracked per component.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rag_factory.errors import FailedPreconditionError, UnavailableError

BUSY_TIMEOUT_MS = 30_000
Migrations = Sequence[Sequence[str]]
# The one file, inside a registry directory, that every store of that registry shares.
DATABASE_NAME = "registry.db"


def database_path(registry_root: str | Path) -> Path:
    """The database file of the registry rooted at ``registry_root``."""
    return Path(registry_root) / DATABASE_NAME


class SQLiteDatabase:
    """WAL, FULL sync, ``BEGIN IMMEDIATE`` writes, one connection per thread.

    Several processes may share the file: writers serialise on SQLite's lock and wait up to
    ``busy_timeout`` for it, and a committed write is on disk before the call returns.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves. check_same_thread=False only
            # so close() can close every thread's connection; each is used by its own thread.
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: fsync the WAL on every commit, so an acknowledged write survives a power cut.
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        try:
            # IMMEDIATE takes the write lock up front, so two writers never deadlock upgrading a
            # read lock; waiting for it is bounded by busy_timeout.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            # Locked for longer than busy_timeout, disk full, I/O error: retrying later may work.
            raise UnavailableError(f"database {self.path} is unavailable: {exc}") from exc

    def _migrate_component(self, component: str, migrations: Migrations) -> None:
        """Apply the not-yet-applied migrations of one component, atomically."""
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            row = conn.execute("SELECT version FROM schema_migrations WHERE component = ?", (component,)).fetchone()
            applied = int(row[0]) if row else 0
            if applied > len(migrations):
                raise FailedPreconditionError(
                    f"database {self.path} has {component} schema version {applied}, newer than this release "
                    f"understands ({len(migrations)}); upgrade rag-factory"
                )
            for number in range(applied, len(migrations)):
                for statement in migrations[number]:
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, len(migrations)),
            )

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``"ok"`` when healthy)."""
        return str(self._connection().execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        """Let go of every thread's connection; later calls reopen one.

        The calling thread's connection is closed at once. Another thread's is only released: it closes
        when that thread no longer holds it (at once if idle). Closing a connection that another thread
        is stepping through a query crashes the process (seen as a segmentation fault when a server
        closed its registry while its readiness monitor was still reading it).
        """
        own: sqlite3.Connection | None = getattr(self._local, "conn", None)
        with self._lock:
            self._connections = []
            self._local = threading.local()
        if own is not None:
            own.close()
