"""The filter tree compiled to SQLite SQL over the memories row aliased ``m``.

Metadata lives in a JSON text column: ``json_type`` tells a missing key (NULL) from JSON
null, which keeps comparisons type-strict (1 never equals "1" or true). Each comparison
is wrapped in ``COALESCE(..., 0)`` so that NOT of it is the exact complement, never NULL.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from azmem.stores.filters import And, Cmp, Field, Filter, MetaPath, Not, Or, Scalar, parse_filters
from azmem.stores.models import Scope
from azmem.stores.protocol import Filters

__all__ = ["CompiledFilter", "compile_sqlite", "register_sql_functions", "where_clause"]

_CASEFOLD_FN = "azmem_casefold"
_X = "json_extract(m.metadata, ?)"
_T = "json_type(m.metadata, ?)"
_ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


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


def compile_sqlite(tree: Filter | None) -> CompiledFilter | None:
    if tree is None:
        return None
    params: list[Any] = []
    sql = _node(tree, params)
    return CompiledFilter(sql, tuple(params))


def where_clause(scope: Scope, filters: Filters | CompiledFilter | None) -> tuple[str, list[Any]]:
    """Scope and filters as one WHERE over `m`: every read and bulk delete narrows the same way."""
    parts: list[str] = []
    params: list[Any] = []
    for column, value in scope.as_dict().items():  # fixed column names only
        parts.append(f"m.{column} = ?")
        params.append(value)
    compiled = filters if isinstance(filters, CompiledFilter) else compile_sqlite(parse_filters(filters))
    if compiled is not None:
        parts.append(compiled.sql)
        params.extend(compiled.params)
    return (" AND ".join(parts) or "1"), params


def _join(op: str, parts: list[str]) -> str:
    if not parts:
        return "1" if op == "AND" else "0"
    if len(parts) == 1:
        return parts[0]
    return "(" + f" {op} ".join(parts) + ")"


def _node(node: Filter, params: list[Any]) -> str:
    if isinstance(node, And):
        return _join("AND", [_node(p, params) for p in node.parts])
    if isinstance(node, Or):
        return _join("OR", [_node(p, params) for p in node.parts])
    if isinstance(node, Not):
        return f"(NOT {_node(node.part, params)})"
    return _cmp(node, params)


def _cmp(c: Cmp, params: list[Any]) -> str:
    if c.op == "in":
        assert isinstance(c.value, tuple)
        return _join("OR", [_eq(c.target, v, params) for v in c.value])
    assert not isinstance(c.value, tuple)
    if c.op == "eq":
        return _eq(c.target, c.value, params)
    if c.op in _ORDER:
        return _compare(c.target, _ORDER[c.op], c.value, params)
    return _contains(c.target, c.value, params, fold=c.op == "icontains")


def _path(target: MetaPath) -> str:
    return "$" + "".join(f'."{s}"' for s in target.segments)


def _emit(params: list[Any], sql: str, *values: Any) -> str:
    # Parameters are listed in the order their `?` appear in the text.
    params.extend(values)
    return f"COALESCE(({sql}), 0)"


def _eq(target: Field | MetaPath, value: Scalar, params: list[Any]) -> str:
    if isinstance(target, Field):
        if value is None:
            return f"(m.{target.name} IS NULL)"
        params.append(value)
        return f"COALESCE(m.{target.name} = ?, 0)"
    p = _path(target)
    if value is None:
        return _emit(params, f"{_T} IS NULL OR {_T} = 'null'", p, p)
    if isinstance(value, bool):
        return _emit(params, f"{_T} = '{'true' if value else 'false'}'", p)
    if isinstance(value, int | float):
        return _emit(params, f"{_T} IN ('integer', 'real') AND {_X} = ?", p, p, value)
    return _emit(params, f"{_T} = 'text' AND {_X} = ?", p, p, value)


def _compare(target: Field | MetaPath, sql_op: str, value: Scalar, params: list[Any]) -> str:
    if isinstance(target, Field):
        params.append(value)
        return f"COALESCE(m.{target.name} {sql_op} ?, 0)"
    p = _path(target)
    if isinstance(value, str):
        return _emit(params, f"{_T} = 'text' AND {_X} {sql_op} ?", p, p, value)
    return _emit(params, f"{_T} IN ('integer', 'real') AND {_X} {sql_op} ?", p, p, value)


def _contains(target: Field | MetaPath, value: Scalar, params: list[Any], *, fold: bool) -> str:
    if isinstance(target, Field):
        assert isinstance(value, str)
        if fold:
            params.append(value.casefold())
            return f"COALESCE(instr({_CASEFOLD_FN}(m.{target.name}), ?) > 0, 0)"
        params.append(value)
        return f"COALESCE(instr(m.{target.name}, ?) > 0, 0)"
    p = _path(target)
    each = "EXISTS (SELECT 1 FROM json_each(m.metadata, ?) j WHERE "
    if isinstance(value, str):
        needle = value.casefold() if fold else value
        text = f"instr({_CASEFOLD_FN}({_X}), ?) > 0" if fold else f"instr({_X}, ?) > 0"
        elem = f"instr({_CASEFOLD_FN}(j.value), ?) > 0" if fold else "j.value = ?"
        return _emit(
            params,
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
        return _emit(params, f"{_T} = 'array' AND {each}j.type = '{jtype}')", p, p)
    return _emit(
        params, f"{_T} = 'array' AND {each}j.type IN ('integer', 'real') AND j.value = ?)", p, p, value
    )
