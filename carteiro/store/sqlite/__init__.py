"""The embedded default backend (SQLite, WAL)."""

from carteiro.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
