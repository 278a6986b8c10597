"""What the PostgreSQL store sends: every statement psycopg executes while the block runs, as
text, so a test can count round trips or look for one kind of statement. Spying on the real
driver's entry point, not replacing it: every statement still runs against the server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

__all__ = ["sent"]


@contextmanager
def sent() -> Iterator[list[str]]:
    statements: list[str] = []
    execute = psycopg.Cursor.execute

    def spy(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return execute(self, query, *args, **kwargs)

    psycopg.Cursor.execute = spy  # type: ignore[method-assign]
    try:
        yield statements
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
