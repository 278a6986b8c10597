"""What only PostgresStore has, on the session's real PostgreSQL 18 + pgvector server (tests/pg_server.py):
migrations (from an empty database, from the previous version, two processes at once, a newer
schema), several writer processes, the server killed mid-batch or down before a call, credentials
(bad password, a `password` callable called for each new connection), read-only opens, pgvector
missing, the HNSW path's recall, describe(). No mocks: every failure is a real one."""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

if os.environ.get("AZMEM_REQUIRE_POSTGRES"):
    import psycopg
else:
    psycopg = pytest.importorskip("psycopg")

from psycopg import sql

from azmem.errors import (
    EmbedderMismatchError,
    SchemaVersionError,
    StoreAuthError,
    StoreError,
    StoreUnavailableError,
)
from azmem.stores import AddOp, DeleteOp, MemoryRecord, Scope, UpdateOp, open_store
from azmem.stores.postgres import PostgresStore, schema
from azmem.stores.postgres import rows as codec

from .pg_worker import open_and_add
from .store_helpers import DIM, EMBEDDER, add, fake_embed

if TYPE_CHECKING:
    from pg_server import PostgresServer

KNOWN = [name for name, _ in schema.MIGRATIONS]


def _dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    with PostgresStore(pg_url) as s:
        s.open(EMBEDDER, DIM)
        yield s


def _admin(url: str) -> Any:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture
def role(pg_server: PostgresServer, pg_url: str) -> Iterator[str]:
    """A login role (password "first") that may create tables in this test's database."""
    name = f"r_{uuid.uuid4().hex[:10]}"
    with _admin(pg_url) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'first'").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(_dbname(pg_url)), sql.Identifier(name)
            )
        )
        admin.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(sql.Identifier(name)))
    yield name
    if not pg_server.running:
        pg_server.restart()
    with _admin(pg_url) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name])
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


# -- migrations ------------------------------------------------------------------------------------


def test_fresh_database_is_migrated_once(pg_url: str) -> None:
    with PostgresStore(pg_url) as s:
        info = s.describe()
    assert info["migrations_applied"] == KNOWN
    assert info["migrations_pending"] == []
    with _admin(pg_url) as admin:
        first = admin.execute("SELECT name, applied_at FROM azmem_migrations ORDER BY name").fetchall()
    PostgresStore(pg_url).close()  # a second open applies nothing
    with _admin(pg_url) as admin:
        assert (
            admin.execute("SELECT name, applied_at FROM azmem_migrations ORDER BY name").fetchall() == first
        )
        meta = dict(admin.execute("SELECT key, value FROM azmem_meta").fetchall())
    assert [name for name, _ in first] == KNOWN
    assert meta["schema_version"] == str(len(KNOWN))


def _old_rows(conn: Any, texts: list[str]) -> list[str]:
    """Memories and their ADD events as the azmem with only migration 001 wrote them."""
    ids = []
    for text in texts:
        mid = str(uuid.uuid4())
        literal, count = codec.document(text)
        conn.execute(
            "INSERT INTO azmem_memories (id, memory, hash, user_id, metadata, created_at, updated_at, "
            "lexemes, doc_len) VALUES (%s, %s, %s, 'old', '{}', now(), now(), %s::tsvector, %s)",
            [mid, text, "h", literal, count],
        )
        conn.execute(
            "INSERT INTO azmem_history (id, memory_id, event, new_memory, created_at) "
            "VALUES (%s, %s, 'ADD', %s, now())",
            [str(uuid.uuid4()), mid, text],
        )
        ids.append(mid)
    return ids


def test_migrates_from_the_previous_schema_version(pg_url: str) -> None:
    texts = ["the walrus sleeps on the ice", "penguins swim fast", "a walrus and a seal"]
    with _admin(pg_url) as conn:
        assert schema.migrate(conn, lambda c: None, upto=1) == ["001_initial"]
        ids = _old_rows(conn, texts)
    with PostgresStore(pg_url, read_only=True) as old:  # read-only: says so, migrates nothing
        assert old.describe()["migrations_pending"] == KNOWN[1:]
        with pytest.raises(StoreError) as err:
            old.count()
        assert err.value.error_code == "store_needs_migration"
    with PostgresStore(pg_url) as s:
        assert s.describe()["migrations_applied"] == KNOWN
        assert s.check() == []  # 002's BM25 statistics were computed from the existing rows
        hits = s.search("walrus", None, Scope(), mode="bm25")
        assert {h.record.id for h in hits} == {ids[0], ids[2]}
        # The rows predate any embedder: give them vectors, then use the store as usual.
        s.replace_vectors(EMBEDDER, DIM, ((r.id, fake_embed(r.memory)) for b in s.iter_all() for r in b))
        s.open(EMBEDDER, DIM)
        new = add(s, "a walrus calf", user_id="old")
        top = s.search("walrus calf", fake_embed("a walrus calf"), Scope(user_id="old"))[0]
        assert top.record.id == new.id
        assert s.check() == []


def test_newer_schema_is_refused(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with _admin(pg_url) as admin:
        admin.execute("INSERT INTO azmem_migrations VALUES ('999_from_the_future', now())")
    for read_only in (False, True):
        with pytest.raises(SchemaVersionError, match="999_from_the_future") as err:
            PostgresStore(pg_url, read_only=read_only)
        assert "upgrade azmem" in (err.value.suggestion or "")


def _spawn(target: Any, args_list: list[tuple[Any, ...]]) -> list[int | None]:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    return [p.exitcode for p in procs]


def test_two_processes_open_a_fresh_database_together(pg_url: str) -> None:
    barrier = multiprocessing.get_context("spawn").Barrier(2)
    codes = _spawn(open_and_add, [(pg_url, name, 5, barrier) for name in ("ann", "ben")])
    assert codes == [0, 0]
    with _admin(pg_url) as admin:
        assert [r[0] for r in admin.execute("SELECT name FROM azmem_migrations ORDER BY name")] == KNOWN
    with PostgresStore(pg_url) as s:
        assert s.count() == 10
        assert s.embedder == (EMBEDDER, DIM)


def test_writer_processes_lose_nothing(pg_url: str) -> None:
    with PostgresStore(pg_url) as s:
        s.open(EMBEDDER, DIM)
    names = ["ann", "ben", "cat", "dan"]
    barrier = multiprocessing.get_context("spawn").Barrier(len(names))
    codes = _spawn(open_and_add, [(pg_url, name, 40, barrier) for name in names])
    assert codes == [0] * len(names)
    with PostgresStore(pg_url) as s:
        s.open(EMBEDDER, DIM)
        assert s.count() == 40 * len(names)
        assert all(s.count(Scope(user_id=n)) == 40 for n in names)
        assert s.check() == []  # history, words, vectors and BM25 statistics all add up
        hit = s.search("tokencat7", fake_embed("cat item 7 tokencat7"), Scope(), limit=1)[0]
        assert hit.record.memory == "cat item 7 tokencat7"


# -- the server goes away ----------------------------------------------------------------------------


def _wait_for_insert(pg_url: str, timeout: float = 20.0) -> None:
    """Until a backend of this database is running the batch's INSERT (inside its transaction)."""
    deadline = time.monotonic() + timeout
    with _admin(pg_url) as admin:
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND xact_start IS NOT NULL "
                "AND query LIKE 'INSERT INTO azmem_memories%%' AND pid <> pg_backend_pid()",
                [_dbname(pg_url)],
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.005)
    raise AssertionError("the batch never started")


def _assert_names_server(err: StoreError, pg_server: PostgresServer) -> None:
    assert f"127.0.0.1:{pg_server.port}" in err.message
    assert pg_server.superuser_password not in str(err)
    assert pg_server.superuser_password not in repr(err.details)
    assert err.suggestion


def test_server_killed_mid_batch(pg_server: PostgresServer, pg_url: str) -> None:
    s = PostgresStore(pg_url)
    s.open(EMBEDDER, 8)
    rng = np.random.default_rng(1)
    keep = MemoryRecord.new("kept before the crash", Scope(user_id="alice"))
    s.apply([AddOp(keep, rng.standard_normal(8))])
    bulk = [
        AddOp(MemoryRecord.new(f"bulk memory {i}", Scope(user_id="bulk")), rng.standard_normal(8))
        for i in range(20_000)
    ]
    outcome: dict[str, BaseException] = {}

    def write() -> None:
        try:
            s.apply(bulk)
        except BaseException as exc:
            outcome["error"] = exc

    writer = threading.Thread(target=write)
    writer.start()
    _wait_for_insert(pg_url)
    pg_server.kill()
    writer.join(60)
    err = outcome.get("error")
    assert isinstance(err, StoreUnavailableError), err
    assert err.retryable
    assert err.code == "store_unavailable"
    _assert_names_server(err, pg_server)
    pg_server.restart()
    # The same store object works again, and nothing of the batch was written.
    assert s.count() == 1
    assert s.count(Scope(user_id="bulk")) == 0
    assert s.check() == []
    s.apply(
        [DeleteOp(keep.id), AddOp(MemoryRecord.new("after the crash", Scope(user_id="alice")), np.ones(8))]
    )
    assert [r.memory for r in s.list(Scope()).records] == ["after the crash"]
    s.close()


def test_server_down_before_a_call_then_back(pg_server: PostgresServer, store: PostgresStore) -> None:
    rec = add(store, "survives the restart")
    pg_server.kill()
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as read_err:
        store.count()
    with pytest.raises(StoreUnavailableError) as write_err:
        add(store, "refused while down")
    with pytest.raises(StoreUnavailableError):
        store.search("restart", fake_embed("restart"), Scope())
    assert time.monotonic() - started < 10  # typed errors at once, not a pool timeout
    _assert_names_server(read_err.value, pg_server)
    _assert_names_server(write_err.value, pg_server)
    pg_server.restart()
    assert store.get(rec.id) == rec
    add(store, "written after the restart")
    assert store.count() == 2


def test_stale_connections_after_a_clean_restart_are_replaced(
    pg_server: PostgresServer, store: PostgresStore
) -> None:
    add(store, "before")
    pg_server.restart()  # the pool's idle connections are now dead; the store has not noticed
    assert store.count() == 1  # the read is retried on a fresh connection
    add(store, "after")  # the write failed before its commit was sent: retried once
    assert store.count() == 2


def test_admin_terminating_sessions_is_retried_for_reads(pg_url: str, store: PostgresStore) -> None:
    add(store, "one")
    with _admin(pg_url) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [_dbname(pg_url)],
        )
    assert store.count() == 1
    assert [h.record.memory for h in store.search("one", fake_embed("one"), Scope())] == ["one"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_and_missing_database(pg_server: PostgresServer) -> None:
    port = _free_port()
    with pytest.raises(StoreUnavailableError) as err:
        PostgresStore(f"postgresql://postgres:sekrit-pw@127.0.0.1:{port}/db", connect_timeout=2)
    assert f"127.0.0.1:{port}" in err.value.message
    assert "sekrit-pw" not in str(err.value)
    assert f"-p {port}" in (err.value.suggestion or "")
    dsn = f"host=127.0.0.1 port={port} user=postgres password=sekrit-pw dbname=db connect_timeout=2"
    with pytest.raises(StoreUnavailableError) as dsn_err:  # a key=value DSN is never echoed either
        PostgresStore(dsn)
    assert "sekrit-pw" not in str(dsn_err.value)
    assert "sekrit-pw" not in repr(dsn_err.value.details)
    assert f"127.0.0.1:{port}" in dsn_err.value.message
    with pytest.raises(StoreError) as missing:
        PostgresStore(pg_server.url("no_such_database_here"))
    assert missing.value.error_code == "store_not_found"


# -- credentials -------------------------------------------------------------------------------------


def test_bad_password_is_a_store_auth_error(pg_server: PostgresServer, pg_url: str) -> None:
    bad = pg_server.url(_dbname(pg_url), password="not-the-password")
    with pytest.raises(StoreAuthError) as err:
        PostgresStore(bad)
    assert "not-the-password" not in str(err.value)
    assert "'postgres'" in err.value.message
    assert err.value.code == "store_auth_failed"
    with pytest.raises(StoreAuthError):
        open_store(pg_server.url(_dbname(pg_url), user="postgres"), password=lambda: "wrong-again")

    def broken() -> str:
        raise RuntimeError("no token for you")

    with pytest.raises(StoreAuthError, match="no token for you") as token_err:
        PostgresStore(pg_server.url(_dbname(pg_url), user="postgres"), password=broken)
    assert "Entra" in (token_err.value.suggestion or "")


def test_password_callable_is_called_for_new_connections(
    pg_server: PostgresServer, pg_url: str, role: str
) -> None:
    current = ["first"]
    given: list[str] = []

    def provider() -> str:  # what an Entra ID token provider does: a fresh secret per connection
        given.append(current[0])
        return current[0]

    url = pg_server.url(_dbname(pg_url), user=role)  # no password in the URL
    with PostgresStore(url, password=provider, pool_size=2, max_lifetime=1) as s:
        s.open(EMBEDDER, DIM)
        add(s, "written with the first password")
        assert given
        assert set(given) == {"first"}
        with _admin(pg_url) as admin:  # rotate, as a new token would
            admin.execute(sql.SQL("ALTER ROLE {} PASSWORD 'second'").format(sql.Identifier(role)))
        current[0] = "second"
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg_server.url(_dbname(pg_url), user=role, password="first")).close()
        # Sessions opened with the old password end (a restart, an idle timeout, an admin):
        with _admin(pg_url) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
        assert s.count() == 1  # retried on a new connection, which asked the provider again
        assert given[-1] == "second"
        # Connections are also recycled after max_lifetime, each new one with a new password.
        seen = len(given)
        deadline = time.monotonic() + 10
        while len(given) == seen and time.monotonic() < deadline:
            time.sleep(0.3)
            assert s.count() == 1
        assert len(given) > seen
        assert set(given[seen:]) == {"second"}
        add(s, "written with the second password")


# -- read-only -----------------------------------------------------------------------------------------


def test_read_only_reads_and_refuses_every_write(pg_url: str) -> None:
    with PostgresStore(pg_url) as rw:
        rw.open(EMBEDDER, DIM)
        recs = [add(rw, t) for t in ("tea in the morning", "coffee at night", "green tea")]
    with PostgresStore(pg_url, read_only=True) as ro:
        ro.open(EMBEDDER, DIM)
        assert ro.count() == 3
        top = ro.search("tea", fake_embed("tea"), Scope(), limit=2)[0]
        assert top.record.memory in {"tea in the morning", "green tea"}
        writes = [
            lambda: add(ro, "nope"),
            lambda: ro.apply([UpdateOp(recs[0].id, metadata={"x": 1})]),
            lambda: ro.delete_all(Scope(user_id="alice")),
            lambda: ro.reset(),
            lambda: ro.replace_vectors("other", 8, []),
            lambda: ro.import_history([]),
        ]
        for write in writes:
            with pytest.raises(StoreError) as err:
                write()
            assert err.value.error_code == "store_read_only"
        with pytest.raises(EmbedderMismatchError):
            ro.open("other", 8)  # a read-only store of other vectors cannot adopt a new embedder
        assert ro.count() == 3


def test_read_only_open_of_an_empty_database_creates_nothing(pg_url: str) -> None:
    with PostgresStore(pg_url, read_only=True) as ro:
        info = ro.describe()
        assert info["migrations_applied"] == []
        assert info["migrations_pending"] == KNOWN
        assert ro.embedder is None
        with pytest.raises(StoreError) as err:
            ro.count()
        assert err.value.error_code == "store_not_found"
    with _admin(pg_url) as admin:
        assert admin.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'azmem%%'").fetchone() == (
            0,
        )


def test_missing_pgvector_and_no_right_to_create_it(pg_server: PostgresServer) -> None:
    name = f"t_novector_{uuid.uuid4().hex[:8]}"
    owner = f"r_{uuid.uuid4().hex[:10]}"
    with pg_server.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'pw'").format(sql.Identifier(owner)))
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    try:
        url = pg_server.url(name, user=owner, password="pw")
        with pytest.raises(StoreError) as err:
            PostgresStore(url)
        assert err.value.error_code == "pgvector_missing"
        assert "CREATE EXTENSION vector" in (err.value.suggestion or "")
        assert "azure.extensions" in (err.value.suggestion or "")
        with PostgresStore(url, read_only=True) as ro:
            assert ro.describe()["pgvector_version"] is None
        with psycopg.connect(url) as conn:  # the failed migration left nothing behind
            assert conn.execute(
                "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'azmem%%'"
            ).fetchone() == (0,)
    finally:
        pg_server.drop_database(name)
        with pg_server.connect(autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(owner)))


# -- search internals ----------------------------------------------------------------------------------


def test_hnsw_recall_with_scopes_and_filters(pg_url: str) -> None:
    dim, n = 32, 3000
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    users = np.where(np.arange(n) % 10 == 0, "small", "big")
    groups = rng.integers(0, 100, n)
    with PostgresStore(pg_url, exact_scan_rows=0) as s:  # never the exact path: HNSW for every query
        s.open("random-32", dim)
        recs = [
            MemoryRecord.new(f"memory {i}", Scope(user_id=str(users[i])), metadata={"g": int(groups[i])})
            for i in range(n)
        ]
        s.apply([AddOp(r, v) for r, v in zip(recs, vectors, strict=True)])
        ids = np.array([r.id for r in recs])
        cases: list[tuple[Scope, dict[str, Any] | None, Any]] = [
            (Scope(), None, np.ones(n, dtype=bool)),
            (Scope(user_id="small"), None, users == "small"),  # 10% of the store
            (Scope(), {"g": {"lt": 5}}, groups < 5),  # 5%
        ]
        for scope, filters, allowed in cases:
            found = total = 0
            for q in rng.standard_normal((25, dim)).astype(np.float32):
                q /= np.linalg.norm(q)
                sims = np.where(allowed, vectors @ q, -np.inf)
                exact = set(ids[np.argsort(-sims)[:10]])
                hits = s.search(None, q, scope, filters, limit=10, mode="dense")
                assert len(hits) == 10
                found += len(exact & {h.record.id for h in hits})
                total += 10
            assert found / total >= 0.98, (scope, filters, found / total)


def test_large_dimensions_are_indexed_as_halfvec(pg_url: str) -> None:
    rng = np.random.default_rng(2)
    with PostgresStore(pg_url, exact_scan_rows=0) as s:
        s.open("azure:text-embedding-3-large", 3072)
        info = s.describe()
        assert info["vector_index"] == "halfvec"
        assert "azmem_memories_embedding" in info["indexes"]
        vecs = rng.standard_normal((20, 3072)).astype(np.float32)
        recs = [MemoryRecord.new(f"m{i}", Scope(user_id="u")) for i in range(20)]
        s.apply([AddOp(r, v) for r, v in zip(recs, vecs, strict=True)])
        top = s.search(None, vecs[7], Scope(user_id="u"), limit=3, mode="dense")[0]
        assert top.record.id == recs[7].id
        assert top.similarity == pytest.approx(1.0, abs=1e-5)  # exact cosine, not the halfvec one


def test_reindex_with_a_pool_of_one_reads_on_its_own_connection(pg_url: str) -> None:
    with PostgresStore(pg_url, pool_size=1, timeout=5) as s:
        s.open(EMBEDDER, DIM)
        s.apply(
            [
                AddOp(MemoryRecord.new(f"fact {i}", Scope(user_id="u")), fake_embed(f"fact {i}"))
                for i in range(30)
            ]
        )
        vectors = ((r.id, fake_embed(r.memory, 8)) for batch in s.iter_all(7) for r in batch)
        assert s.replace_vectors("fake-8", 8, vectors) == 30
        s.open("fake-8", 8)
        assert (
            s.search(None, fake_embed("fact 3", 8), Scope(), limit=1, mode="dense")[0].record.memory
            == "fact 3"
        )
        assert s.describe()["indexes_missing"] == []


def test_busy_pool_times_out_with_a_clear_error(pg_url: str) -> None:
    with PostgresStore(pg_url, pool_size=1, timeout=0.5) as s:
        s.open(EMBEDDER, DIM)
        rec = add(s, "only one")
        holding, release = threading.Event(), threading.Event()

        def slow_vectors() -> Iterator[tuple[str, Any]]:
            holding.set()
            release.wait(10)  # the reindex holds the only connection meanwhile
            yield rec.id, fake_embed(rec.memory)

        reindex = threading.Thread(target=lambda: s.replace_vectors(EMBEDDER, DIM, slow_vectors()))
        reindex.start()
        assert holding.wait(10)
        with pytest.raises(StoreError) as err:
            s.count()
        release.set()
        reindex.join(10)
        assert err.value.error_code == "store_busy"
        assert "pool_size" in (err.value.suggestion or "")
        assert s.count() == 1


def test_bm25_statistics_follow_every_write(pg_url: str, store: PostgresStore) -> None:
    recs = [add(store, f"note number {i} about tea", user_id=f"u{i % 2}") for i in range(20)]
    store.apply([UpdateOp(recs[0].id, memory="much longer text " * 5, vector=fake_embed("longer"))])
    store.apply([DeleteOp(recs[2].id)])
    assert store.check() == []
    assert store.delete_all(Scope(user_id="u0")) == 9
    assert store.check() == []
    with _admin(pg_url) as admin:  # delete_all folds the statistics' change log into one row
        assert admin.execute("SELECT count(*) FROM azmem_lexical_stats").fetchone() == (1,)
    store.reset()
    assert store.check() == []
    add(store, "tea again")
    assert [h.record.memory for h in store.search("tea", None, Scope(), mode="bm25")] == ["tea again"]


def test_describe_for_doctor(pg_server: PostgresServer, store: PostgresStore) -> None:
    info = store.describe()
    assert info["server_version"].startswith("18")
    assert info["pgvector_version"]
    assert info["migrations_applied"] == info["migrations_known"] == KNOWN
    assert info["indexes_missing"] == []
    assert {"azmem_memories_embedding", "azmem_memories_lexemes", "azmem_memories_metadata"} <= set(
        info["indexes"]
    )
    assert info["embedder"] == [EMBEDDER, DIM]
    assert pg_server.superuser_password not in repr(info)
    assert "***" in info["url"]
