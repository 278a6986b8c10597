"""The filter tree compiled to PostgreSQL SQL over the memories row aliased ``m``.

Only fixed templates become SQL text; every value the user wrote is a bound parameter,
metadata keys included: a key path is a chain of ``-> %s::text`` (object fields only, so
a key like "0" never indexes into an array, as in SQLite's ``$."0"``).

Semantics (``azmem.stores.filters``), and how they are kept:

* type-strict: ``jsonb_typeof`` guards every comparison; equality is jsonb equality
  (numbers compare numerically, 1 == 1.0, never "1" or true), written as containment
  ``metadata @> {"a": {"b": v}}`` so the GIN index on metadata serves it;
* ``{"k": None}``: missing key or JSON null; each leaf is wrapped in ``COALESCE(..., false)``
  so NOT of it is the exact complement, never NULL;
* ordering on text is bytewise (``COLLATE "C"``, like SQLite's BINARY), on numbers numeric;
* ``contains``: ``strpos`` in a string, or an element (jsonb containment of ``[v]``) of an
  array; ``icontains``: case-folded substring. PostgreSQL 18 has Unicode full case
  folding (``casefold`` with ``pg_unicode_fast``), exactly Python's ``str.casefold``;
  older servers fold with ``lower()`` under a Unicode collation (``pg_c_utf8`` on 17,
  ICU ``und-x-icu`` where present), which lacks the multi-character folds ("ß" vs "ss").
* time fields are ``timestamptz`` columns compared with the stored form the parser made
  (``format_time``); ``contains`` on them reads that same text form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from psycopg.types.json import Jsonb

from azmem.stores.filters import TIME_FIELDS, And, Cmp, Field, Filter, MetaPath, Not, Or, Scalar
from azmem.stores.models import Scope

__all__ = ["CASEFOLD", "CompiledFilter", "Folding", "compile_postgres", "lower_folding", "where_clause"]

Frag: TypeAlias = tuple[str, tuple[Any, ...]]

_ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_TIME_TEXT = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"


@dataclass(frozen=True)
class CompiledFilter:
    """A boolean SQL expression over the memories row aliased `m`, plus its parameters (``%s``)."""

    sql: str
    params: tuple[Any, ...]


@dataclass(frozen=True)
class Folding:
    """How `icontains` folds case: a SQL template (``{}`` = the text) and the same fold in Python."""

    sql: str
    python: Callable[[str], str]


CASEFOLD = Folding("casefold(({}) COLLATE pg_unicode_fast)", str.casefold)


def lower_folding(collation: str | None) -> Folding:
    """lower() under `collation` (one of a fixed set, chosen by the store), for servers before 18."""
    if collation is None:
        return Folding("lower({})", str.lower)
    assert collation in ("pg_c_utf8", "und-x-icu", "pg_unicode_fast"), collation
    return Folding(f'lower(({{}}) COLLATE "{collation}")', str.lower)


def compile_postgres(tree: Filter | None, fold: Folding = CASEFOLD) -> CompiledFilter | None:
    if tree is None:
        return None
    sql, params = _node(tree, fold)
    return CompiledFilter(sql, params)


def where_clause(scope: Scope, compiled: CompiledFilter | None) -> tuple[str, list[Any]]:
    """The scope (every given id must match) ANDed with the filter: a filter never widens it."""
    parts: list[str] = []
    params: list[Any] = []
    for column, value in scope.as_dict().items():  # fixed column names only
        parts.append(f"m.{column} = %s")
        params.append(value)
    if compiled is not None:
        parts.append(compiled.sql)
        params.extend(compiled.params)
    return (" AND ".join(parts) or "true"), params


def _frag(template: str, *parts: Frag) -> Frag:
    """Fill the ``{}`` of `template` with fragments, left to right: parameters stay in text order."""
    return template.format(*(p[0] for p in parts)), tuple(v for p in parts for v in p[1])


def _val(value: Any) -> Frag:
    return "%s", (value,)


def _join(op: str, parts: list[Frag]) -> Frag:
    if not parts:
        return ("true", ()) if op == "AND" else ("false", ())
    if len(parts) == 1:
        return parts[0]
    return "(" + f" {op} ".join(p[0] for p in parts) + ")", tuple(v for p in parts for v in p[1])


def _node(node: Filter, fold: Folding) -> Frag:
    if isinstance(node, And):
        return _join("AND", [_node(p, fold) for p in node.parts])
    if isinstance(node, Or):
        return _join("OR", [_node(p, fold) for p in node.parts])
    if isinstance(node, Not):
        return _frag("(NOT {})", _node(node.part, fold))
    if isinstance(node.target, Field):
        return _field(node, node.target.name, fold)
    return _meta(node, node.target, fold)


def _fold(fold: Folding, text: Frag) -> Frag:
    return _frag(fold.sql, text)


# -- record fields -------------------------------------------------------------------------------


def _field(c: Cmp, name: str, fold: Folding) -> Frag:
    col: Frag = (f"m.{name}", ())  # name is one of FIELDS (checked by the parser)
    if name in TIME_FIELDS:
        return _time_field(c, col, fold)
    if c.op == "in":
        assert isinstance(c.value, tuple)
        values = [v for v in c.value if v is not None]
        parts = [_frag("COALESCE({} = ANY({}::text[]), false)", col, _val(values))] if values else []
        if None in c.value:
            parts.append(_frag("({} IS NULL)", col))
        return _join("OR", parts)
    assert not isinstance(c.value, tuple)
    if c.op == "eq":
        if c.value is None:
            return _frag("({} IS NULL)", col)
        return _frag("COALESCE({} = {}, false)", col, _val(c.value))
    if c.op in _ORDER:
        return _frag(f"COALESCE({{}} {_ORDER[c.op]} {{}}, false)", col, _val(c.value))
    assert isinstance(c.value, str)
    if c.op == "icontains":
        return _frag("COALESCE(strpos({}, {}) > 0, false)", _fold(fold, col), _val(fold.python(c.value)))
    return _frag("COALESCE(strpos({}, {}) > 0, false)", col, _val(c.value))


def _time_field(c: Cmp, col: Frag, fold: Folding) -> Frag:
    if c.op == "in":
        assert isinstance(c.value, tuple)
        if not c.value:
            return "false", ()
        return _frag("({} = ANY({}::timestamptz[]))", col, _val(list(c.value)))
    assert isinstance(c.value, str)
    if c.op == "eq":
        return _frag("({} = {}::timestamptz)", col, _val(c.value))
    if c.op in _ORDER:
        return _frag(f"({{}} {_ORDER[c.op]} {{}}::timestamptz)", col, _val(c.value))
    text = _frag(_TIME_TEXT, col)
    if c.op == "icontains":
        return _frag("(strpos({}, {}) > 0)", _fold(fold, text), _val(fold.python(c.value)))
    return _frag("(strpos({}, {}) > 0)", text, _val(c.value))


# -- metadata ------------------------------------------------------------------------------------


def _x(target: MetaPath) -> Frag:
    """The jsonb value at the key path (NULL when any key is missing or a parent is no object)."""
    return "(m.metadata" + " -> %s::text" * len(target.segments) + ")", target.segments


def _text(x: Frag) -> Frag:
    return _frag("({} #>> '{{}}')", x)


def _nested(segments: tuple[str, ...], value: Any) -> Any:
    for seg in reversed(segments):
        value = {seg: value}
    return value


def _meta(c: Cmp, target: MetaPath, fold: Folding) -> Frag:
    x = _x(target)
    if c.op == "in":
        assert isinstance(c.value, tuple)
        values = [Jsonb(v) for v in c.value if v is not None]
        parts = [_frag("COALESCE({} = ANY({}::jsonb[]), false)", x, _val(values))] if values else []
        if None in c.value:
            parts.append(_is_null(x))
        return _join("OR", parts)
    value = c.value
    assert not isinstance(value, tuple)
    if c.op == "eq":
        if value is None:
            return _is_null(x)
        return _frag("(m.metadata @> {})", _val(Jsonb(_nested(target.segments, value))))
    if c.op in _ORDER:
        op = _ORDER[c.op]
        if isinstance(value, str):
            return _frag(
                f"COALESCE(jsonb_typeof({{}}) = 'string' AND {{}} COLLATE \"C\" {op} {{}}, false)",
                x,
                _text(x),
                _val(value),
            )
        return _frag(
            f"COALESCE(jsonb_typeof({{}}) = 'number' AND {{}} {op} {{}}, false)", x, x, _val(Jsonb(value))
        )
    if c.op == "icontains":
        assert isinstance(value, str)
        needle = _val(fold.python(value))
        elem: Frag = ("e.v", ())
        return _frag(
            "COALESCE((jsonb_typeof({}) = 'string' AND strpos({}, {}) > 0) OR EXISTS (SELECT 1 FROM "
            "jsonb_array_elements(CASE WHEN jsonb_typeof({}) = 'array' THEN {} ELSE '[]'::jsonb END) AS e(v) "
            "WHERE jsonb_typeof(e.v) = 'string' AND strpos({}, {}) > 0), false)",
            x,
            _fold(fold, _text(x)),
            needle,
            x,
            x,
            _fold(fold, _text(elem)),
            needle,
        )
    return _contains(x, value)


def _is_null(x: Frag) -> Frag:
    return _frag("(COALESCE(jsonb_typeof({}), 'null') = 'null')", x)


def _contains(x: Frag, value: Scalar) -> Frag:
    element = _val(Jsonb([value]))
    if isinstance(value, str):
        return _frag(
            "COALESCE((jsonb_typeof({}) = 'string' AND strpos({}, {}) > 0) "
            "OR (jsonb_typeof({}) = 'array' AND {} @> {}), false)",
            x,
            _text(x),
            _val(value),
            x,
            x,
            element,
        )
    return _frag("COALESCE(jsonb_typeof({}) = 'array' AND {} @> {}, false)", x, x, element)
