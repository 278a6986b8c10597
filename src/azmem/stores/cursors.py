"""Opaque ``list()`` cursors, the same for every backend: ``["v1", created_at, id]`` in URL-safe base64.

A backend passes its own text form of ``created_at`` and checks what it needs beyond the
shape (Postgres: an aware time and a bigint id).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from azmem.errors import InvalidInputError
from azmem.stores.models import MemoryRecord, Page

__all__ = ["bad_cursor", "decode_cursor", "encode_cursor", "page"]


def bad_cursor() -> InvalidInputError:
    """The error every malformed cursor raises."""
    return InvalidInputError(
        "cursor is not one returned by list()", suggestion="pass back next_cursor unchanged, or None to start"
    )


def encode_cursor(created_at: str, rid: int) -> str:
    raw = json.dumps(["v1", created_at, rid], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: object) -> tuple[str, datetime, int]:
    """The ``created_at`` text, its parsed time and the id of a cursor; anything else raises `bad_cursor`."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > 200:
        raise bad_cursor()
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad_cursor() from None
    if (
        not isinstance(data, list)
        or len(data) != 3
        or data[0] != "v1"
        or not isinstance(data[1], str)
        or isinstance(data[2], bool)
        or not isinstance(data[2], int)
    ):
        raise bad_cursor()
    try:
        when = datetime.fromisoformat(data[1])
    except ValueError:
        raise bad_cursor() from None
    return data[1], when, data[2]


def page(
    rows: Sequence[Sequence[Any]],
    limit: int,
    *,
    cursor: Callable[[Any, int], str],
    record: Callable[[Sequence[Any]], MemoryRecord],
) -> Page:
    """A ``list()`` page of rows fetched ``limit + 1`` at a time (one more means a next page).

    The rows are the memory columns then the row key (index 9 created_at, 11 the key);
    ``cursor`` encodes the last one's created_at and key, ``record`` turns a row into its record.
    """
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursor(rows[-1][9], rows[-1][11]) if more else None
    return Page(records=[record(r) for r in rows], next_cursor=next_cursor)
