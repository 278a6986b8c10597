"""The metadata filter language (mem0-compatible) and its compilation to SQLite SQL.

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

Everything the user wrote reaches SQL as a bound parameter, JSON paths included; the
only SQL text produced comes from fixed templates.
"""

from __future__ import annotations

import difflib
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from azmem.azure.errors import InvalidInputError

__all__ = [
    "FIELDS",
    "LOGICAL",
    "OPERATORS",
    "CompiledFilter",
    "compile_filters",
    "format_time",
    "parse_time",
    "register_sql_functions",
]

OPERATORS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "contains", "icontains")
LOGICAL = {"AND": "AND", "OR": "OR", "NOT": "NOT", "$and": "AND", "$or": "OR", "$not": "NOT"}
_TEXT_FIELDS = ("id", "user_id", "agent_id", "run_id", "actor_id", "role", "memory")
_TIME_FIELDS = ("created_at", "updated_at")
FIELDS = _TEXT_FIELDS + _TIME_FIELDS

_SEGMENT = re.compile(r"^[\w\- ]{1,128}$")
_MAX_DEPTH = 32
_MAX_TERMS = 2000
_CASEFOLD_FN = "azmem_casefold"

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class CompiledFilter:
    """A boolean SQL expression over the memories row aliased `m`, plus its parameters."""

    sql: str
    params: tuple[Any, ...]


def register_sql_functions(conn: sqlite3.Connection) -> None:
    """`icontains` needs Unicode casefolding, which SQLite's ASCII-only lower() lacks."""
    conn.create_function(_CASEFOLD_FN, 1, _casefold, deterministic=True)


def _casefold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


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


def compile_filters(filters: Mapping[str, Any] | None) -> CompiledFilter | None:
    """Validate `filters` and compile them; None for no filter. Raises InvalidInputError."""
    if filters is None:
        return None
    if not isinstance(filters, Mapping):
        raise InvalidInputError(f"filters must be a dict, got {type(filters).__name__}")
    if not filters:
        return None
    compiler = _Compiler()
    sql = compiler.node(filters, depth=0)
    return CompiledFilter(sql, tuple(compiler.params))


class _Compiler:
    def __init__(self) -> None:
        self.params: list[Any] = []
        self.terms = 0

    def bind(self, *values: Any) -> None:
        self.params.extend(values)

    # -- structure ------------------------------------------------------------------------
    def node(self, node: object, depth: int) -> str:
        if depth > _MAX_DEPTH:
            raise InvalidInputError(f"filters are nested deeper than {_MAX_DEPTH} levels")
        if not isinstance(node, Mapping):
            raise InvalidInputError(f"a filter must be a dict, got {type(node).__name__}: {node!r:.80}")
        parts = [self.entry(key, value, depth) for key, value in node.items()]
        return _join("AND", parts)

    def entry(self, key: object, value: object, depth: int) -> str:
        if not isinstance(key, str):
            raise InvalidInputError(f"filter keys must be strings, got {key!r}")
        logical = LOGICAL.get(key)
        if logical == "NOT":
            inner = (
                _join("AND", [self.node(v, depth + 1) for v in value])
                if isinstance(value, list)
                else self.node(value, depth + 1)
            )
            return f"(NOT {inner})"
        if logical is not None:
            if not isinstance(value, list | tuple):
                raise InvalidInputError(
                    f"{key} takes a list of filters, got {type(value).__name__}",
                    suggestion=f'e.g. {{"{key}": [{{"a": 1}}, {{"b": 2}}]}}',
                )
            return _join(logical, [self.node(v, depth + 1) for v in value])
        target = _Target.parse(key)
        if isinstance(value, Mapping):
            if not value:
                raise InvalidInputError(f"filter on {key!r} has an empty operator dict")
            return _join("AND", [self.leaf(target, op, operand) for op, operand in value.items()])
        if isinstance(value, list | tuple | set):
            hint = f'{{"{key}": {{"in": [...]}}}}'
            if key.upper() in ("AND", "OR", "NOT"):
                hint = f'{{"{key.upper()}": [...]}} (logical keys are upper-case)'
            raise InvalidInputError(
                f"filter on {key!r}: a list is not a value to compare with",
                suggestion=f"did you mean {hint}?",
            )
        return self.leaf(target, "eq", value)

    # -- leaves -------------------------------------------------------------------------
    def leaf(self, target: _Target, op: object, operand: object) -> str:
        self.terms += 1
        if self.terms > _MAX_TERMS:
            raise InvalidInputError(f"filters have more than {_MAX_TERMS} conditions")
        name = op[1:] if isinstance(op, str) and op.startswith("$") else op
        if name not in OPERATORS:
            closest = difflib.get_close_matches(str(name), OPERATORS, n=1, cutoff=0.0)
            raise InvalidInputError(
                f"unknown filter operator {op!r} on {target.key!r}",
                suggestion=f"did you mean {closest[0]!r}? valid operators: {', '.join(OPERATORS)}",
            )
        if name in ("ne", "nin"):
            return f"(NOT {self.leaf_positive(target, 'eq' if name == 'ne' else 'in', operand)})"
        return self.leaf_positive(target, str(name), operand)

    def leaf_positive(self, target: _Target, op: str, operand: object) -> str:
        if op == "in":
            if not isinstance(operand, list | tuple | set):
                raise InvalidInputError(
                    f"'in' on {target.key!r} takes a list, got {type(operand).__name__}",
                    suggestion=f'{{"{target.key}": {{"in": [{operand!r}]}}}}',
                )
            if len(operand) > _MAX_TERMS:
                raise InvalidInputError(f"'in' on {target.key!r} has more than {_MAX_TERMS} values")
            return _join("OR", [target.eq(self, v) for v in operand])
        if op == "eq":
            return target.eq(self, operand)
        if op in ("gt", "gte", "lt", "lte"):
            return target.compare(self, {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op], operand)
        return target.contains(self, operand, fold=op == "icontains")


@dataclass(frozen=True)
class _Target:
    key: str
    column: str | None  # a record column, or None for a metadata JSON path
    path: str | None

    @classmethod
    def parse(cls, key: str) -> _Target:
        if key in FIELDS:
            return cls(key, f"m.{key}", None)
        raw = key[len("metadata.") :] if key.startswith("metadata.") else key
        segments = raw.split(".")
        for seg in segments:
            if not _SEGMENT.match(seg):
                raise InvalidInputError(
                    f"filter key {key!r} is not a valid field or metadata key",
                    suggestion="metadata keys may use letters, digits, '_', '-' and space, "
                    "with '.' between nested keys",
                )
        return cls(key, None, "$" + "".join(f'."{s}"' for s in segments))

    # Metadata SQL: X is the value at the path, T its JSON type (NULL when the key is missing).
    # Parameters are listed in the order their `?` appear in the text.
    def _emit(self, c: _Compiler, sql: str, *params: Any) -> str:
        c.bind(*params)
        return f"COALESCE(({sql}), 0)"

    def eq(self, c: _Compiler, value: object) -> str:
        value = _scalar(self.key, "eq", value)
        if self.column is not None:
            return self._column_eq(c, value)
        p = self.path
        if value is None:
            return self._emit(c, f"{_T} IS NULL OR {_T} = 'null'", p, p)
        if isinstance(value, bool):
            return self._emit(c, f"{_T} = '{'true' if value else 'false'}'", p)
        if isinstance(value, int | float):
            return self._emit(c, f"{_T} IN ('integer', 'real') AND {_X} = ?", p, p, value)
        return self._emit(c, f"{_T} = 'text' AND {_X} = ?", p, p, value)

    def _column_eq(self, c: _Compiler, value: Scalar) -> str:
        if value is None:
            if self.key in _TIME_FIELDS or self.key in ("id", "memory"):
                raise InvalidInputError(f"{self.key} is never empty; comparing it with None matches nothing")
            return f"({self.column} IS NULL)"
        c.bind(self._column_operand(value))
        return f"COALESCE({self.column} = ?, 0)"

    def _column_operand(self, value: object) -> str:
        if self.key in _TIME_FIELDS:
            return parse_time(value, what=self.key)
        if isinstance(value, str):
            return value
        raise InvalidInputError(f"{self.key} is a string field; got {type(value).__name__} {value!r:.80}")

    def compare(self, c: _Compiler, sql_op: str, value: object) -> str:
        if self.column is not None:
            c.bind(self._column_operand(value))
            return f"COALESCE({self.column} {sql_op} ?, 0)"
        if isinstance(value, datetime | date):
            value = parse_time(value, what=self.key)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidInputError(
                f"ordering comparison on {self.key!r} needs a number, string or datetime, "
                f"got {type(value).__name__} {value!r:.80}"
            )
        p = self.path
        if isinstance(value, str):
            _no_nul(self.key, value)
            return self._emit(c, f"{_T} = 'text' AND {_X} {sql_op} ?", p, p, value)
        _finite(self.key, value)
        return self._emit(c, f"{_T} IN ('integer', 'real') AND {_X} {sql_op} ?", p, p, value)

    def contains(self, c: _Compiler, value: object, *, fold: bool) -> str:
        op = "icontains" if fold else "contains"
        value = _scalar(self.key, op, value)
        if (fold or self.column is not None) and not isinstance(value, str):
            raise InvalidInputError(f"{op} on {self.key!r} needs a string, got {type(value).__name__}")
        if self.column is not None:
            assert isinstance(value, str)
            if fold:
                c.bind(value.casefold())
                return f"COALESCE(instr({_CASEFOLD_FN}({self.column}), ?) > 0, 0)"
            c.bind(value)
            return f"COALESCE(instr({self.column}, ?) > 0, 0)"
        p = self.path
        each = "EXISTS (SELECT 1 FROM json_each(m.metadata, ?) j WHERE "
        if isinstance(value, str):
            needle = value.casefold() if fold else value
            text = f"instr({_CASEFOLD_FN}({_X}), ?) > 0" if fold else f"instr({_X}, ?) > 0"
            elem = f"instr({_CASEFOLD_FN}(j.value), ?) > 0" if fold else "j.value = ?"
            return self._emit(
                c,
                f"({_T} = 'text' AND {text}) OR ({_T} = 'array' AND {each}j.type = 'text' AND {elem}))",
                p,
                p,
                needle,
                p,
                p,
                needle,
            )
        if value is None or isinstance(value, bool):
            jtype = "null" if value is None else ("true" if value else "false")
            return self._emit(c, f"{_T} = 'array' AND {each}j.type = '{jtype}')", p, p)
        return self._emit(
            c, f"{_T} = 'array' AND {each}j.type IN ('integer', 'real') AND j.value = ?)", p, p, value
        )


_X = "json_extract(m.metadata, ?)"
_T = "json_type(m.metadata, ?)"


def _join(op: str, parts: list[str]) -> str:
    if not parts:
        return "1" if op == "AND" else "0"
    if len(parts) == 1:
        return parts[0]
    return "(" + f" {op} ".join(parts) + ")"


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
