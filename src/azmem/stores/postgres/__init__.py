"""The shared store: PostgreSQL + pgvector (``pip install 'azmem[postgres]'``), shared by many processes."""

from azmem.stores.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
