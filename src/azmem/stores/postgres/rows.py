"""How memories and history rows travel between PostgreSQL and the models.

Also the list cursor, the metadata's JSON text, and the lexical forms: a memory's words
as a `tsvector` literal and a query's words as a `tsquery` literal, both built here from
the same notion of "word" as `azmem.stores.terms.query_terms` (so they match exactly,
whatever the database's locale; see `search.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from azmem.stores import cursors, rows
from azmem.stores.filters import format_time
from azmem.stores.models import HistoryEvent, MemoryRecord
from azmem.stores.terms import _WORD as WORD  # the one definition of a word, shared with query_terms
from azmem.stores.terms import MAX_TERM_CHARS

__all__ = [
    "COLS",
    "HISTORY_COLS",
    "decode_cursor",
    "document",
    "encode_cursor",
    "event",
    "json_text",
    "record",
    "tsquery",
]

# Column order matters: index 9 is created_at, 0 the id, 11 the row key (rid).
COLS = rows.MEMORY_COLS + ", m.rid"
HISTORY_COLS = rows.HISTORY_COLS

# tsvector limits: positions are 1..16383, at most 256 kept per lexeme.
_MAX_POSITION = 16383
_MAX_POSITIONS = 256


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _same(value: Any) -> Any:
    return value  # jsonb: psycopg already hands back the Python value


def record(row: Sequence[Any]) -> MemoryRecord:
    return rows.record(row, time=_utc, meta=_same)


def event(row: Sequence[Any]) -> HistoryEvent:
    return rows.event(row, time=_utc, meta=_same)


def json_text(value: Any) -> str:
    """JSON text for a jsonb column that reads back as the same Python values.

    jsonb stores numbers as `numeric`, which drops an exponent: `1e16` would read back as
    the int 10000000000000000. Floats are therefore written as plain decimals with a
    decimal point (the shortest repr's digits, so the value is exact), which jsonb keeps.
    The input has been checked by `validate.encode_metadata` (JSON-safe, finite).
    """
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{json_text(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text or "E" in text:
            text = format(Decimal(text), "f")
        return text if "." in text else text + ".0"
    return json.dumps(value, ensure_ascii=False)


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def document(text: str) -> tuple[str, int]:
    """(tsvector literal, word count) of a memory's text.

    Words are those of `query_terms` (letters and digits, lower-cased, cut at
    MAX_TERM_CHARS), with their positions, so a word's frequency in the memory is the
    number of its positions. The count is the memory's length for BM25.
    """
    positions: dict[str, list[int]] = {}
    count = 0
    for count, token in enumerate(WORD.findall(text), 1):
        seen = positions.setdefault(token[:MAX_TERM_CHARS].lower(), [])
        if len(seen) < _MAX_POSITIONS and (not seen or seen[-1] < _MAX_POSITION):
            seen.append(min(count, _MAX_POSITION))
    literal = " ".join(f"{_quote(term)}:{','.join(map(str, where))}" for term, where in positions.items())
    return literal, count


def tsquery(terms: Sequence[str]) -> str:
    """A tsquery literal matching any of `terms` (already normalised by `query_terms`)."""
    return " | ".join(_quote(term) for term in terms)


def encode_cursor(created_at: datetime, rid: int) -> str:
    return cursors.encode_cursor(format_time(created_at), rid)


def decode_cursor(cursor: object) -> tuple[datetime, int]:
    _, when, rid = cursors.decode_cursor(cursor)
    if not 0 <= rid < 2**63 or when.tzinfo is None:
        raise cursors.bad_cursor()
    return when, rid
