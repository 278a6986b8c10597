"""Rows to records, for both SQL backends: one column order, one decoder.

SQLite hands back JSON text and ISO time strings, PostgreSQL dicts, lists and
datetimes; the decoders accept either, so the SELECT lists below are the only thing a
backend must keep in step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from azmem.graph.model import Entity, Episode, Fact
from azmem.stores.filters import format_time  # the memory store's text form of a time (SQLite)

__all__ = [
    "ENTITY_COLUMNS",
    "EPISODE_COLUMNS",
    "FACT_COLUMNS",
    "entity_from_row",
    "episode_from_row",
    "fact_from_row",
    "format_time",
]

EPISODE_COLUMNS = (
    "ep.id, ep.group_id, ep.name, ep.source, ep.source_description, ep.content, "
    "ep.reference_time, ep.created_at"
)
ENTITY_COLUMNS = "e.id, e.group_id, e.name, e.summary, e.labels, e.attributes, e.aliases, e.created_at"
FACT_COLUMNS = (
    "f.id, f.group_id, f.source_id, f.target_id, f.name, f.fact, f.attributes, f.valid_at, "
    "f.invalid_at, f.created_at, f.expired_at, f.invalidated_by, s.name, t.name"
)
FACT_JOINS = "JOIN {entities} s ON s.id = f.source_id JOIN {entities} t ON t.id = f.target_id"


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _required_time(value: Any) -> datetime:
    found = _time(value)
    assert found is not None
    return found


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def episode_from_row(row: Sequence[Any], entity_ids: list[str] | None = None) -> Episode:
    return Episode(
        id=row[0],
        group_id=row[1],
        name=row[2],
        source=row[3],
        source_description=row[4],
        content=row[5],
        reference_time=_required_time(row[6]),
        created_at=_required_time(row[7]),
        entity_ids=entity_ids or [],
    )


def entity_from_row(row: Sequence[Any]) -> Entity:
    return Entity(
        id=row[0],
        group_id=row[1],
        name=row[2],
        summary=row[3],
        labels=list(_json(row[4])),
        attributes=dict(_json(row[5])),
        aliases=list(_json(row[6])),
        created_at=_required_time(row[7]),
    )


def fact_from_row(row: Sequence[Any], episodes: list[str] | None = None) -> Fact:
    return Fact(
        id=row[0],
        group_id=row[1],
        source_id=row[2],
        target_id=row[3],
        name=row[4],
        fact=row[5],
        attributes=dict(_json(row[6])),
        valid_at=_time(row[7]),
        invalid_at=_time(row[8]),
        created_at=_required_time(row[9]),
        expired_at=_time(row[10]),
        invalidated_by=row[11],
        source_name=row[12],
        target_name=row[13],
        episodes=episodes or [],
    )
