"""Each process's in-memory mirror of the stored vectors and scope ids, and its refresh.

The rows are the source of truth. Before every search the mirror is brought up to the
snapshot the search reads: rows touched since the mirror's last `changes` sequence number
(by any process, this one included) are dropped and re-read. A mirror older than the
pruned part of the log, or built for another dimension, is rebuilt from the table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.errors import StoreError
from azmem.stores.models import Scope
from azmem.stores.sqlite._lexical import LexicalIndex
from azmem.stores.sqlite._scopes import ScopeColumns
from azmem.stores.sqlite.vectors import IndexMode, VectorIndex

IN_CHUNK = 500


class IndexCache:
    def __init__(self, path: str, mode: IndexMode) -> None:
        self._path = path
        self._mode: IndexMode = mode
        self._index: VectorIndex | None = None
        self._dim = 0
        self._seq = -1
        self._scopes = ScopeColumns()
        self._lexical: LexicalIndex | None = None
        self._lexical_seq = -1

    def invalidate(self) -> None:
        self._index = None
        self._lexical = None

    @staticmethod
    def _log_state(conn: sqlite3.Connection) -> tuple[int, int]:
        pruned, head = conn.execute(
            "SELECT (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'pruned_through'), "
            "(SELECT max(seq) FROM changes)"
        ).fetchone()
        return pruned, pruned if head is None else head

    @staticmethod
    def _changed(conn: sqlite3.Connection, since: int) -> list[int]:
        return [
            r[0]
            for r in conn.execute("SELECT DISTINCT rid FROM changes WHERE seq > ? ORDER BY rid", (since,))
        ]

    def lexical(self, conn: sqlite3.Connection) -> LexicalIndex:
        """The BM25 mirror, built on first use and brought up to the snapshot `conn` is reading
        (same change log as the vectors: inserts, deletes, re-embeds and text updates)."""
        pruned, head = self._log_state(conn)
        if self._lexical is None or self._lexical_seq < pruned:
            self._lexical = LexicalIndex()
            self._lexical.load_all(conn)
        elif head > self._lexical_seq:
            changed = self._changed(conn, self._lexical_seq)
            for i in range(0, len(changed), IN_CHUNK):
                self._lexical.update(conn, changed[i : i + IN_CHUNK])
        self._lexical_seq = head
        return self._lexical

    def sync(self, conn: sqlite3.Connection, dim: int) -> None:
        """Bring the mirror up to the snapshot `conn` is reading."""
        pruned, head = self._log_state(conn)
        if self._index is None or self._dim != dim or self._seq < pruned:
            self._index, self._dim, self._scopes = VectorIndex(dim, mode=self._mode), dim, ScopeColumns()
            self._load(conn, "", ())
        elif head > self._seq:
            changed = self._changed(conn, self._seq)
            # Drop every touched row, then re-add the ones that still exist.
            self._index.remove(np.asarray(changed, dtype=np.int64))
            self._scopes.remove(changed)
            for i in range(0, len(changed), IN_CHUNK):
                chunk = changed[i : i + IN_CHUNK]
                self._load(conn, f"WHERE rid IN ({','.join('?' * len(chunk))})", chunk)
        self._seq = head

    def _load(self, conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> None:
        assert self._index is not None
        rids: list[int] = []
        blobs: list[bytes] = []
        scopes: list[tuple[int, str | None, str | None, str | None]] = []
        for rid, blob, user, agent, run in conn.execute(
            f"SELECT rid, vector, user_id, agent_id, run_id FROM memories {where}", params
        ):
            rids.append(rid)
            blobs.append(blob)
            scopes.append((rid, user, agent, run))
        if not rids:
            return
        data = b"".join(blobs)
        if len(data) != len(rids) * self._dim * 4:
            raise StoreError(
                f"store {self._path} holds vectors of the wrong size for dimension {self._dim}",
                error_code="store_corrupt",
                suggestion="run `azmem reindex` to rewrite every vector",
            )
        vectors = np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(len(rids), self._dim)
        self._index.add(np.asarray(rids, dtype=np.int64), vectors)
        self._scopes.add(scopes)

    def in_scope(self, scope: Scope) -> npt.NDArray[np.int64] | None:
        """Rowids in `scope`, or None when that is every row."""
        return self._scopes.allowed(scope)

    def search(
        self, query: npt.NDArray[np.float32], k: int, allowed: npt.NDArray[np.int64] | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Top-k among `allowed` (None: all). When `allowed` is most of the index, over-fetch
        unrestricted results and drop the others: gathering most of the matrix for a
        restricted scan costs more than scanning it all (25 ms vs 9 ms at 90k of 100k x 384)."""
        index = self._index
        assert index is not None, "sync() first"
        n = len(index)
        if allowed is None or allowed.size * 2 <= n:
            return index.search(query, k, allowed)
        fetch = min(n, int(k * n / allowed.size * 1.5) + 16)
        while True:
            ids, scores = index.search(query, fetch, None)
            keep = np.isin(ids, allowed, assume_unique=True)
            if int(keep.sum()) >= k or fetch >= n:
                return ids[keep][:k], scores[keep][:k]
            fetch = min(n, fetch * 4)
