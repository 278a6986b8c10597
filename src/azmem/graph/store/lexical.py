"""The SQLite graph store's in-memory BM25 over fact text: one index per group, kept in step with the table.

Why: FTS5 evaluates ``bm25()`` row by row and must score every row matching any query
word before it can sort. A 10k-fact group answers an ordinary question ("where does Ava
Silva work") with ~4,000 matches: 6-8 ms of FTS5 scoring, the largest part of
``Graph.search``. The same formula over posting arrays in numpy costs well under a
millisecond. FTS5 stays the durable index (and the fallback for a query word it would
read as a phrase); this is a per-process mirror.

Exactness: tokens come from FTS5 itself (a private TEMP FTS5 table with the graph's
tokenizer, columns ``fact`` and ``name`` as in ``graph_facts_fts``), never from a Python
re-implementation, and the score is FTS5's ``bm25()`` (the constants of the memory
store's mirror, `azmem.stores.sqlite._lexical`, evaluated in FTS5's order: per query
token, summed in query order). One difference, on purpose: N, the average length and
each word's document count are those of the **groups searched**, where FTS5's are the
whole table's, so a group's ranking never depends on what other groups hold. With one
group in the file the scores equal FTS5's (tested).

Consistency: a fact's text never changes after insert (invalidation only sets times),
and rids only grow (``AUTOINCREMENT``), so when a group's version moves the index reads
the rows above its highest rid and appends them; if rows it holds are gone (a deleted
episode or fact, a cleared group) it rebuilds the group. Every read runs inside the
store's read transaction, so the index and the vector block see one snapshot.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from azmem.graph.store.sqlite_schema import FTS_TOKENIZE
from azmem.stores.sqlite._lexical import K1, B, PhraseQuery

__all__ = ["FactLexicon", "LexicalCache", "PhraseQuery", "bm25_top"]

#: Groups kept in memory per store, as for the vector blocks.
MAX_GROUPS = 64
_TOKEN_CACHE = 20_000

_TOK = "azmem_graph_tok"
_TOK_V = "azmem_graph_tok_v"


def _ensure_temp(conn: sqlite3.Connection) -> None:
    # TEMP objects are private to this connection and never touch the store file.
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_TOK} USING fts5(fact, name, tokenize='{FTS_TOKENIZE}')"
    )
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_TOK_V} USING fts5vocab(temp, {_TOK}, instance)")


def _postings(
    conn: sqlite3.Connection, rows: Sequence[tuple[int, str, str]]
) -> list[tuple[str, npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """(token, rids, term frequencies) of (rid, fact, name) rows, tokenized by FTS5."""
    _ensure_temp(conn)
    conn.execute(f"DELETE FROM temp.{_TOK}")  # in case an interrupted call left rows
    conn.executemany(f"INSERT INTO temp.{_TOK} (rowid, fact, name) VALUES (?, ?, ?)", rows)
    out = []
    try:
        for term, docs_text in conn.execute(
            f"SELECT term, group_concat(doc, ' ') FROM temp.{_TOK_V} GROUP BY term"
        ):
            docs, counts = np.unique(np.array(docs_text.split(), dtype=np.int64), return_counts=True)
            out.append((str(term), docs, counts.astype(np.float64)))
    finally:
        conn.execute(f"DELETE FROM temp.{_TOK}")
    return out


class FactLexicon:
    """One group's facts: postings (token -> row numbers, tf) over rows in rid order."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.version = -1
        self.rids = np.empty(0, dtype=np.int64)
        self.lengths = np.empty(0, dtype=np.float64)
        self.total = 0.0
        self._post: dict[str, list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]] = {}

    def __len__(self) -> int:
        return int(self.rids.size)

    def refresh(self, conn: sqlite3.Connection, group_id: str, version: int) -> None:
        if version == self.version:
            return
        top = int(self.rids[-1]) if self.rids.size else 0
        (kept,) = conn.execute(
            "SELECT count(*) FROM graph_facts WHERE group_id = ? AND rid <= ?", (group_id, top)
        ).fetchone()
        if kept != self.rids.size:  # rows went away: start over
            self._reset()
            top = 0
        rows = conn.execute(
            "SELECT rid, fact, name FROM graph_facts WHERE group_id = ? AND rid > ? ORDER BY rid",
            (group_id, top),
        ).fetchall()
        if rows:
            self._append(conn, rows)
        self.version = version

    def _append(self, conn: sqlite3.Connection, rows: list[tuple[int, str, str]]) -> None:
        new_rids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        base = self.rids.size
        lengths = np.zeros(len(rows), dtype=np.float64)
        for token, rids, tfs in _postings(conn, rows):
            slots = np.searchsorted(new_rids, rids)
            np.add.at(lengths, slots, tfs)
            self._post.setdefault(token, []).append((slots + base, tfs))
        self.rids = np.concatenate((self.rids, new_rids))
        self.lengths = np.concatenate((self.lengths, lengths))
        self.total += float(lengths.sum())

    def postings(self, token: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
        chunks = self._post.get(token)
        if not chunks:
            return None
        if len(chunks) > 1:  # merge appended chunks once
            chunks[:] = [(np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks]))]
        return chunks[0]


def bm25_top(
    lexicons: Sequence[FactLexicon],
    tokens: Sequence[str],
    masks: Sequence[npt.NDArray[np.bool_] | None],
    limit: int,
) -> list[tuple[int, int]]:
    """The ``limit`` best (lexicon index, row) by FTS5's bm25 over the lexicons together, among
    the rows each mask allows (None: all), ties by rid: ``ORDER BY bm25(...), rid``."""
    n_rows = sum(len(lex) for lex in lexicons)
    if not n_rows or not tokens or limit <= 0:
        return []
    avgdl = sum(lex.total for lex in lexicons) / n_rows
    found = [[lex.postings(t) for t in tokens] for lex in lexicons]
    df = [sum(_size(f[j]) for f in found) for j in range(len(tokens))]
    scores: list[npt.NDArray[np.float64]] = []
    rows: list[npt.NDArray[np.int64]] = []
    which: list[npt.NDArray[np.int64]] = []
    rids: list[npt.NDArray[np.int64]] = []
    for i, lex in enumerate(lexicons):
        parts = [(p, df[j]) for j, p in enumerate(found[i]) if p is not None]
        if not parts:
            continue
        slots = np.concatenate([p[0] for p, _ in parts])
        contributions = []
        for (s, tf), n in parts:
            idf = math.log((n_rows - n + 0.5) / (n + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            d = lex.lengths[s]
            contributions.append(idf * ((tf * (K1 + 1.0)) / (tf + K1 * (1.0 - B + B * d / avgdl))))
        # bincount adds each row's contributions in query-token order, as FTS5 does.
        sums = np.bincount(slots, weights=np.concatenate(contributions), minlength=len(lex))
        hit = np.zeros(len(lex), dtype=np.bool_)
        hit[slots] = True
        mask = masks[i]
        if mask is not None:
            hit &= mask
        matched = np.flatnonzero(hit)
        rows.append(matched)
        scores.append(sums[matched].astype(np.float64, copy=False))
        which.append(np.full(matched.size, i, dtype=np.int64))
        rids.append(lex.rids[matched])
    if not rows:
        return []
    all_rows, all_scores, all_which = np.concatenate(rows), np.concatenate(scores), np.concatenate(which)
    all_rids = np.concatenate(rids)
    k = min(limit, all_rows.size)
    if k < all_rows.size:
        best = np.argpartition(-all_scores, k - 1)[:k]
        # every row scoring as the k-th does is a candidate: ties are broken by rid below
        best = np.flatnonzero(all_scores >= all_scores[best].min())
    else:
        best = np.arange(all_rows.size)
    best = best[np.lexsort((all_rids[best], -all_scores[best]))][:k]
    return [(int(all_which[b]), int(all_rows[b])) for b in best]


def _size(postings: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None) -> int:
    return 0 if postings is None else int(postings[0].size)


class LexicalCache:
    """Each group's `FactLexicon` (least recently used dropped beyond MAX_GROUPS) and the
    query words' tokens. Used under the store's lock; its own lock guards the maps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: OrderedDict[str, FactLexicon] = OrderedDict()
        self._tokens: dict[str, list[str]] = {}

    def lexicon(self, conn: sqlite3.Connection, group_id: str, version: int) -> FactLexicon:
        with self._lock:
            lex = self._groups.get(group_id)
            if lex is None:
                lex = self._groups[group_id] = FactLexicon()
            self._groups.move_to_end(group_id)
            while len(self._groups) > MAX_GROUPS:
                self._groups.popitem(last=False)
        lex.refresh(conn, group_id, version)
        return lex

    def tokens(self, conn: sqlite3.Connection, words: Sequence[str]) -> list[str]:
        """FTS5's token of each query word, in order (a word without one is skipped).
        `PhraseQuery` if FTS5 would read a word as several tokens (a phrase)."""
        missing = [w for w in words if w not in self._tokens]
        if missing:
            if len(self._tokens) + len(missing) > _TOKEN_CACHE:
                self._tokens.clear()
            _ensure_temp(conn)
            conn.execute(f"DELETE FROM temp.{_TOK}")
            conn.executemany(
                f"INSERT INTO temp.{_TOK} (rowid, fact, name) VALUES (?, ?, '')", list(enumerate(missing))
            )
            found: dict[int, list[tuple[int, str]]] = {i: [] for i in range(len(missing))}
            for term, doc, offset in conn.execute(f"SELECT term, doc, offset FROM temp.{_TOK_V}"):
                found[doc].append((offset, term))
            conn.execute(f"DELETE FROM temp.{_TOK}")
            for i, w in enumerate(missing):
                self._tokens[w] = [t for _, t in sorted(found[i])]
        out: list[str] = []
        for w in words:
            toks = self._tokens[w]
            if len(toks) > 1:
                raise PhraseQuery(w)
            out.extend(toks)
        return out

    def drop(self, group_id: str) -> None:
        with self._lock:
            self._groups.pop(group_id, None)

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()
            self._tokens.clear()
