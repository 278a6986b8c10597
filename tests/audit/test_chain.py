"""The store's side: every write recorded in its own transaction, chained, verifiable, prunable."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azmem.errors import MemoryNotFoundError, StoreError
from azmem.stores import AddOp, DeleteOp, MemoryRecord, Scope, UpdateOp
from azmem.stores.audit import AuditContext, AuditEntry
from azmem.stores.audit_log import AuditQuery
from azmem.stores.models import StoredMemory
from stores.store_helpers import DIM, add, fake_embed

from .conftest import Stores


def _ops(store: Any) -> list[str]:
    return [r.operation for r in store.audit_log.records()]


def test_every_write_is_recorded_with_its_scope_and_no_text(stores: Stores) -> None:
    store = stores()
    a = add(store, "alpha note", user_id="alice")
    b = add(store, "beta note", user_id="alice", agent_id="bot")
    store.apply([UpdateOp(a.id, memory="alpha changed", vector=fake_embed("alpha changed"))])
    store.apply([DeleteOp(b.id)])
    add(store, "gamma", user_id="carol")
    assert store.delete_all(Scope("carol")) == 1
    store.replace_vectors("fake:other", DIM, [(a.id, fake_embed("x"))])
    store.open("fake:other", DIM)
    item = StoredMemory(MemoryRecord.new("delta", Scope("dave")), fake_embed("delta"))
    assert store.import_memories([item]) == 1
    store.import_history([])
    store.reset()
    assert _ops(store) == ["apply"] * 5 + ["delete_all", "reindex", "import", "import", "reset"]
    records = list(store.audit_log.records())
    assert [r.seq for r in records] == list(range(1, 11))
    update, delete = records[2], records[3]
    assert (update.user_id, update.memory_ids, update.details) == ("alice", [a.id], {"updated": 1})
    assert (delete.user_id, delete.agent_id, delete.details) == ("alice", "bot", {"deleted": 1})
    assert records[5].memory_ids
    assert records[5].details == {"deleted": 1}
    assert records[-1].details == {"memories": 2, "history": 6}
    assert all(r.principal.startswith("os:") and r.content is None for r in records)
    dump = str([r.model_dump() for r in records])
    assert "alpha" not in dump
    assert "beta" not in dump
    assert store.audit_log.verify().ok


def test_a_change_and_its_record_commit_together(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    store = stores()
    keep = add(store, "kept")
    module = "azmem.stores.sqlite.audit" if stores.backend == "sqlite" else "azmem.stores.postgres.audit"

    def broken(conn: Any, entries: Any) -> None:
        raise StoreError("audit write failed")

    with monkeypatch.context() as m:
        m.setattr(f"{module}.append", broken)
        with pytest.raises(StoreError):
            add(store, "never stored")
        with pytest.raises(StoreError):
            store.delete_all(Scope("alice"))
    assert [r.id for r in store.list(Scope("alice")).records] == [keep.id]
    with pytest.raises(MemoryNotFoundError):  # the change fails: no record either
        store.apply([AddOp(MemoryRecord.new("x", Scope("alice")), fake_embed("x")), DeleteOp("nope")])
    assert _ops(store) == ["apply"]
    assert store.count() == 1


def test_the_context_names_who_and_what_and_goes_first_with_its_calls(stores: Stores) -> None:
    store = stores()
    call = AuditEntry(
        operation="llm.chat",
        principal="key:svc",
        scope={"user_id": "u"},
        details={"deployment": "gpt-4o", "total_tokens": 12, "cost_usd": 0.0001, "request_id": "r-1"},
    )
    ctx = AuditContext(principal="key:svc", operation="add", details={"infer": True}, related=(call,))
    rec = MemoryRecord.new("with context", Scope("u"))
    store.apply([AddOp(rec, fake_embed("with context"))], audit=ctx)
    first, second = store.audit_log.records()
    assert (first.operation, first.details["request_id"], first.details["cost_usd"]) == (
        "llm.chat",
        "r-1",
        0.0001,
    )
    assert (second.operation, second.principal, second.details) == (
        "add",
        "key:svc",
        {"added": 1, "infer": True},
    )
    assert second.prev_hash == first.hash


def test_kept_content_is_hashed_beside_the_chain_and_blanked_by_forget(stores: Stores) -> None:
    store = stores()
    rec = MemoryRecord.new("a secret recipe", Scope("alice"))
    store.apply([AddOp(rec, fake_embed("a secret recipe"))], audit=AuditContext(include_content=True))
    add(store, "bob's", user_id="bob")
    [kept] = store.audit_log.list(AuditQuery(user_id="alice"))
    assert kept.content == [{"id": rec.id, "memory": "a secret recipe"}]
    report = store.forget(Scope("alice"), compact=False)
    assert (report.memories, report.history, report.audit_content) == (1, 1, 1)
    assert "a secret recipe" in report.texts
    assert [r.content for r in store.audit_log.list(AuditQuery(user_id="alice"))] == [None, None]
    assert store.audit_log.verify().ok  # blanked content keeps its hash in the chain
    # Editing kept content (not blanking it) is caught.
    add_ctx = AuditContext(include_content=True)
    store.apply([AddOp(MemoryRecord.new("other text", Scope("bob")), fake_embed("o"))], audit=add_ctx)
    stores.raw.unguard()
    stores.raw.run(f"UPDATE {stores.raw.audit} SET content = replace(content, 'other', 'forged')")
    problems = store.audit_log.verify().problems
    assert [p.kind for p in problems] == ["content"]


def test_the_guards_refuse_edits_and_removals(stores: Stores) -> None:
    store = stores()
    add(store, "one")
    for sql in (
        f"UPDATE {stores.raw.audit} SET principal = 'os:mallory'",
        f"DELETE FROM {stores.raw.audit}",
        f"UPDATE {stores.raw.audit} SET content = 'x'",
    ):
        with pytest.raises(Exception, match="append-only"):
            stores.raw.run(sql)
    assert store.audit_log.verify().ok


def _tamper(stores: Stores, kind: str) -> None:
    t = stores.raw.audit
    stores.raw.unguard()
    if kind == "edit":
        stores.raw.run(f"UPDATE {t} SET principal = 'os:mallory' WHERE seq = 2")
    elif kind == "remove":
        stores.raw.run(f"DELETE FROM {t} WHERE seq = 2")
    elif kind == "reorder":
        stores.raw.run(
            f"UPDATE {t} SET seq = -seq WHERE seq IN (2, 3)",
            f"UPDATE {t} SET seq = 3 WHERE seq = -2",
            f"UPDATE {t} SET seq = 2 WHERE seq = -3",
        )
    else:  # truncate the tail
        stores.raw.run(f"DELETE FROM {t} WHERE seq = 4")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("edit", [("edited", 2)]),
        ("remove", [("removed", 3)]),
        ("reorder", [("moved", 2), ("moved", 3)]),
        ("truncate", [("removed", None)]),
    ],
)
def test_verify_names_each_kind_of_tampering(stores: Stores, kind: str, expected: list[Any]) -> None:
    store = stores()
    for text in ("one", "two", "three", "four"):
        add(store, text)
    assert store.audit_log.verify().ok
    _tamper(stores, kind)
    report = store.audit_log.verify()
    assert [(p.kind, p.seq) for p in report.problems] == expected
    assert not report.ok


def test_pruning_keeps_the_rest_verifiable_and_an_unrecorded_cut_is_caught(stores: Stores) -> None:
    store = stores()
    old = datetime.now(UTC) - timedelta(days=40)
    store.audit_log.append([AuditEntry("llm.chat", "os:x", at=old + timedelta(minutes=i)) for i in range(3)])
    add(store, "recent")
    assert store.audit_log.prune(timedelta(days=30)) == 3
    records = list(store.audit_log.records())
    assert [r.operation for r in records] == ["apply", "audit.prune"]
    assert records[1].details["pruned"] == 3
    assert records[1].details["anchor_seq"] == 3
    assert store.audit_log.state().anchor_seq == 3
    assert store.audit_log.verify().ok
    assert store.audit_log.prune(timedelta(days=30)) == 0
    # Someone cuts more of the chain and moves the anchor to match: no prune record says so.
    stores.raw.unguard()
    head = stores.raw.run(f"SELECT hash FROM {stores.raw.audit} WHERE seq = 4")[0][0]
    stores.raw.run(
        f"DELETE FROM {stores.raw.audit} WHERE seq = 4",
        f"UPDATE {stores.raw.chain} SET anchor_seq = 4, anchor_hash = '{head}'",
    )
    assert [p.kind for p in store.audit_log.verify().problems] == ["anchor"]


def test_expect_catches_a_rewritten_chain(stores: Stores) -> None:
    store = stores()
    add(store, "one")
    add(store, "two")
    report = store.audit_log.verify()
    assert store.audit_log.verify(expect=(2, report.head_hash or "")).ok
    assert [p.kind for p in store.audit_log.verify(expect=(2, "0" * 64)).problems] == ["expected"]
    assert [p.kind for p in store.audit_log.verify(expect=(9, "0" * 64)).problems] == ["expected"]


def test_concurrent_writers_build_one_gapless_chain(stores: Stores) -> None:
    """Several store objects (PostgreSQL: several pools, as several instances) writing at once."""
    writers = [stores() for _ in range(4)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(8):
                add(writers[i], f"note {i} {j}", user_id=f"u{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = writers[0].audit_log.verify()
    assert report.ok
    assert report.records == 32
    assert report.last_seq == 32


def test_queries_filter_on_both_backends(stores: Stores) -> None:
    store = stores()
    a = add(store, "one", user_id="alice")
    add(store, "two", user_id="bob")
    store.apply([DeleteOp(a.id)], audit=AuditContext(principal="key:ops", operation="delete"))
    log = store.audit_log

    def seqs(**query: Any) -> list[int]:
        return [r.seq for r in log.list(AuditQuery(**query))]

    assert seqs() == [3, 2, 1]
    assert seqs(operation="del*") == [3]
    assert seqs(operation="de_ete") == []  # LIKE wildcards in the value are plain characters
    assert seqs(memory_id=a.id) == [3, 1]
    assert seqs(user_id="alice", principal="key:ops") == [3]
    assert seqs(
        since=datetime.now(UTC) - timedelta(hours=1), until=datetime.now(UTC) + timedelta(hours=1)
    ) == [
        3,
        2,
        1,
    ]
    assert seqs(until=datetime.now(UTC) - timedelta(hours=1)) == []
    assert [r.seq for r in log.records(AuditQuery(user_id="bob"))] == [2]
    assert len(log.list(limit=1)) == 1
