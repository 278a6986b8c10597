"""The WHERE clauses both SQL backends share: the time view, groups and search filters.

Written once, with the two backends' differences (placeholder, how a time is passed,
how a list and a label set are matched) in a small `Dialect`, so SQLite and PostgreSQL
cannot disagree about which facts a view sees.

A fact's end as believed at ``known_at`` is its ``invalid_at`` only if the system had
learned it by then (``expired_at <= known_at``); before that the fact looked current.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azmem.graph.queries import DateCondition, SearchFilters, TimeView

__all__ = ["Dialect", "Where", "entity_where", "fact_where"]


@dataclass(frozen=True)
class Dialect:
    ph: str
    """The placeholder: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    time: Callable[[datetime], Any]
    """A time as the driver should receive it."""
    in_list: Callable[[str, int], str]
    """``column IN (...)`` for n values."""
    labels_any: Callable[[str, int], str]
    """Whether the labels column (given) holds any of n labels."""
    list_param: Callable[[Sequence[str]], list[Any]]
    """The parameters ``in_list`` / ``labels_any`` expect for the values."""


@dataclass
class Where:
    dialect: Dialect
    parts: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, sql: str, *params: Any) -> None:
        self.parts.append(sql)
        self.params.extend(params)

    def add_in(self, column: str, values: Sequence[str]) -> None:
        self.add(self.dialect.in_list(column, len(values)), *self.dialect.list_param(values))

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts) or "TRUE"


_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "=", "!=": "<>"}


def _date_groups(where: Where, column: str, groups: list[list[DateCondition]]) -> None:
    d = where.dialect
    ors: list[str] = []
    params: list[Any] = []
    for group in groups:
        ands: list[str] = []
        for cond in group:
            if cond.op == "is_null":
                ands.append(f"{column} IS NULL")
            elif cond.op == "is_not_null":
                ands.append(f"{column} IS NOT NULL")
            else:
                assert cond.date is not None
                ands.append(f"{column} {_OPS[cond.op]} {d.ph}")
                params.append(d.time(cond.date))
        if ands:
            ors.append("(" + " AND ".join(ands) + ")")
    if ors:
        where.add("(" + " OR ".join(ors) + ")", *params)


def fact_where(
    dialect: Dialect,
    alias: str,
    group_ids: Sequence[str],
    view: TimeView,
    filters: SearchFilters | None,
    *,
    entity_table: str,
) -> Where:
    """The facts of ``group_ids`` that ``view`` sees and ``filters`` allow (``alias``: the fact table)."""
    d, a = dialect, alias
    where = Where(d)
    where.add_in(f"{a}.group_id", group_ids)
    history = view.history or (filters is not None and filters.include_invalid)
    if view.known_at is not None:
        where.add(f"{a}.created_at <= {d.ph}", d.time(view.known_at))
    if not history:
        world = d.time(view.world_time)
        if view.as_of is not None:
            where.add(f"({a}.valid_at IS NULL OR {a}.valid_at <= {d.ph})", world)
        if view.known_at is None:
            where.add(f"({a}.invalid_at IS NULL OR {a}.invalid_at > {d.ph})", world)
        else:
            known = d.time(view.known_at)
            where.add(
                f"({a}.invalid_at IS NULL OR {a}.expired_at IS NULL OR {a}.expired_at > {d.ph} "
                f"OR {a}.invalid_at > {d.ph})",
                known,
                world,
            )
    if filters is not None:
        if filters.relations:
            where.add_in(f"{a}.name", filters.relations)
        if filters.entity_labels:
            labels = d.labels_any("e.labels", len(filters.entity_labels))
            where.add(
                f"EXISTS (SELECT 1 FROM {entity_table} e WHERE e.id IN ({a}.source_id, {a}.target_id) "
                f"AND {labels})",
                *d.list_param(filters.entity_labels),
            )
        for name, groups in filters.dates():
            _date_groups(where, f"{a}.{name}", groups)
    return where


def entity_where(
    dialect: Dialect,
    alias: str,
    group_ids: Sequence[str],
    *,
    known_at: datetime | None,
    labels: Sequence[str] | None,
) -> Where:
    d, a = dialect, alias
    where = Where(d)
    where.add_in(f"{a}.group_id", group_ids)
    if known_at is not None:
        where.add(f"{a}.created_at <= {d.ph}", d.time(known_at))
    if labels:
        where.add(d.labels_any(f"{a}.labels", len(labels)), *d.list_param(labels))
    return where
