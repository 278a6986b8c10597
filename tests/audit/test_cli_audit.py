"""``azmem audit verify|list|export|prune`` and ``azmem forget``'s guard rails, on a real store file."""

from __future__ import annotations

import itertools
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from azmem.cli import app
from azmem.memory import Memory
from azmem.stores.audit import AuditEntry

from .conftest import FakeEmbedder


def azmem(store: Path, *args: str) -> Result:
    result = CliRunner().invoke(app, [*args, "--store", str(store)])
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.fixture
def store(tmp_path: Path, embedder: FakeEmbedder) -> Path:
    """Four records: alice adds two notes, updates one, bob adds one."""
    path = tmp_path / "memory.db"
    with Memory(embedder=embedder, store_path=path) as memory:
        first = memory.add("first note", user_id="alice", infer=False).results[0]
        memory.add("second note", user_id="alice", infer=False)
        memory.update(first.id, "first note, changed")
        memory.add("bob's note", user_id="bob", infer=False)
    return path


def _sql(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        for sql in statements:
            conn.execute(sql)


@pytest.mark.parametrize(
    ("statements", "named"),
    [
        (["UPDATE audit SET principal = 'os:mallory' WHERE seq = 2"], ["edited: record seq 2 ("]),
        (["DELETE FROM audit WHERE seq = 2"], ["removed: seq 2 missing before record seq 3 ("]),
        (
            [
                "UPDATE audit SET seq = -seq WHERE seq IN (2, 3)",
                "UPDATE audit SET seq = 3 WHERE seq = -2",
                "UPDATE audit SET seq = 2 WHERE seq = -3",
            ],
            ["moved: record at seq 2 was written as seq 3", "moved: record at seq 3 was written as seq 2"],
        ),
        (["DELETE FROM audit WHERE seq = 4"], ["removed: records after seq 3 are gone"]),
    ],
    ids=["edit", "removal", "reorder", "truncation"],
)
def test_verify_catches_each_kind_of_tampering(store: Path, statements: list[str], named: list[str]) -> None:
    ok = azmem(store, "audit", "verify")
    assert ok.exit_code == 0
    assert "intact: 4 records" in ok.stdout
    _sql(store, *statements)
    result = azmem(store, "audit", "verify")
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    for text in named:
        assert text in said
    report = json.loads(azmem(store, "audit", "verify", "--json").stdout)
    assert report["ok"] is False
    assert len(report["problems"]) == len(named)


def test_verify_with_an_anchor_kept_elsewhere(store: Path) -> None:
    head = json.loads(azmem(store, "audit", "verify", "--json").stdout)["head"]
    assert head.startswith("4:")
    assert azmem(store, "audit", "verify", "--expect", head).exit_code == 0
    assert azmem(store, "audit", "verify", "--expect", "4:" + "0" * 64).exit_code == 1
    assert azmem(store, "audit", "verify", "--expect", "nonsense").exit_code == 2


def test_list_filters_and_export_writes_the_chain(store: Path, tmp_path: Path) -> None:
    def listed(*args: str) -> list[Any]:
        result = azmem(store, "audit", "list", "--json", *args)
        assert result.exit_code == 0, result.stderr
        return [(r["seq"], r["operation"]) for r in json.loads(result.stdout)]

    assert listed() == [(4, "add"), (3, "update"), (2, "add"), (1, "add")]
    assert listed("--user", "alice", "--operation", "add") == [(2, "add"), (1, "add")]
    assert listed("--operation", "up*") == [(3, "update")]
    assert listed("--user", "bob", "--since", "1h") == [(4, "add")]
    assert listed("--until", "2000-01-01") == []
    assert listed("--principal", "key:nobody") == []
    assert listed("--limit", "1") == [(4, "add")]
    table = azmem(store, "audit", "list")
    assert table.exit_code == 0
    assert "update" in table.stdout
    assert "user=alice" in table.stdout
    out = tmp_path / "audit.jsonl"
    result = azmem(store, "audit", "export", "--output", str(out))
    assert result.exit_code == 0
    assert "Exported 4 audit records" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in lines] == [1, 2, 3, 4]
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(lines))
    assert "note" not in out.read_text()  # no memory text by default
    assert azmem(store, "audit", "list", "--since", "yesterday").exit_code == 2


def test_prune_from_the_command_line(tmp_path: Path, embedder: FakeEmbedder) -> None:
    store = tmp_path / "memory.db"
    with Memory(embedder=embedder, store_path=store) as memory:
        old = datetime.now(UTC) - timedelta(days=100)
        memory._store.audit_log.append([AuditEntry("llm.chat", "os:x", at=old) for _ in range(2)])
        memory.add("recent", user_id="u", infer=False)
    assert azmem(store, "audit", "prune", "--yes").exit_code == 2  # no retention given anywhere
    result = azmem(store, "audit", "prune", "--older-than", "30", "--yes", "--json")
    assert json.loads(result.stdout) == {"pruned": 2, "older_than_days": 30.0}
    assert azmem(store, "audit", "verify").exit_code == 0
    assert [r["operation"] for r in json.loads(azmem(store, "audit", "list", "--json").stdout)] == [
        "audit.prune",
        "add",
    ]


def test_forget_needs_a_scope_and_a_missing_store_is_an_error(store: Path, tmp_path: Path) -> None:
    assert azmem(store, "forget", "--yes").exit_code == 2
    assert azmem(tmp_path / "none.db", "audit", "list").exit_code == 4
    result = azmem(store, "forget", "--user", "alice", "--yes")
    assert result.exit_code == 0
    assert "Erased user_id=alice: 2 memories, 3 history events" in result.stdout
