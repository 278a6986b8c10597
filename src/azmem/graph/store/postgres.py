"""The graph on PostgreSQL + pgvector: the ``azmem_graph_*`` tables in the memory store's database.

Connections, sign-in (passwords or Microsoft Entra ID tokens), retries and the mapping
of psycopg errors onto azmem's are the memory store's own (`azmem.stores.postgres`):
one behaviour for everything azmem keeps in a database.

Writes serialise per group on the group's version row: ``apply`` bumps it first (an
upsert, which locks it), so two writers of one group queue and the second sees that
the version it planned against is gone (`GraphConflictError`); different groups never
wait for each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import psycopg

from azmem.errors import EmbedderMismatchError, InvalidInputError, SchemaVersionError, StoreError
from azmem.graph.changes import Changes, EntityUpdate, NewEntity, NewFact, Vector
from azmem.graph.names import name_keys
from azmem.graph.results import DeleteEpisodeResult, GraphCounts, GraphErasure
from azmem.graph.store import postgres_schema as schema
from azmem.graph.store.postgres_reads import PostgresReads
from azmem.graph.store.postgres_vectors import EXACT_ROWS, VectorPlan, ensure_indexes, plan_for
from azmem.stores.postgres import server
from azmem.stores.postgres.connections import Conn, Connections, check_option, normalise_url
from azmem.stores.postgres.errors import Where, translate

__all__ = ["PostgresGraphStore"]

T = TypeVar("T")

_WORDS = f"to_tsvector('{schema.TEXT_CONFIG}', %s)"


class PostgresGraphStore(PostgresReads):
    """`GraphStore` on PostgreSQL. ``url`` is a libpq URL (``postgresql://...``)."""

    exact_rows: int = EXACT_ROWS
    """Rows passing a search's filters at or below which cosine is an exact scan, not HNSW
    (`postgres_vectors`); 0 sends every search through the index (tests)."""

    def __init__(
        self,
        url: str,
        *,
        read_only: bool = False,
        pool_size: int | None = None,
        password: Callable[[], str] | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        if not isinstance(url, str) or not url:
            raise InvalidInputError("the store URL must be a non-empty string")
        conninfo = normalise_url(url)
        self.where = Where.of(conninfo)
        self.url = self.where.url
        self.read_only = read_only
        self._embedder: tuple[str, int] | None = None
        self._vector_plan: VectorPlan | None = None
        self._conns = Connections(
            conninfo,
            self.where,
            read_only=read_only,
            pool_size=5
            if pool_size is None
            else check_option(pool_size, "pool_size", minimum=1, integer=True),
            password=password,
            timeout=check_option(timeout, "timeout", minimum=0.1),
            connect_timeout=check_option(connect_timeout, "connect_timeout", minimum=1),
            max_lifetime=1800.0,
            max_idle=600.0,
            prepare_threshold=5,
        )
        conn = self._conns.direct("open")
        try:
            info = server.inspect(conn, self.where)
            if read_only:
                if schema.pending(conn):
                    raise StoreError(
                        f"graph in {self.url} needs schema migrations that a read-only open cannot apply",
                        error_code="store_needs_migration",
                        suggestion="open it once read-write with this azmem version",
                    )
            else:
                schema.migrate(conn, lambda c: server.ensure_vector(c, info, self.where))
        except schema.SchemaTooNew as exc:
            raise SchemaVersionError(f"graph in {self.url} was written by a newer azmem: {exc}") from exc
        except psycopg.Error as exc:
            raise translate(exc, self.where, "open") from exc
        finally:
            conn.close()
        self._conns.start()

    def _run(self, action: str, fn: Callable[[Conn], T], *, write: bool = False) -> T:
        if self._conns.closed:
            raise self._conns.closed_error()
        if write and self.read_only:
            raise StoreError(
                f"graph in {self.url} is open read-only; cannot {action}", error_code="store_read_only"
            )
        return self._conns.run(action, fn, write=write)

    def close(self) -> None:
        self._conns.close()

    # -- embedder ----------------------------------------------------------------------
    def open(self, embedder_name: str, dimension: int) -> None:
        wanted = (embedder_name, int(dimension))

        def look(conn: Conn) -> tuple[tuple[str, int] | None, bool]:
            rows = dict(conn.execute("SELECT key, value FROM azmem_graph_meta").fetchall())
            empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM azmem_graph_entities)").fetchone()
            stored = (rows["embedder_name"], int(rows["dimension"])) if "embedder_name" in rows else None
            return stored, bool(empty and empty[0])

        stored, empty = self._run("open", look)
        if stored is not None and stored != wanted and not empty:
            raise EmbedderMismatchError(
                f"graph in {self.url} holds vectors from {stored[0]!r} (dimension {stored[1]}), "
                f"but is used with {wanted[0]!r} (dimension {wanted[1]})",
                suggestion="configure the embedder the graph was built with",
            )
        if not self.read_only:

            def record(conn: Conn) -> None:
                if stored != wanted:
                    for key, value in (("embedder_name", wanted[0]), ("dimension", str(wanted[1]))):
                        conn.execute(
                            "INSERT INTO azmem_graph_meta (key, value) VALUES (%s, %s) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            (key, value),
                        )
                # the HNSW indexes for this dimension (once: a look at pg_indexes when present)
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [schema.LOCK_KEY])
                ensure_indexes(conn, wanted[1])

            self._run("open", record, write=True)
        self._vector_plan = self._run(
            "open", lambda conn: plan_for(conn, wanted[1], exact_rows=self.exact_rows)
        )
        self._embedder = wanted

    def _plan(self) -> VectorPlan:
        if self._vector_plan is None:
            raise StoreError(
                "the graph store has no embedder bound", suggestion="call open(name, dimension) first"
            )
        return self._vector_plan

    def _dim(self) -> int:
        if self._embedder is None:
            raise StoreError(
                "the graph store has no embedder bound", suggestion="call open(name, dimension) first"
            )
        return self._embedder[1]

    def _vector(self, vector: Vector | None, dim: int) -> Any:
        arr = np.asarray(vector, dtype=np.float32).reshape(-1)
        if arr.shape[0] != dim:
            raise StoreError(f"vector of dimension {arr.shape[0]} given to a graph bound to dimension {dim}")
        return arr

    # -- writes ------------------------------------------------------------------------
    @staticmethod
    def _bump(conn: Conn, group_id: str) -> int:
        """The group's version before this write; the upsert locks its row until commit."""
        # A new row starts above ``version_floor`` (see `forget`); ``xmax = 0``: it was inserted.
        row = conn.execute(
            "INSERT INTO azmem_graph_groups AS g (group_id, version) VALUES (%s, 1 + coalesce("
            "(SELECT value::bigint FROM azmem_graph_meta WHERE key = 'version_floor'), 0)) "
            "ON CONFLICT (group_id) DO UPDATE SET version = g.version + 1 RETURNING version, xmax = 0",
            (group_id,),
        ).fetchone()
        assert row is not None
        return 0 if row[1] else int(row[0]) - 1

    def apply(self, changes: Changes) -> None:
        dim = self._dim()

        def write(conn: Conn) -> None:
            changes.check_version(self._bump(conn, changes.group_id))
            ep = changes.episode
            if ep is not None:
                conn.execute(
                    "INSERT INTO azmem_graph_episodes (id, group_id, name, source, source_description, "
                    "content, reference_time, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (ep.id, ep.group_id, ep.name, ep.source, ep.source_description, ep.content,
                     ep.reference_time, ep.created_at),
                )  # fmt: skip
            for new in changes.new_entities:
                self._insert_entity(conn, new, dim)
            for update in changes.entity_updates:
                self._update_entity(conn, update, dim)
            for fact in changes.new_facts:
                self._insert_fact(conn, fact, dim)
            for fact_id, episode_id in changes.confirmations:
                conn.execute(
                    "INSERT INTO azmem_graph_fact_episodes (fact_id, episode_id) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (fact_id, episode_id),
                )
            for i in changes.invalidations:
                conn.execute(
                    "UPDATE azmem_graph_facts SET invalid_at = %s, expired_at = %s, invalidated_by = %s "
                    "WHERE id = %s",
                    (i.invalid_at, i.expired_at, i.invalidated_by, i.fact_id),
                )
            if ep is not None:
                for entity_id in ep.entity_ids:
                    conn.execute(
                        "INSERT INTO azmem_graph_mentions (episode_id, entity_id) VALUES (%s, %s) "
                        "ON CONFLICT DO NOTHING",
                        (ep.id, entity_id),
                    )

        self._run("write", write, write=True)

    def _insert_entity(self, conn: Conn, new: NewEntity, dim: int) -> None:
        e = new.entity
        conn.execute(
            "INSERT INTO azmem_graph_entities (id, group_id, name, summary, labels, attributes, aliases, "
            f"created_at, embedding, lexemes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, {_WORDS})",
            (e.id, e.group_id, e.name, e.summary, e.labels, json.dumps(e.attributes), e.aliases, e.created_at,
             self._vector(new.vector, dim), " ".join([e.name, *e.aliases, e.summary])),
        )  # fmt: skip
        self._write_names(conn, e.group_id, e.id, name_keys(e.name, e.aliases))

    @staticmethod
    def _write_names(conn: Conn, group_id: str, entity_id: str, names: list[str]) -> None:
        conn.execute("DELETE FROM azmem_graph_entity_names WHERE entity_id = %s", (entity_id,))
        for norm in names:
            conn.execute(
                "INSERT INTO azmem_graph_entity_names (group_id, norm, entity_id) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (group_id, norm, entity_id),
            )

    def _update_entity(self, conn: Conn, up: EntityUpdate, dim: int) -> None:
        sets: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("name", up.name),
            ("summary", up.summary),
            ("labels", up.labels),
            ("attributes", None if up.attributes is None else json.dumps(up.attributes)),
            ("aliases", up.aliases),
            ("embedding", None if up.vector is None else self._vector(up.vector, dim)),
        ):
            if value is not None:
                sets.append(f"{column} = %s")
                params.append(value)
        if not sets:
            return
        row = conn.execute(
            f"UPDATE azmem_graph_entities SET {', '.join(sets)} WHERE id = %s "
            "RETURNING group_id, name, aliases, summary",
            (*params, up.id),
        ).fetchone()
        assert row is not None
        group_id, name, aliases, summary = row
        conn.execute(
            f"UPDATE azmem_graph_entities SET lexemes = {_WORDS} WHERE id = %s",
            (" ".join([name, *aliases, summary]), up.id),
        )
        self._write_names(conn, group_id, up.id, name_keys(name, aliases))

    def _insert_fact(self, conn: Conn, new: NewFact, dim: int) -> None:
        f = new.fact
        conn.execute(
            "INSERT INTO azmem_graph_facts (id, group_id, source_id, target_id, name, fact, attributes, "
            "valid_at, invalid_at, created_at, expired_at, invalidated_by, embedding, lexemes) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, {_WORDS})",
            (f.id, f.group_id, f.source_id, f.target_id, f.name, f.fact, json.dumps(f.attributes), f.valid_at,
             f.invalid_at, f.created_at, f.expired_at, f.invalidated_by, self._vector(new.vector, dim),
             f"{f.fact} {f.name.replace('_', ' ')}"),
        )  # fmt: skip
        for episode_id in f.episodes:
            conn.execute(
                "INSERT INTO azmem_graph_fact_episodes (fact_id, episode_id) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                (f.id, episode_id),
            )

    def delete_episode(self, episode_id: str) -> DeleteEpisodeResult | None:
        def delete(conn: Conn) -> DeleteEpisodeResult | None:
            row = conn.execute(
                "SELECT group_id FROM azmem_graph_episodes WHERE id = %s", (episode_id,)
            ).fetchone()
            if row is None:
                return None
            self._bump(conn, row[0])
            facts = [
                r[0]
                for r in conn.execute(
                    "SELECT fact_id FROM azmem_graph_fact_episodes WHERE episode_id = %s ORDER BY seq",
                    (episode_id,),
                )
            ]
            entities = [
                r[0]
                for r in conn.execute(
                    "SELECT entity_id FROM azmem_graph_mentions WHERE episode_id = %s ORDER BY seq",
                    (episode_id,),
                )
            ]
            conn.execute("DELETE FROM azmem_graph_episodes WHERE id = %s", (episode_id,))
            orphans = [
                r[0]
                for r in conn.execute(
                    "DELETE FROM azmem_graph_facts f WHERE f.id = ANY(%s) AND NOT EXISTS "
                    "(SELECT 1 FROM azmem_graph_fact_episodes fe WHERE fe.fact_id = f.id) RETURNING f.id",
                    (facts,),
                )
            ]
            restored = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM azmem_graph_facts WHERE invalidated_by = %s ORDER BY rid", (episode_id,)
                )
            ]
            conn.execute(
                "UPDATE azmem_graph_facts SET invalid_at = NULL, expired_at = NULL, invalidated_by = NULL "
                "WHERE invalidated_by = %s",
                (episode_id,),
            )
            gone = [
                r[0]
                for r in conn.execute(
                    "DELETE FROM azmem_graph_entities e WHERE e.id = ANY(%s) "
                    "AND NOT EXISTS (SELECT 1 FROM azmem_graph_mentions m WHERE m.entity_id = e.id) "
                    "AND NOT EXISTS (SELECT 1 FROM azmem_graph_facts f "
                    "WHERE f.source_id = e.id OR f.target_id = e.id) "
                    "RETURNING e.id",
                    (entities,),
                )
            ]
            return DeleteEpisodeResult(
                episode_id=episode_id,
                facts_deleted=[f for f in facts if f in orphans],
                entities_deleted=[e for e in entities if e in gone],
                facts_restored=restored,
            )  # fmt: skip

        return self._run("delete episode", delete, write=True)

    def delete_fact(self, fact_id: str) -> bool:
        def delete(conn: Conn) -> bool:
            row = conn.execute("SELECT group_id FROM azmem_graph_facts WHERE id = %s", (fact_id,)).fetchone()
            if row is None:
                return False
            self._bump(conn, row[0])
            conn.execute("DELETE FROM azmem_graph_facts WHERE id = %s", (fact_id,))
            return True

        return self._run("delete fact", delete, write=True)

    def clear(self, group_id: str) -> GraphCounts:
        def clear(conn: Conn) -> GraphCounts:
            self._bump(conn, group_id)
            return self._delete_group(conn, group_id)

        return self._run("clear", clear, write=True)

    def _delete_group(self, conn: Conn, group_id: str) -> GraphCounts:
        """Delete a group's facts, entities and episodes; returns how many there were."""
        counts = self._counts(conn, [group_id])
        for table in ("azmem_graph_facts", "azmem_graph_entities", "azmem_graph_episodes"):
            conn.execute(f"DELETE FROM {table} WHERE group_id = %s", (group_id,))
        return counts

    def forget(self, group_id: str, *, compact: bool = True) -> GraphErasure:
        """`clear`, for good: the version row goes too (its id is the user's), and ``version_floor``
        keeps the group's next version above the forgotten one; ``compact`` VACUUMs the tables
        that held the rows, as the memory store's `forget` does (see docs/compliance.md for
        what stays in WAL and backups)."""

        def erase(conn: Conn) -> GraphCounts:
            row = conn.execute(
                "SELECT version FROM azmem_graph_groups WHERE group_id = %s FOR UPDATE", (group_id,)
            ).fetchone()
            counts = self._delete_group(conn, group_id)
            if row is not None:
                conn.execute(
                    "INSERT INTO azmem_graph_meta AS m (key, value) VALUES ('version_floor', %s) "
                    "ON CONFLICT (key) DO UPDATE "
                    "SET value = greatest(m.value::bigint, excluded.value::bigint)::text",
                    (str(int(row[0]) + 1),),
                )
                conn.execute("DELETE FROM azmem_graph_groups WHERE group_id = %s", (group_id,))
            return counts

        counts = self._run("forget", erase, write=True)
        clean = False
        if compact:
            conn = self._conns.direct("compact")
            try:
                conn.execute(
                    "VACUUM azmem_graph_facts, azmem_graph_entities, azmem_graph_episodes, "
                    "azmem_graph_entity_names, azmem_graph_fact_episodes, azmem_graph_mentions, "
                    "azmem_graph_groups"
                )
                clean = True
            except psycopg.Error:
                clean = False
            finally:
                conn.close()
        return GraphErasure(**counts.model_dump(), compacted=clean)
