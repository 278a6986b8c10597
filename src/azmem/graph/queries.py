"""Search filters (public) and the queries the engine hands a store (internal).

``SearchFilters`` mirrors Graphiti's ``SearchFilters``: relation names (its
``edge_types``), entity labels (``node_labels``) and date conditions on the four times
(lists of comparisons: OR of ANDs). The time view (``as_of`` / ``known_at``) is not a
filter but the lens every read goes through; see `TimeView`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError, model_validator

from azmem.errors import InvalidInputError
from azmem.graph.model import Entity, Fact, believed_invalid_at

__all__ = [
    "DateCondition",
    "EntityCandidates",
    "EntityQuery",
    "FactCandidates",
    "FactQuery",
    "SearchFilters",
    "TimeView",
    "parse_search_filters",
    "to_utc",
]

DateField = Literal["valid_at", "invalid_at", "created_at", "expired_at"]
DATE_FIELDS: tuple[DateField, ...] = ("valid_at", "invalid_at", "created_at", "expired_at")


class DateCondition(BaseModel):
    """One comparison of a fact time.

    ``{"op": ">=", "date": "2024-01-01T00:00:00Z"}`` or ``{"op": "is_null"}``.
    """

    model_config = ConfigDict(extra="forbid")

    op: Literal["<", "<=", ">", ">=", "=", "!=", "is_null", "is_not_null"]
    date: AwareDatetime | None = None

    @model_validator(mode="after")
    def _date_needed(self) -> DateCondition:
        if self.op in ("is_null", "is_not_null"):
            if self.date is not None:
                raise ValueError(f"{self.op} takes no date")
        elif self.date is None:
            raise ValueError(f"{self.op} needs a date")
        else:
            self.date = self.date.astimezone(UTC)
        return self


class SearchFilters(BaseModel):
    """What a fact search may return, beyond the time view."""

    model_config = ConfigDict(extra="forbid")

    relations: list[str] | None = None
    """Only these relation names (``WORKS_AT``...)."""
    entity_labels: list[str] | None = None
    """Only facts with an endpoint of one of these labels."""
    valid_at: list[list[DateCondition]] | None = None
    invalid_at: list[list[DateCondition]] | None = None
    created_at: list[list[DateCondition]] | None = None
    expired_at: list[list[DateCondition]] | None = None
    include_invalid: bool = False
    """Also facts that were no longer (or not yet) true at the view's time: the whole history."""

    def dates(self) -> list[tuple[DateField, list[list[DateCondition]]]]:
        return [(name, groups) for name in DATE_FIELDS if (groups := getattr(self, name))]


def parse_search_filters(filters: SearchFilters | Mapping[str, Any] | None) -> SearchFilters | None:
    if filters is None or isinstance(filters, SearchFilters):
        return filters
    if not isinstance(filters, Mapping):
        raise InvalidInputError(f"filters must be SearchFilters or a dict, not {type(filters).__name__}")
    try:
        return SearchFilters.model_validate(dict(filters))
    except ValidationError as exc:
        raise InvalidInputError(f"invalid search filters: {exc}") from None


@dataclass(frozen=True)
class TimeView:
    """Which facts a read sees.

    * ``known_at`` (system time): only what the system had learned by then, with the
      end dates it knew then (a fact expired later still looked current).
    * ``as_of`` (world time): facts true at that instant: begun (``valid_at``) and not
      yet ended (``invalid_at``), as believed at ``known_at``.
    * neither: facts not ended now, as believed now (upcoming ones included);
      ``known_at`` alone: facts not ended at ``known_at``, as believed then.
    * ``history``: every fact the system knew (at ``known_at``), ended or not.
    """

    now: datetime
    as_of: datetime | None = None
    known_at: datetime | None = None
    history: bool = False

    @property
    def world_time(self) -> datetime:
        return self.as_of or self.known_at or self.now

    def sees(self, fact: Fact, *, history: bool = False) -> bool:
        """The same rule as the stores' SQL (`store/sql.py`), for facts already in hand."""
        if self.known_at is not None and fact.created_at > self.known_at:
            return False
        if history or self.history:
            return True
        world = self.world_time
        if self.as_of is not None and fact.valid_at is not None and fact.valid_at > world:
            return False
        end = believed_invalid_at(fact, self.known_at)
        return end is None or end > world


Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FactQuery:
    group_ids: list[str]
    terms: list[str]
    vector: Vector | None
    view: TimeView
    filters: SearchFilters | None = None
    origins: list[str] = field(default_factory=list)
    """Entities the graph walk starts from (empty: no walk)."""
    depth: int = 2
    limit: int = 50
    """Candidates per retriever."""


@dataclass(frozen=True)
class FactCandidates:
    """Each retriever's ranking, as fact ids: only the fused winners are loaded as records."""

    bm25: list[str] = field(default_factory=list)
    dense: list[tuple[str, float]] = field(default_factory=list)
    """With the cosine."""
    graph: list[tuple[str, int]] = field(default_factory=list)
    """Facts near the origins, with their distance (0: touching an origin)."""


@dataclass(frozen=True)
class EntityQuery:
    group_ids: list[str]
    terms: list[str]
    vector: Vector | None
    known_at: datetime | None = None
    labels: list[str] | None = None
    prefix: bool = False
    """Match query words as prefixes of names ("alex" finds "Alexandra"): resolution's lookup."""
    limit: int = 20


@dataclass(frozen=True)
class EntityCandidates:
    bm25: list[Entity] = field(default_factory=list)
    dense: list[tuple[Entity, float]] = field(default_factory=list)


def to_utc(value: object, what: str) -> datetime | None:
    """Aware datetimes to UTC; a naive one is taken as UTC (Graphiti's callers often pass them)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{what} must be a datetime, not {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
