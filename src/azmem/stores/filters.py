"""The metadata filter language (mem0-compatible), parsed once into a typed, backend-neutral tree.

Grammar (a filter is a dict; several keys in one dict are ANDed)::

    {"key": value}                         equality (shorthand for {"key": {"eq": value}})
    {"key": {"op": operand, ...}}          ops: eq ne in nin gt gte lt lte contains icontains
    {"AND": [f, ...]}  {"OR": [f, ...]}  {"NOT": f}

Operators and logical keys also accept mem0's `$`-prefixed spellings (`$gt`, `$and`,
...). Lower-case `and`/`or`/`not` are *not* logical keys: they are ordinary metadata
keys, so a metadata field called "and" stays filterable (a list value there is
rejected with a hint towards `AND`).

Keys: `id user_id agent_id run_id actor_id role memory created_at updated_at` are
the record's own fields; anything else is a metadata key, where dots address nested
objects (`"address.city"`). `"metadata.<key>"` always means metadata, so a metadata key
shadowed by a field name is still reachable. Key segments are limited to letters,
digits, `_`, `-` and space.

Semantics, chosen so that results never depend on SQL NULL quirks:

* Comparisons are type-strict: 1 does not equal "1" or true; `gt` with a number only
  matches numeric values, with a string only text values (so ISO dates stored as text
  compare correctly). `created_at`/`updated_at` take datetimes or ISO strings (naive
  means UTC).
* `{"k": None}` matches a missing key or JSON null; `ne` and `nin` are the exact
  negation of `eq` and `in`, so they also match memories that lack the key.
* `contains` matches a substring of a text value or an element of an array value;
  `icontains` is the case-insensitive (Unicode casefold) substring test.

The engine parses a filter once, at the API boundary (:func:`parse_filters`), so every
error is raised before anything is read or written; each backend compiles the tree
(``stores/sqlite/filters.py``, ``stores/postgres/filters.py``), binding everything the
user wrote as a parameter, JSON paths included: the only SQL text produced comes from
fixed templates.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeAlias

from azmem.errors import InvalidInputError

__all__ = [
    "FIELDS",
    "LOGICAL",
    "OPERATORS",
    "TEXT_FIELDS",
    "TIME_FIELDS",
    "And",
    "Cmp",
    "Field",
    "Filter",
    "MetaPath",
    "Not",
    "Op",
    "Or",
    "Scalar",
    "format_time",
    "parse_filters",
    "parse_time",
]

OPERATORS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "contains", "icontains")
LOGICAL = {"AND": "AND", "OR": "OR", "NOT": "NOT", "$and": "AND", "$or": "OR", "$not": "NOT"}
TEXT_FIELDS = ("id", "user_id", "agent_id", "run_id", "actor_id", "role", "memory")
TIME_FIELDS = ("created_at", "updated_at")
FIELDS = TEXT_FIELDS + TIME_FIELDS
_NEVER_EMPTY = ("id", "memory", *TIME_FIELDS)

_SEGMENT = re.compile(r"^[\w\- ]{1,128}$")
_MAX_DEPTH = 32
_MAX_TERMS = 2000

Scalar: TypeAlias = str | int | float | bool | None
Op = Literal["eq", "in", "gt", "gte", "lt", "lte", "contains", "icontains"]


@dataclass(frozen=True)
class Field:
    """One of the record's own columns (``FIELDS``); time fields hold the stored text form."""

    name: str


@dataclass(frozen=True)
class MetaPath:
    """A metadata key; ``segments`` address nested objects (``"address.city"``)."""

    key: str
    segments: tuple[str, ...]


@dataclass(frozen=True)
class Cmp:
    """A validated comparison. ``ne``/``nin`` are parsed into ``Not(Cmp(eq/in))``.

    ``value`` is a scalar, or a tuple of scalars for ``in``. Checked at parse time: a
    record column gets a string (times already in the stored form) or None where the
    column may be empty; ``contains`` on a column and ``icontains`` get a string; numbers
    are finite, strings hold no NUL and no lone surrogate.
    """

    target: Field | MetaPath
    op: Op
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True)
class And:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    part: Filter


Filter: TypeAlias = And | Or | Not | Cmp


def format_time(value: datetime) -> str:
    """The one textual form of a time in the store: fixed width, UTC, so text order == time order."""
    if value.tzinfo is None:
        raise InvalidInputError(f"datetime {value.isoformat()} has no timezone; azmem stores UTC times")
    try:
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    except OverflowError:
        raise InvalidInputError(f"datetime {value!r} is out of range") from None


def parse_time(value: object, *, what: str) -> str:
    """Accept a datetime, date or ISO-8601 string (naive = UTC) and return the stored form."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInputError(
                f"{what}: {value!r} is not an ISO-8601 date or time",
                suggestion='use e.g. "2024-05-01" or "2024-05-01T12:00:00Z"',
            ) from None
    else:
        raise InvalidInputError(f"{what}: expected a datetime or ISO-8601 string, got {type(value).__name__}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return format_time(dt)


def parse_filters(filters: Mapping[str, Any] | Filter | None) -> Filter | None:
    """Validate a filter dict into a tree; None for no filter. Raises InvalidInputError.

    An already parsed tree is returned as is, so a layer may parse at its boundary and
    hand the tree down without a second pass.
    """
    if filters is None or isinstance(filters, And | Or | Not | Cmp):
        return filters
    if not isinstance(filters, Mapping):
        raise InvalidInputError(f"filters must be a dict, got {type(filters).__name__}")
    if not filters:
        return None
    return _Parser().node(filters, depth=0)


def _all(parts: list[Filter]) -> Filter:
    return parts[0] if len(parts) == 1 else And(tuple(parts))


class _Parser:
    def __init__(self) -> None:
        self.terms = 0

    def node(self, node: object, depth: int) -> Filter:
        if depth > _MAX_DEPTH:
            raise InvalidInputError(f"filters are nested deeper than {_MAX_DEPTH} levels")
        if not isinstance(node, Mapping):
            raise InvalidInputError(f"a filter must be a dict, got {type(node).__name__}: {node!r:.80}")
        return _all([self.entry(key, value, depth) for key, value in node.items()]) if node else And(())

    def entry(self, key: object, value: object, depth: int) -> Filter:
        if not isinstance(key, str):
            raise InvalidInputError(f"filter keys must be strings, got {key!r}")
        logical = LOGICAL.get(key)
        if logical == "NOT":
            if isinstance(value, list):
                return Not(And(tuple(self.node(v, depth + 1) for v in value)))
            return Not(self.node(value, depth + 1))
        if logical is not None:
            if not isinstance(value, list | tuple):
                raise InvalidInputError(
                    f"{key} takes a list of filters, got {type(value).__name__}",
                    suggestion=f'e.g. {{"{key}": [{{"a": 1}}, {{"b": 2}}]}}',
                )
            parts = tuple(self.node(v, depth + 1) for v in value)
            return And(parts) if logical == "AND" else Or(parts)
        target = _target(key)
        if isinstance(value, Mapping):
            if not value:
                raise InvalidInputError(f"filter on {key!r} has an empty operator dict")
            return _all([self.leaf(target, key, op, operand) for op, operand in value.items()])
        if isinstance(value, list | tuple | set):
            hint = f'{{"{key}": {{"in": [...]}}}}'
            if key.upper() in ("AND", "OR", "NOT"):
                hint = f'{{"{key.upper()}": [...]}} (logical keys are upper-case)'
            raise InvalidInputError(
                f"filter on {key!r}: a list is not a value to compare with",
                suggestion=f"did you mean {hint}?",
            )
        return self.leaf(target, key, "eq", value)

    def leaf(self, target: Field | MetaPath, key: str, op: object, operand: object) -> Filter:
        self.terms += 1
        if self.terms > _MAX_TERMS:
            raise InvalidInputError(f"filters have more than {_MAX_TERMS} conditions")
        name = op[1:] if isinstance(op, str) and op.startswith("$") else op
        if name not in OPERATORS:
            closest = difflib.get_close_matches(str(name), OPERATORS, n=1, cutoff=0.0)
            raise InvalidInputError(
                f"unknown filter operator {op!r} on {key!r}",
                suggestion=f"did you mean {closest[0]!r}? valid operators: {', '.join(OPERATORS)}",
            )
        if name in ("ne", "nin"):
            return Not(self.positive(target, key, "eq" if name == "ne" else "in", operand))
        return self.positive(target, key, str(name), operand)

    def positive(self, target: Field | MetaPath, key: str, op: str, operand: object) -> Cmp:
        if op == "in":
            if not isinstance(operand, list | tuple | set):
                raise InvalidInputError(
                    f"'in' on {key!r} takes a list, got {type(operand).__name__}",
                    suggestion=f'{{"{key}": {{"in": [{operand!r}]}}}}',
                )
            if len(operand) > _MAX_TERMS:
                raise InvalidInputError(f"'in' on {key!r} has more than {_MAX_TERMS} values")
            return Cmp(target, "in", tuple(_eq_value(target, key, v) for v in operand))
        if op == "eq":
            return Cmp(target, "eq", _eq_value(target, key, operand))
        if op in ("gt", "gte", "lt", "lte"):
            return Cmp(target, op, _order_value(target, key, operand))  # type: ignore[arg-type]
        return Cmp(target, op, _contains_value(target, key, operand, fold=op == "icontains"))  # type: ignore[arg-type]


def _target(key: str) -> Field | MetaPath:
    if key in FIELDS:
        return Field(key)
    raw = key[len("metadata.") :] if key.startswith("metadata.") else key
    segments = raw.split(".")
    for seg in segments:
        if not _SEGMENT.match(seg):
            raise InvalidInputError(
                f"filter key {key!r} is not a valid field or metadata key",
                suggestion="metadata keys may use letters, digits, '_', '-' and space, "
                "with '.' between nested keys",
            )
    return MetaPath(key, tuple(segments))


def _column_operand(name: str, value: object) -> str:
    if name in TIME_FIELDS:
        return parse_time(value, what=name)
    if isinstance(value, str):
        _no_nul(name, value)
        return value
    raise InvalidInputError(f"{name} is a string field; got {type(value).__name__} {value!r:.80}")


def _eq_value(target: Field | MetaPath, key: str, value: object) -> Scalar:
    scalar = _scalar(key, "eq", value)
    if isinstance(target, MetaPath):
        return scalar
    if scalar is None:
        if target.name in _NEVER_EMPTY:
            raise InvalidInputError(f"{target.name} is never empty; comparing it with None matches nothing")
        return None
    return _column_operand(target.name, scalar)


def _order_value(target: Field | MetaPath, key: str, value: object) -> Scalar:
    if isinstance(target, Field):
        return _column_operand(target.name, value)
    if isinstance(value, datetime | date):
        value = parse_time(value, what=key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInputError(
            f"ordering comparison on {key!r} needs a number, string or datetime, "
            f"got {type(value).__name__} {value!r:.80}"
        )
    if isinstance(value, str):
        _no_nul(key, value)
    else:
        _finite(key, value)
    return value


def _contains_value(target: Field | MetaPath, key: str, value: object, *, fold: bool) -> Scalar:
    op = "icontains" if fold else "contains"
    scalar = _scalar(key, op, value)
    if (fold or isinstance(target, Field)) and not isinstance(scalar, str):
        raise InvalidInputError(f"{op} on {key!r} needs a string, got {type(scalar).__name__}")
    return scalar


def _scalar(key: str, op: str, value: object) -> Scalar:
    if isinstance(value, datetime | date):
        return parse_time(value, what=key)
    if value is None or isinstance(value, str | bool | int | float):
        if isinstance(value, float):
            _finite(key, value)
        if isinstance(value, str):
            _no_nul(key, value)
        return value
    raise InvalidInputError(
        f"{op} on {key!r} needs a string, number, boolean or None, got {type(value).__name__} {value!r:.80}"
    )


def _finite(key: str, value: float) -> None:
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidInputError(f"filter value for {key!r} must be a finite number, got {value!r}")


def _no_nul(key: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidInputError(f"filter value for {key!r} contains a NUL byte")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"filter value for {key!r} is not valid Unicode (lone surrogate at position {exc.start})"
        ) from None
