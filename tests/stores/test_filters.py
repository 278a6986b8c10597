"""The filter language: documented semantics on a real store (SQLite and PostgreSQL), a property
test against a Python reference evaluator, and every kind of invalid filter."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azmem.errors import InvalidInputError
from azmem.stores import MemoryRecord, MemoryStore, Scope, SQLiteStore, parse_filters
from azmem.stores.sqlite.filters import compile_sqlite

from .conftest import StoreFactory
from .store_helpers import add, snapshot

T0 = datetime(2024, 1, 1, tzinfo=UTC)

# name -> (user_id, metadata); created_at = T0 + index days.
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "int1": ("alice", {"a": 1, "b": "x", "tags": ["x", "y"], "n": {"c": 1}}),
    "float1": ("alice", {"a": 1.0, "b": "xy", "tags": [1, 2], "n": {"c": 2}}),
    "str1": ("alice", {"a": "1", "b": "Y", "tags": ["ß"], "when": "2024-03-01"}),
    "true": ("alice", {"a": True, "b": "SS", "tags": [True, None]}),
    "false": ("bob", {"a": False, "b": "straße", "tags": []}),
    "null": ("bob", {"a": None, "b": "", "n": {"c": None}}),
    "neg": ("bob", {"a": -2.5, "b": "x", "tags": "x y", "when": "2023-12-31"}),
    "big": ("carol", {"a": 3, "b": "yx", "tags": [3.0, "3"]}),
    "list": ("carol", {"a": [1, 2], "b": "X"}),
    "obj": ("carol", {"a": {"c": 1}, "user_id": "meta-user"}),
    "missing": ("carol", {}),
}


@pytest.fixture(scope="module")
def fstore(module_make_store: StoreFactory) -> tuple[MemoryStore, dict[str, MemoryRecord]]:
    store = module_make_store()
    records = {
        name: add(store, f"memory {name}", user_id=user, metadata=meta, created_at=T0 + timedelta(days=i))
        for i, (name, (user, meta)) in enumerate(ROWS.items())
    }
    return store, records


def matching(fstore: tuple[MemoryStore, dict[str, MemoryRecord]], filters: dict[str, Any]) -> set[str]:
    store, records = fstore
    by_id = {r.id: name for name, r in records.items()}
    page = store.list(Scope(), filters, limit=1000)
    assert store.count(filters=filters) == len(page.records)
    return {by_id[r.id] for r in page.records}


CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({}, set(ROWS)),
    ({"a": 1}, {"int1", "float1"}),
    ({"a": "1"}, {"str1"}),
    ({"a": True}, {"true"}),
    ({"a": False}, {"false"}),
    ({"a": None}, {"null", "missing"}),
    ({"a": {"ne": None}}, set(ROWS) - {"null", "missing"}),
    ({"a": {"ne": 1}}, set(ROWS) - {"int1", "float1"}),
    ({"a": {"in": [1, "1", None]}}, {"int1", "float1", "str1", "null", "missing"}),
    ({"a": {"nin": [1, True]}}, set(ROWS) - {"int1", "float1", "true"}),
    ({"a": {"in": []}}, set()),
    ({"a": {"gt": 0}}, {"int1", "float1", "big"}),
    ({"a": {"gte": 1, "lt": 3}}, {"int1", "float1"}),
    ({"a": {"lte": -2.5}}, {"neg"}),
    ({"b": {"gt": "x"}}, {"float1", "big"}),
    ({"when": {"lt": "2024-01-01"}}, {"neg"}),
    ({"when": {"gte": datetime(2024, 2, 1, tzinfo=UTC)}}, {"str1"}),  # datetimes compare as ISO text
    ({"b": {"contains": "x"}}, {"int1", "float1", "neg", "big"}),
    ({"b": {"icontains": "X"}}, {"int1", "float1", "neg", "big", "list"}),
    ({"b": {"icontains": "STRASSE"}}, {"false"}),
    ({"b": {"icontains": "ß"}}, {"true", "false"}),
    ({"tags": {"contains": "x"}}, {"int1", "neg"}),
    ({"tags": {"contains": 3}}, {"big"}),
    ({"tags": {"contains": 1}}, {"float1"}),
    ({"tags": {"contains": True}}, {"true"}),
    ({"tags": {"contains": None}}, {"true"}),
    ({"tags": {"icontains": "SS"}}, {"str1"}),
    ({"n.c": 1}, {"int1"}),
    ({"n.c": None}, set(ROWS) - {"int1", "float1"}),
    ({"metadata.user_id": "meta-user"}, {"obj"}),
    ({"user_id": "bob"}, {"false", "null", "neg"}),
    ({"user_id": {"in": ["bob", "carol"]}, "a": {"gt": 0}}, {"big"}),
    ({"user_id": {"ne": "alice"}, "a": None}, {"null", "missing"}),
    ({"memory": {"contains": "int"}}, {"int1"}),
    ({"memory": {"icontains": "FLOAT"}}, {"float1"}),
    ({"id": "not-an-id"}, set()),
    ({"created_at": {"gte": "2024-01-10"}}, {"obj", "missing"}),
    ({"created_at": {"lt": T0 + timedelta(days=1)}}, {"int1"}),
    ({"updated_at": {"gte": datetime(2024, 1, 10, 1, tzinfo=UTC)}}, {"missing"}),
    ({"OR": [{"a": 1}, {"b": "Y"}]}, {"int1", "float1", "str1"}),
    ({"AND": [{"a": {"gte": 1}}, {"b": "x"}]}, {"int1"}),
    ({"NOT": {"a": 1}}, set(ROWS) - {"int1", "float1"}),
    ({"NOT": [{"a": {"gt": 0}}, {"b": {"contains": "y"}}]}, set(ROWS) - {"float1", "big"}),
    ({"$or": [{"a": {"$gt": 2}}, {"$not": {"user_id": {"$ne": "bob"}}}]}, {"big", "false", "null", "neg"}),
    ({"AND": []}, set(ROWS)),
    ({"OR": []}, set()),
    ({"b": "'; DROP TABLE memories; --"}, set()),
]


@pytest.mark.parametrize(("filters", "expected"), CASES, ids=[repr(c[0])[:60] for c in CASES])
def test_semantics(
    fstore: tuple[MemoryStore, dict[str, MemoryRecord]], filters: dict[str, Any], expected: set[str]
) -> None:
    assert matching(fstore, filters) == expected


def test_filters_never_widen_scope(fstore: tuple[MemoryStore, dict[str, MemoryRecord]]) -> None:
    store, _ = fstore
    page = store.list(Scope(user_id="alice"), {"OR": [{"user_id": "bob"}, {"a": 1}]})
    assert {r.user_id for r in page.records} == {"alice"}


# -- property: SQL agrees with a reference evaluator of the documented semantics -----------------

_MISSING = object()


def _lookup(meta: dict[str, Any], key: str) -> Any:
    value: Any = meta
    for seg in key.split("."):
        if not isinstance(value, dict) or seg not in value:
            return _MISSING
        value = value[seg]
    return value


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _eq(x: Any, v: Any) -> bool:
    if v is None:
        return x is _MISSING or x is None
    if isinstance(v, bool):
        return isinstance(x, bool) and x == v
    if _is_num(v):
        return _is_num(x) and x == v
    return isinstance(x, str) and x == v


def _ref_leaf(x: Any, op: str, v: Any) -> bool:
    if op == "eq":
        return _eq(x, v)
    if op == "ne":
        return not _eq(x, v)
    if op == "in":
        return any(_eq(x, e) for e in v)
    if op == "nin":
        return not any(_eq(x, e) for e in v)
    if op in ("gt", "gte", "lt", "lte"):
        ok = (_is_num(v) and _is_num(x)) or (isinstance(v, str) and isinstance(x, str))
        if not ok:
            return False
        return {"gt": x > v, "gte": x >= v, "lt": x < v, "lte": x <= v}[op]
    if op == "contains":
        if isinstance(v, str) and isinstance(x, str):
            return v in x
        return isinstance(x, list) and any(_eq(e, v) and e is not _MISSING for e in x)
    if op == "icontains":
        f = v.casefold()
        if isinstance(x, str):
            return f in x.casefold()
        return isinstance(x, list) and any(isinstance(e, str) and f in e.casefold() for e in x)
    raise AssertionError(op)


def reference(meta: dict[str, Any], flt: dict[str, Any]) -> bool:
    for key, value in flt.items():
        if key == "AND":
            ok = all(reference(meta, f) for f in value)
        elif key == "OR":
            ok = any(reference(meta, f) for f in value)
        elif key == "NOT":
            ok = not reference(meta, value)
        elif isinstance(value, dict):
            ok = all(_ref_leaf(_lookup(meta, key), op, v) for op, v in value.items())
        else:
            ok = _ref_leaf(_lookup(meta, key), "eq", value)
        if not ok:
            return False
    return True


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 3),
    st.sampled_from([1.0, -2.5, 3.0]),
    st.sampled_from(["", "x", "y", "xy", "Y", "X", "1", "3", "ß", "SS", "straße"]),
)
keys = st.sampled_from(["a", "a", "b", "tags", "n.c", "when", "zzz"])


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(keys)
    op = draw(
        st.sampled_from(["eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "contains", "icontains", "="])
    )
    if op == "=":
        return {key: draw(scalars)}
    if op in ("in", "nin"):
        return {key: {op: draw(st.lists(scalars, max_size=4))}}
    if op in ("gt", "gte", "lt", "lte"):
        return {key: {op: draw(st.one_of(st.integers(-3, 3), st.sampled_from(["x", "xy", "2024-01-01"])))}}
    if op == "icontains":
        return {key: {op: draw(st.sampled_from(["x", "X", "ss", "SS", "ß", "Y", ""]))}}
    return {key: {op: draw(scalars)}}


filter_trees = st.recursive(
    leaves(),
    lambda children: st.one_of(
        st.builds(lambda fs: {"AND": fs}, st.lists(children, max_size=3)),
        st.builds(lambda fs: {"OR": fs}, st.lists(children, max_size=3)),
        st.builds(lambda f: {"NOT": f}, children),
    ),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=filter_trees)
def test_sql_matches_reference(
    fstore: tuple[MemoryStore, dict[str, MemoryRecord]], flt: dict[str, Any]
) -> None:
    expected = {name for name, (_, meta) in ROWS.items() if reference(meta, flt)}
    assert matching(fstore, flt) == expected


# -- invalid filters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "message", "suggestion"),
    [
        ({"a": {"gtee": 1}}, "unknown filter operator 'gtee'", "'gte'"),
        ({"a": {"$regex": "x"}}, "unknown filter operator '$regex'", "did you mean"),
        ({"a": {"equals": 1}}, "unknown filter operator 'equals'", "'eq'"),
        ({"a": [1, 2]}, "a list is not a value", '"in"'),
        ({"and": [{"a": 1}]}, "a list is not a value", "AND"),
        ({"AND": {"a": 1}}, "AND takes a list", None),
        ({"a": {"in": 1}}, "'in' on 'a' takes a list", None),
        ({"a": {"gt": [1]}}, "needs a number, string or datetime", None),
        ({"a": {"gt": True}}, "needs a number, string or datetime", None),
        ({"a": {"gt": None}}, "needs a number, string or datetime", None),
        ({"a": {"eq": {"x": 1}}}, "needs a string, number, boolean or None", None),
        ({"a": {"contains": [1]}}, "needs a string, number, boolean or None", None),
        ({"a": {"icontains": 1}}, "icontains on 'a' needs a string", None),
        ({"a": float("nan")}, "finite", None),
        ({"a": {"lt": float("inf")}}, "finite", None),
        ({"a": "x\x00y"}, "NUL", None),
        ({"a": "bad \udc80"}, "surrogate", None),
        ({"a'b": 1}, "not a valid field or metadata key", "letters, digits"),
        ({"$.a": 1}, "not a valid field or metadata key", None),
        ({"a..b": 1}, "not a valid field or metadata key", None),
        ({"": 1}, "not a valid field or metadata key", None),
        ({"a": {}}, "empty operator dict", None),
        ({1: 1}, "keys must be strings", None),
        ({"user_id": 5}, "user_id is a string field", None),
        ({"created_at": {"gt": "yesterday"}}, "not an ISO-8601", None),
        ({"created_at": {"gt": 5}}, "expected a datetime", None),
        ({"created_at": None}, "never empty", None),
        ({"OR": [1]}, "a filter must be a dict", None),
    ],
)
def test_invalid_filters(filters: Any, message: str, suggestion: str | None) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_filters(filters)
    assert message in err.value.message
    if suggestion is not None:
        assert suggestion in (err.value.suggestion or "")


def test_non_dict_filter() -> None:
    with pytest.raises(InvalidInputError, match="must be a dict"):
        parse_filters([{"a": 1}])  # type: ignore[arg-type]


def test_deep_nesting_is_refused() -> None:
    flt: dict[str, Any] = {"a": 1}
    for _ in range(40):
        flt = {"NOT": flt}
    with pytest.raises(InvalidInputError, match="nested deeper"):
        parse_filters(flt)


NASTY = {"b": "'; DROP TABLE x; --", "n.c": {"in": ["1", 2]}, "user_id": "u'", "p": {"contains": "%s"}}


def test_values_never_reach_sql_text() -> None:
    compiled = compile_sqlite(parse_filters(NASTY))
    assert compiled is not None
    assert "DROP" not in compiled.sql
    assert "u'" not in compiled.sql
    assert '"n"."c"' not in compiled.sql  # paths are parameters too
    assert "'; DROP TABLE x; --" in compiled.params
    assert '$."n"."c"' in compiled.params


def test_values_never_reach_postgres_sql_text() -> None:
    pytest.importorskip("psycopg")
    from azmem.stores.postgres.filters import compile_postgres

    compiled = compile_postgres(parse_filters(NASTY))
    assert compiled is not None
    assert "DROP" not in compiled.sql
    assert "u'" not in compiled.sql
    assert compiled.sql.count("%s") == len(compiled.params)  # the user's "%s" is a value, not a placeholder
    assert "'n'" not in compiled.sql
    assert "'c'" not in compiled.sql  # the key path is parameters too: -> %s::text -> %s::text
    values = [getattr(p, "obj", p) for p in compiled.params]  # Jsonb wrappers hold .obj
    assert {"b": "'; DROP TABLE x; --"} in values  # equality is containment: metadata @> %s
    assert "%s" in values
    assert [v for v in values if v in ("n", "c")][:2] == ["n", "c"]


def test_invalid_filter_leaves_store_unchanged(store: MemoryStore) -> None:
    add(store, "one", metadata={"a": 1})
    before = snapshot(store)
    with pytest.raises(InvalidInputError):
        store.search("one", None, Scope(user_id="alice"), {"a": {"gtee": 1}}, mode="bm25")
    with pytest.raises(InvalidInputError):
        store.list(Scope(), {"a": {"in": 3}})
    assert snapshot(store) == before
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
