"""Storage plumbing every store shares: the SQLite connection and the name of the one database file."""

from __future__ import annotations

from rag_factory.storage.sqlite import DATABASE_NAME, SQLiteDatabase, database_path

__all__ = ["DATABASE_NAME", "SQLiteDatabase", "database_path"]
