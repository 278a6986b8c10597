"""The embedded graph store: the ``graph_*`` tables in the memory store's SQLite file.

One file holds memories and graph (one backup, one ``AZMEM_STORE``). This module holds
the embedder binding and the writes, each one ``BEGIN IMMEDIATE`` transaction with the
FTS5 tables kept by triggers inside it; the file and connection are
`sqlite_connection.py`'s, the reads `sqlite_reads.py`'s.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import numpy as np

from azmem.errors import EmbedderMismatchError, StoreError
from azmem.graph.changes import Changes, EntityUpdate, NewEntity, NewFact
from azmem.graph.names import name_keys
from azmem.graph.results import DeleteEpisodeResult, GraphCounts, GraphErasure
from azmem.graph.store.rows import format_time
from azmem.graph.store.sqlite_connection import SQLiteConnection
from azmem.graph.store.sqlite_reads import SQLiteReads
from azmem.stores.sqlite.audit import compact as compact_file

__all__ = ["SQLiteGraphStore"]


def _t(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def _blob(vector: object, dim: int) -> bytes:
    arr = np.asarray(vector, dtype=np.float32).reshape(-1)
    if arr.shape[0] != dim:
        raise StoreError(f"vector of dimension {arr.shape[0]} given to a graph bound to dimension {dim}")
    return arr.tobytes()


class SQLiteGraphStore(SQLiteConnection, SQLiteReads):
    """`GraphStore` on a SQLite file (``":memory:"`` for throwaway use)."""

    def open(self, embedder_name: str, dimension: int) -> None:
        wanted = (embedder_name, int(dimension))
        with self._read("open") as conn:
            stored = self._stored_embedder(conn)
            empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM graph_entities)").fetchone()[0]
        if stored is not None and stored != wanted and not empty:
            raise EmbedderMismatchError(
                f"graph in {self.path} holds vectors from {stored[0]!r} (dimension {stored[1]}), "
                f"but is used with {wanted[0]!r} (dimension {wanted[1]})",
                suggestion="configure the embedder the graph was built with",
            )
        if stored != wanted and not self.read_only:
            with self._guard("open") as conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO graph_meta (key, value) VALUES (?, ?)",
                    [("embedder_name", wanted[0]), ("dimension", str(wanted[1]))],
                )
        self._embedder = wanted

    @staticmethod
    def _stored_embedder(conn: sqlite3.Connection) -> tuple[str, int] | None:
        rows = dict(
            conn.execute("SELECT key, value FROM graph_meta WHERE key IN ('embedder_name', 'dimension')")
        )
        return (rows["embedder_name"], int(rows["dimension"])) if "embedder_name" in rows else None

    def _dim(self) -> int:
        if self._embedder is None:
            raise StoreError(
                "the graph store has no embedder bound", suggestion="call open(name, dimension) first"
            )
        return self._embedder[1]

    # -- writes ------------------------------------------------------------------------
    def apply(self, changes: Changes) -> None:
        dim = self._dim()
        with self._write("write", changes.group_id) as conn:
            row = conn.execute(
                "SELECT version FROM graph_groups WHERE group_id = ?", (changes.group_id,)
            ).fetchone()
            changes.check_version(row[0] if row else 0)
            ep = changes.episode
            if ep is not None:
                conn.execute(
                    "INSERT INTO graph_episodes (id, group_id, name, source, source_description, content, "
                    "reference_time, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ep.id,
                        ep.group_id,
                        ep.name,
                        ep.source,
                        ep.source_description,
                        ep.content,
                        format_time(ep.reference_time),
                        format_time(ep.created_at),
                    ),
                )
            for new in changes.new_entities:
                self._insert_entity(conn, new, dim)
            for update in changes.entity_updates:
                self._update_entity(conn, update, dim)
            for fact in changes.new_facts:
                self._insert_fact(conn, fact, dim)
            conn.executemany(
                "INSERT OR IGNORE INTO graph_fact_episodes (fact_id, episode_id) VALUES (?, ?)",
                changes.confirmations,
            )
            conn.executemany(
                "UPDATE graph_facts SET invalid_at = ?, expired_at = ?, invalidated_by = ? WHERE id = ?",
                [
                    (format_time(i.invalid_at), format_time(i.expired_at), i.invalidated_by, i.fact_id)
                    for i in changes.invalidations
                ],
            )
            if ep is not None:
                conn.executemany(
                    "INSERT OR IGNORE INTO graph_mentions (episode_id, entity_id) VALUES (?, ?)",
                    [(ep.id, entity_id) for entity_id in ep.entity_ids],
                )

    @staticmethod
    def _insert_entity(conn: sqlite3.Connection, new: NewEntity, dim: int) -> None:
        e = new.entity
        conn.execute(
            "INSERT INTO graph_entities (id, group_id, name, summary, labels, attributes, aliases, "
            "created_at, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.id,
                e.group_id,
                e.name,
                e.summary,
                json.dumps(e.labels),
                json.dumps(e.attributes),
                json.dumps(e.aliases),
                format_time(e.created_at),
                _blob(new.vector, dim),
            ),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO graph_entity_names (group_id, norm, entity_id) VALUES (?, ?, ?)",
            [(e.group_id, n, e.id) for n in name_keys(e.name, e.aliases)],
        )

    @staticmethod
    def _update_entity(conn: sqlite3.Connection, up: EntityUpdate, dim: int) -> None:
        sets: list[str] = []
        params: list[object] = []
        for column, value in (
            ("name", up.name),
            ("summary", up.summary),
            ("labels", None if up.labels is None else json.dumps(up.labels)),
            ("attributes", None if up.attributes is None else json.dumps(up.attributes)),
            ("aliases", None if up.aliases is None else json.dumps(up.aliases)),
            ("vector", None if up.vector is None else _blob(up.vector, dim)),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if not sets:
            return
        conn.execute(f"UPDATE graph_entities SET {', '.join(sets)} WHERE id = ?", (*params, up.id))
        if up.name is not None or up.aliases is not None:
            group_id, name, aliases = conn.execute(
                "SELECT group_id, name, aliases FROM graph_entities WHERE id = ?", (up.id,)
            ).fetchone()
            conn.execute("DELETE FROM graph_entity_names WHERE entity_id = ?", (up.id,))
            conn.executemany(
                "INSERT OR IGNORE INTO graph_entity_names (group_id, norm, entity_id) VALUES (?, ?, ?)",
                [(group_id, n, up.id) for n in name_keys(name, json.loads(aliases))],
            )

    @staticmethod
    def _insert_fact(conn: sqlite3.Connection, new: NewFact, dim: int) -> None:
        f = new.fact
        conn.execute(
            "INSERT INTO graph_facts (id, group_id, source_id, target_id, name, fact, attributes, valid_at, "
            "invalid_at, created_at, expired_at, invalidated_by, vector) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f.id,
                f.group_id,
                f.source_id,
                f.target_id,
                f.name,
                f.fact,
                json.dumps(f.attributes),
                _t(f.valid_at),
                _t(f.invalid_at),
                format_time(f.created_at),
                _t(f.expired_at),
                f.invalidated_by,
                _blob(new.vector, dim),
            ),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO graph_fact_episodes (fact_id, episode_id) VALUES (?, ?)",
            [(f.id, episode_id) for episode_id in f.episodes],
        )

    def delete_episode(self, episode_id: str) -> DeleteEpisodeResult | None:
        with self._read("read") as conn:
            row = conn.execute("SELECT group_id FROM graph_episodes WHERE id = ?", (episode_id,)).fetchone()
        if row is None:
            return None
        with self._write("delete episode", row[0]) as conn:
            facts = [
                r[0]
                for r in conn.execute(
                    "SELECT fact_id FROM graph_fact_episodes WHERE episode_id = ? ORDER BY seq", (episode_id,)
                )
            ]
            entities = [
                r[0]
                for r in conn.execute(
                    "SELECT entity_id FROM graph_mentions WHERE episode_id = ? ORDER BY seq", (episode_id,)
                )
            ]
            conn.execute("DELETE FROM graph_episodes WHERE id = ?", (episode_id,))  # cascades links
            orphans = [
                f
                for f in facts
                if not conn.execute("SELECT 1 FROM graph_fact_episodes WHERE fact_id = ?", (f,)).fetchone()
            ]
            conn.executemany("DELETE FROM graph_facts WHERE id = ?", [(f,) for f in orphans])
            restored = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM graph_facts WHERE invalidated_by = ? ORDER BY rid", (episode_id,)
                )
            ]
            conn.execute(
                "UPDATE graph_facts SET invalid_at = NULL, expired_at = NULL, invalidated_by = NULL "
                "WHERE invalidated_by = ?",
                (episode_id,),
            )
            gone = [
                e
                for e in entities
                if not conn.execute(
                    "SELECT 1 FROM graph_mentions WHERE entity_id = ? UNION ALL "
                    "SELECT 1 FROM graph_facts WHERE source_id = ? OR target_id = ? LIMIT 1",
                    (e, e, e),
                ).fetchone()
            ]
            conn.executemany("DELETE FROM graph_entities WHERE id = ?", [(e,) for e in gone])
        return DeleteEpisodeResult(
            episode_id=episode_id, facts_deleted=orphans, entities_deleted=gone, facts_restored=restored
        )

    def delete_fact(self, fact_id: str) -> bool:
        with self._read("read") as conn:
            row = conn.execute("SELECT group_id FROM graph_facts WHERE id = ?", (fact_id,)).fetchone()
        if row is None:
            return False
        with self._write("delete fact", row[0]) as conn:
            conn.execute("DELETE FROM graph_facts WHERE id = ?", (fact_id,))
        return True

    def clear(self, group_id: str) -> GraphCounts:
        with self._write("clear", group_id) as conn:
            return self._delete_group(conn, group_id)

    def _delete_group(self, conn: sqlite3.Connection, group_id: str) -> GraphCounts:
        """Delete a group's facts, entities and episodes; returns how many there were."""
        counts = self._counts(conn, [group_id])
        for table in ("graph_facts", "graph_entities", "graph_episodes"):
            conn.execute(f"DELETE FROM {table} WHERE group_id = ?", (group_id,))
        return counts

    def forget(self, group_id: str, *, compact: bool = True) -> GraphErasure:
        """`clear`, for good: freed cells zeroed (``secure_delete``), both FTS5 indexes merged
        into fresh segments (a deletion only adds tombstones; the old segments would keep the
        words), the version row gone; then, with ``compact``, checkpoint + VACUUM (the memory
        store's `compact`), so no page of the file or the WAL keeps the group's text."""
        with self._guard("forget") as conn:
            conn.execute("PRAGMA secure_delete = ON")
            try:
                with self._write("forget", group_id, bump=False) as conn:
                    counts = self._delete_group(conn, group_id)
                    conn.execute(
                        "INSERT INTO graph_meta (key, value) "
                        "SELECT 'version_floor', CAST(version + 1 AS TEXT) FROM graph_groups "
                        "WHERE group_id = ? ON CONFLICT (key) DO UPDATE SET value = "
                        "CAST(max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
                        (group_id,),
                    )
                    conn.execute("DELETE FROM graph_groups WHERE group_id = ?", (group_id,))
                    for fts in ("graph_facts_fts", "graph_entities_fts"):
                        conn.execute(f"INSERT INTO {fts} ({fts}) VALUES ('optimize')")
            finally:
                if self._conn is not None:
                    self._conn.execute("PRAGMA secure_delete = OFF")
            self._cache.drop(group_id)
            self._lexical.clear()  # also the query words it remembers
            clean = compact_file(conn) if compact else False
        return GraphErasure(**counts.model_dump(), compacted=clean)
