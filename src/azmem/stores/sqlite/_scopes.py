"""In-memory copy of each row's scope ids, beside the vector index.

Dense search restricted to a scope needs the scope's rowids. Fetching them from SQL
costs a Python tuple per row (~30 ms for a 90k-memory user at 100k); a vectorised
comparison over interned codes costs well under a millisecond. Kept in step with
the vector index by the same change-log refresh; scope ids never change after
insert (UpdateOp cannot move a memory), so only inserts and deletes matter. The BM25
mirror (`_lexical.py`) keeps its slots' scopes with the same interning (`ScopeCodes`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from azmem.stores.models import Scope


class ScopeCodes:
    """Scope ids (user, agent, run) interned as small ints, one table per column, so that
    both in-memory indexes filter a scope with a vectorised comparison of int32 codes.
    Codes are never reused: a table only grows, by the distinct ids ever seen."""

    def __init__(self) -> None:
        self._tables: tuple[dict[str, int], ...] = ({}, {}, {})

    def _code(self, column: int, value: str | None) -> int:
        if value is None:
            return -1
        table = self._tables[column]
        code = table.get(value)
        if code is None:
            code = table[value] = len(table)
        return code

    def encode(self, user: str | None, agent: str | None, run: str | None) -> tuple[int, int, int]:
        """A row's codes, interning new ids; -1 for an id the row does not have."""
        return self._code(0, user), self._code(1, agent), self._code(2, run)

    def wanted(self, user: str | None, agent: str | None, run: str | None) -> list[tuple[int, int | None]]:
        """(column, code) of each id a scope filter sets; code None when no row ever had that id."""
        return [
            (column, self._tables[column].get(value))
            for column, value in enumerate((user, agent, run))
            if value is not None
        ]


class ScopeColumns:
    def __init__(self) -> None:
        self._n = 0
        self._rids = np.empty(0, dtype=np.int64)
        self._codes = np.empty((0, 3), dtype=np.int32)
        self._pos: dict[int, int] = {}
        self._scope_codes = ScopeCodes()

    def __len__(self) -> int:
        return self._n

    def add(self, rows: Iterable[tuple[int, str | None, str | None, str | None]]) -> None:
        for rid, user, agent, run in rows:
            codes = self._scope_codes.encode(user, agent, run)
            row = self._pos.get(rid)
            if row is None:
                if self._n == self._rids.shape[0]:
                    cap = max(1024, 2 * self._n)
                    self._rids = np.resize(self._rids, cap)
                    self._codes = np.resize(self._codes, (cap, 3))
                row = self._n
                self._n += 1
                self._pos[rid] = row
                self._rids[row] = rid
            self._codes[row] = codes

    def remove(self, rids: Iterable[int]) -> None:
        for rid in rids:
            row = self._pos.pop(rid, None)
            if row is None:
                continue
            last = self._n - 1
            if row != last:
                moved = int(self._rids[last])
                self._rids[row] = moved
                self._codes[row] = self._codes[last]
                self._pos[moved] = row
            self._n = last

    def allowed(self, scope: Scope) -> npt.NDArray[np.int64] | None:
        """Rowids in `scope`; None when that is every row (no restriction needed)."""
        mask: npt.NDArray[np.bool_] | None = None
        for column, code in self._scope_codes.wanted(scope.user_id, scope.agent_id, scope.run_id):
            if code is None:
                return np.empty(0, dtype=np.int64)
            hit = self._codes[: self._n, column] == code
            mask = hit if mask is None else mask & hit
        if mask is None or bool(mask.all()):
            return None
        selected: npt.NDArray[np.int64] = self._rids[: self._n][mask]
        return selected
