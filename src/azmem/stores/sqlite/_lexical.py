"""Each process's in-memory BM25 index, a mirror of the FTS5 index (which stays the durable one).

Why: FTS5 evaluates `bm25()` row by row (about 1 µs per matching row here) and must score
every row that matches any query word before it can sort, so an OR query over a 100k store
(7k-30k matching rows for ordinary questions) cost 7-40 ms, more with the scope join. The
same formula over posting arrays in numpy costs well under a millisecond, for every query
word (no word has to be dropped to bound the cost).

Exactness: tokens come from FTS5 itself, never from a Python re-implementation: the bulk
load reads the index through an `fts5vocab` "instance" table, and changed rows and query
words are tokenized by a private TEMP FTS5 table with the same tokenizer. The score is
FTS5's `bm25()` (k1 = 1.2, b = 0.75, IDF `log((N - n + 0.5) / (n + 0.5))` floored at 1e-6,
N, n and the average length over the whole table), evaluated in the same order, so the
values equal FTS5's (tested against it).

Kept in step by `IndexCache` from the same `changes` log as the vector mirror: inserts,
deletes, vector updates and (since migration 002) text updates are logged.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from azmem.stores.sqlite._schema import FTS_TOKENIZE
from azmem.stores.sqlite._scopes import ScopeCodes

K1 = 1.2
B = 0.75
_TOKEN_CACHE = 50_000  # query word -> tokens, per process

_TOK_TABLE = "azmem_tok"
_TOK_VOCAB = "azmem_tok_v"
_FTS_VOCAB = "azmem_fts_v"


class PhraseQuery(Exception):
    """A query word that FTS5 splits into several tokens (a phrase): the in-memory index only
    scores single tokens, so the caller falls back to FTS5 for this query."""


def _ensure_temp_tables(conn: sqlite3.Connection) -> None:
    # TEMP objects are private to this connection and never touch the store file.
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_TOK_TABLE} USING fts5(t, tokenize='{FTS_TOKENIZE}')"
    )
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_TOK_VOCAB} USING fts5vocab(temp, {_TOK_TABLE}, instance)"
    )


def tokenize(conn: sqlite3.Connection, texts: Sequence[tuple[int, str]]) -> dict[int, list[str]]:
    """FTS5's tokens of each (key, text), in order, through the store's own tokenizer."""
    _ensure_temp_tables(conn)
    conn.execute(f"DELETE FROM temp.{_TOK_TABLE}")  # in case an interrupted call left rows
    conn.executemany(f"INSERT INTO temp.{_TOK_TABLE} (rowid, t) VALUES (?, ?)", texts)
    out: dict[int, list[tuple[int, str]]] = {key: [] for key, _ in texts}
    for term, doc, offset in conn.execute(f"SELECT term, doc, offset FROM temp.{_TOK_VOCAB}"):
        if doc in out:
            out[doc].append((offset, term))
    conn.execute(f"DELETE FROM temp.{_TOK_TABLE}")
    return {key: [t for _, t in sorted(pairs)] for key, pairs in out.items()}


class LexicalIndex:
    """Postings (term -> slots, term frequencies) over document slots; a slot per live row
    version. Removed rows leave dead slots until the next compaction."""

    def __init__(self) -> None:
        self._vocab: dict[str, int] = {}
        self._df: list[int] = []  # live documents per term id
        self._post_slots: list[list[npt.NDArray[np.int32]]] = []  # per term: chunks
        self._post_tf: list[list[npt.NDArray[np.float64]]] = []
        self._slot_rid = np.empty(0, dtype=np.int64)
        self._slot_len = np.empty(0, dtype=np.float64)
        self._slot_alive = np.empty(0, dtype=np.bool_)
        self._slot_scope = np.empty((0, 3), dtype=np.int32)
        # Per slot: (term ids, term frequencies), or None for a bulk-loaded slot (kept as CSR).
        self._slot_terms: list[tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]] | None] = []
        self._bulk_ptr = np.zeros(1, dtype=np.int64)
        self._bulk_terms = np.empty(0, dtype=np.int32)
        self._bulk_tf = np.empty(0, dtype=np.float64)
        self._n_slots = 0
        self._rid_slot: dict[int, int] = {}
        self._total_tokens = 0
        self._scope_codes = ScopeCodes()
        self._token_cache: dict[str, list[str]] = {}

    def __len__(self) -> int:
        return len(self._rid_slot)

    # -- building ---------------------------------------------------------------------------
    def load_all(self, conn: sqlite3.Connection) -> None:
        """Every row, from FTS5's own index (no re-tokenizing): one row per term with its
        documents (one entry per occurrence), parsed in numpy. Call on an empty index."""
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_FTS_VOCAB} "
            "USING fts5vocab(main, memories_fts, instance)"
        )
        scopes = conn.execute("SELECT rid, user_id, agent_id, run_id FROM memories ORDER BY rid").fetchall()
        n = len(scopes)
        self._reserve(n)
        slot_rid = np.fromiter((r[0] for r in scopes), dtype=np.int64, count=n)
        self._slot_rid[:n] = slot_rid
        self._slot_alive[:n] = True
        for slot, (rid, user, agent, run) in enumerate(scopes):
            self._rid_slot[rid] = slot
            self._slot_scope[slot] = self._scope_codes.encode(user, agent, run)
        self._n_slots = n
        tid_parts: list[npt.NDArray[np.int32]] = []
        slot_parts: list[npt.NDArray[np.int32]] = []
        tf_parts: list[npt.NDArray[np.float64]] = []
        for term, docs_text in conn.execute(
            f"SELECT term, group_concat(doc, ' ') FROM temp.{_FTS_VOCAB} GROUP BY term"
        ):
            docs, counts = np.unique(np.fromstring(docs_text, dtype=np.int64, sep=" "), return_counts=True)
            slots = np.searchsorted(slot_rid, docs)
            known = slots < n
            known[known] = slot_rid[slots[known]] == docs[known]
            if not known.all():  # an index entry without a row (cannot happen with the triggers)
                slots, counts = slots[known], counts[known]
            if not slots.size:
                continue
            tid = self._vocab[term] = len(self._df)
            self._df.append(int(slots.size))
            slots32 = slots.astype(np.int32)
            tfs = counts.astype(np.float64)
            self._post_slots.append([slots32])
            self._post_tf.append([tfs])
            tid_parts.append(np.full(slots.size, tid, dtype=np.int32))
            slot_parts.append(slots32)
            tf_parts.append(tfs)
        if not slot_parts:
            self._bulk_ptr = np.zeros(n + 1, dtype=np.int64)
            self._slot_terms = [None] * n
            return
        all_slots = np.concatenate(slot_parts)
        all_tf = np.concatenate(tf_parts)
        order = np.argsort(all_slots, kind="stable")
        self._bulk_terms = np.concatenate(tid_parts)[order]
        self._bulk_tf = all_tf[order]
        self._bulk_ptr = np.concatenate(([0], np.cumsum(np.bincount(all_slots, minlength=n))))
        self._slot_len[:n] = np.bincount(all_slots, weights=all_tf, minlength=n)
        self._total_tokens = int(all_tf.sum())
        self._slot_terms = [None] * n

    def _terms_of(self, slot: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]:
        terms = self._slot_terms[slot]
        if terms is not None:
            return terms
        lo, hi = int(self._bulk_ptr[slot]), int(self._bulk_ptr[slot + 1])
        return self._bulk_terms[lo:hi], self._bulk_tf[lo:hi]

    def _reserve(self, need: int) -> None:
        if need > self._slot_rid.shape[0]:
            cap = max(1024, need, 2 * self._slot_rid.shape[0])
            self._slot_rid = np.resize(self._slot_rid, cap)
            self._slot_len = np.resize(self._slot_len, cap)
            self._slot_alive = np.resize(self._slot_alive, cap)
            self._slot_scope = np.resize(self._slot_scope, (cap, 3))

    def update(self, conn: sqlite3.Connection, rids: Sequence[int]) -> None:
        """Drop `rids`, then re-add those that still exist (tokenized by FTS5's tokenizer)."""
        for rid in rids:
            self._remove(rid)
        if not rids:
            return
        marks = ",".join("?" * len(rids))
        rows = conn.execute(
            f"SELECT rid, user_id, agent_id, run_id, memory FROM memories WHERE rid IN ({marks})", list(rids)
        ).fetchall()
        if not rows:
            return
        tokens = tokenize(conn, [(r[0], r[4]) for r in rows])
        docs: dict[int, dict[str, int]] = {}
        for rid, toks in tokens.items():
            counts: dict[str, int] = {}
            for t in toks:
                counts[t] = counts.get(t, 0) + 1
            docs[rid] = counts
        self._add_docs([r[:4] for r in rows], docs)
        self._maybe_compact()

    def _add_docs(
        self,
        scopes: Sequence[tuple[int, str | None, str | None, str | None]],
        docs: dict[int, dict[str, int]],
    ) -> None:
        self._reserve(self._n_slots + len(scopes))
        new_slots: dict[int, list[int]] = {}
        new_tf: dict[int, list[float]] = {}
        for rid, user, agent, run in scopes:
            slot = self._n_slots
            self._n_slots += 1
            counts = docs.get(rid, {})
            term_ids = np.empty(len(counts), dtype=np.int32)
            tfs = np.empty(len(counts), dtype=np.float64)
            length = 0
            for j, (term, tf) in enumerate(counts.items()):
                tid = self._vocab.get(term)
                if tid is None:
                    tid = self._vocab[term] = len(self._df)
                    self._df.append(0)
                    self._post_slots.append([])
                    self._post_tf.append([])
                self._df[tid] += 1
                term_ids[j] = tid
                tfs[j] = tf
                length += tf
                new_slots.setdefault(tid, []).append(slot)
                new_tf.setdefault(tid, []).append(float(tf))
            self._slot_rid[slot] = rid
            self._slot_len[slot] = length
            self._slot_alive[slot] = True
            self._slot_scope[slot] = self._scope_codes.encode(user, agent, run)
            self._slot_terms.append((term_ids, tfs))
            self._rid_slot[rid] = slot
            self._total_tokens += length
        for tid, slots in new_slots.items():
            self._post_slots[tid].append(np.asarray(slots, dtype=np.int32))
            self._post_tf[tid].append(np.asarray(new_tf[tid], dtype=np.float64))

    def _remove(self, rid: int) -> None:
        slot = self._rid_slot.pop(rid, None)
        if slot is None:
            return
        self._slot_alive[slot] = False
        term_ids, tfs = self._terms_of(slot)
        for tid in term_ids.tolist():
            self._df[tid] -= 1
        self._total_tokens -= int(tfs.sum())

    def _maybe_compact(self) -> None:
        dead = self._n_slots - len(self._rid_slot)
        if dead <= max(1024, len(self._rid_slot)):
            return
        # Rebuild postings over the live slots only (renumbered in order).
        live = np.flatnonzero(self._slot_alive[: self._n_slots])
        old_terms = [self._terms_of(s) for s in live.tolist()]
        self._slot_rid = self._slot_rid[live].copy()
        self._slot_len = self._slot_len[live].copy()
        self._slot_alive = np.ones(live.size, dtype=np.bool_)
        self._slot_scope = self._slot_scope[live].copy()
        slot_terms = old_terms
        self._slot_terms = list(old_terms)
        self._n_slots = int(live.size)
        self._rid_slot = {int(r): i for i, r in enumerate(self._slot_rid.tolist())}
        self._post_slots = [[] for _ in self._df]
        self._post_tf = [[] for _ in self._df]
        if not slot_terms:
            return
        all_terms = np.concatenate([t for t, _ in slot_terms])
        all_tf = np.concatenate([f for _, f in slot_terms])
        all_slots = np.repeat(np.arange(self._n_slots, dtype=np.int32), [t.size for t, _ in slot_terms])
        order = np.argsort(all_terms, kind="stable")
        all_terms, all_tf, all_slots = all_terms[order], all_tf[order], all_slots[order]
        bounds = np.flatnonzero(np.diff(all_terms)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [all_terms.size]))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            tid = int(all_terms[s])
            self._post_slots[tid] = [all_slots[s:e]]
            self._post_tf[tid] = [all_tf[s:e]]

    # -- querying -------------------------------------------------------------------------------
    def query_tokens(self, conn: sqlite3.Connection, words: Sequence[str]) -> list[str]:
        """FTS5's token for each query word (words without a token are skipped).
        Raises PhraseQuery if a word is several tokens (FTS5 would match it as a phrase)."""
        missing = [w for w in words if w not in self._token_cache]
        if missing:
            if len(self._token_cache) + len(missing) > _TOKEN_CACHE:
                self._token_cache.clear()
            found = tokenize(conn, list(enumerate(missing)))
            for i, w in enumerate(missing):
                self._token_cache[w] = found[i]
        out: list[str] = []
        for w in words:
            toks = self._token_cache[w]
            if len(toks) > 1:
                raise PhraseQuery(w)
            out.extend(toks)
        return out

    def _postings(self, tid: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]:
        chunks, tfs = self._post_slots[tid], self._post_tf[tid]
        if len(chunks) > 1:  # merge appended chunks once
            chunks[:] = [np.concatenate(chunks)]
            tfs[:] = [np.concatenate(tfs)]
        if not chunks:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float64)
        return chunks[0], tfs[0]

    def scope_mask(
        self, user: str | None, agent: str | None, run: str | None
    ) -> npt.NDArray[np.bool_] | None:
        """Live slots in the scope (None: every live slot)."""
        mask: npt.NDArray[np.bool_] | None = None
        for column, code in self._scope_codes.wanted(user, agent, run):
            hit = (
                np.zeros(self._n_slots, dtype=np.bool_)
                if code is None
                else self._slot_scope[: self._n_slots, column] == code
            )
            mask = hit if mask is None else mask & hit
        return mask

    def score(self, tokens: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(slots, -bm25) of every live document matching any token, as FTS5 computes it for the
        OR of the tokens: summed per token in query order,
        idf tf (k1 + 1) / (tf + k1 (1 - b + b D / avgdl))."""
        n_rows = len(self._rid_slot)
        if not n_rows or not tokens:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        avgdl = self._total_tokens / n_rows
        parts_slots: list[npt.NDArray[np.int32]] = []
        parts_score: list[npt.NDArray[np.float64]] = []
        for token in tokens:
            tid = self._vocab.get(token)
            if tid is None or not self._df[tid]:
                continue
            slots, tf = self._postings(tid)
            n = self._df[tid]
            idf = math.log((n_rows - n + 0.5) / (n + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            d = self._slot_len[slots]
            parts_slots.append(slots)
            parts_score.append(idf * (tf * (K1 + 1.0)) / (tf + K1 * (1 - B + B * d / avgdl)))
        if not parts_slots:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        all_slots = np.concatenate(parts_slots)
        # bincount adds each slot's contributions in query-token order, as FTS5 does.
        sums = np.bincount(all_slots, weights=np.concatenate(parts_score), minlength=self._n_slots).astype(
            np.float64, copy=False
        )
        hit = np.zeros(self._n_slots, dtype=np.bool_)
        hit[all_slots] = True
        hit &= self._slot_alive[: self._n_slots]
        slots_out = np.flatnonzero(hit).astype(np.int64)
        return slots_out, sums[slots_out]

    def rids(self, slots: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        out: npt.NDArray[np.int64] = self._slot_rid[slots]
        return out

    def slot_of(self, rid: int) -> int | None:
        return self._rid_slot.get(rid)
