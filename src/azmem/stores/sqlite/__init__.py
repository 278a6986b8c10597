"""The embedded store: one SQLite file (WAL), in-memory vector and BM25 mirrors, zero setup."""

from azmem.stores.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
