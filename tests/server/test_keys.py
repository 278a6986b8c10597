"""API keys: made once, stored as a hash in the store's database, checked, listed, revoked.

SQLite and PostgreSQL key tables follow the same rules (`_check_ring`); the CLI prints a key once."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from azmem.cli import app as cli_app
from azmem.errors import InvalidInputError, StoreError
from azmem.stores import SQLiteStore, open_store
from azmem.stores.keys import KeyRing, hash_key, parse_key


def _secret_part(key: str) -> str:
    """The 43-character secret after ``azm_<12 hex>_``; it may itself contain ``_``."""
    assert parse_key(key) is not None
    return key[len("azm_") + 13 :]


def _check_ring(ring: KeyRing) -> None:
    """The rules every backend's ring follows."""
    made = ring.create("laptop", user_ids=["alex"], agent_ids=["bot", "bot"], read_only=True, rate_limit=30)
    assert parse_key(made.secret) == made.key.id
    assert made.key.agent_ids == ("bot",)  # repeated ids collapse
    found = ring.verify(made.secret)
    assert found == made.key
    assert found is not None
    assert found.read_only
    assert found.rate_limit == 30
    assert not found.unbound
    # Every other string is refused: a changed character, a foreign id, garbage.
    tampered = made.secret[:-1] + ("A" if made.secret[-1] != "A" else "B")
    assert ring.verify(tampered) is None
    assert ring.verify("azm_000000000000_" + _secret_part(made.secret)) is None
    assert ring.verify("not a key") is None
    with pytest.raises(InvalidInputError) as dup:
        ring.create("laptop", user_ids=["x"])
    assert dup.value.code == "key_exists"
    with pytest.raises(InvalidInputError) as bad:
        ring.create("no spaces please")
    assert bad.value.code == "bad_key_name"
    with pytest.raises(InvalidInputError):
        ring.create("ws", user_ids=[" alex"])
    other = ring.create("service")
    assert other.key.unbound
    assert [k.name for k in ring.list()] == ["laptop", "service"]

    revoked = ring.revoke("laptop")
    assert revoked.revoked_at is not None
    assert ring.verify(made.secret) is None
    assert [k.name for k in ring.list()] == ["service"]
    assert [k.name for k in ring.list(include_revoked=True)] == ["laptop", "service"]
    with pytest.raises(InvalidInputError) as gone:
        ring.revoke("laptop")
    assert gone.value.code == "key_not_found"
    again = ring.create("laptop", user_ids=["alex"])  # a revoked key's name can be reused
    assert ring.verify(again.secret) is not None
    assert ring.verify(made.secret) is None


def test_sqlite_keys_follow_the_rules_and_store_only_hashes(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with SQLiteStore(path) as store:
        ring = store.keys
        _check_ring(ring)
        secret = ring.create("probe", run_ids=["r1"]).secret
    raw = path.read_bytes() + (
        path.with_name("memory.db-wal").read_bytes() if path.with_name("memory.db-wal").exists() else b""
    )
    assert secret.encode() not in raw
    with sqlite3.connect(path) as conn:
        hashes = {r[0] for r in conn.execute("SELECT key_hash FROM api_keys")}
    assert hash_key(secret) in hashes
    assert hashlib.sha256(secret.encode()).hexdigest() == hash_key(secret)


def test_a_read_only_store_reads_keys_and_refuses_to_make_them(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with SQLiteStore(path) as store:
        secret = store.keys.create("alex", user_ids=["alex"]).secret
    with open_store(f"sqlite:///{path}?mode=ro") as ro:  # type: ignore[attr-defined]
        assert ro.keys.verify(secret) is not None
        with pytest.raises(StoreError) as err:
            ro.keys.create("other", user_ids=["x"])
        assert err.value.code == "store_read_only"


def test_a_store_from_before_keys_still_opens_read_only(tmp_path: Path) -> None:
    """Migration 003 is optional for read-only opens: an old backup stays searchable, with no keys."""
    path = tmp_path / "old.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:  # make it what azmem wrote before API keys existed
        conn.execute("DROP TABLE api_keys")
        conn.execute("DELETE FROM _migrations WHERE name = '003_api_keys'")
    store = open_store(path, read_only=True)
    assert isinstance(store, SQLiteStore)
    assert store.keys.list() == []
    assert store.keys.verify("azm_0123456789ab_" + "A" * 43) is None
    assert store.count() == 0
    store.close()
    SQLiteStore(path).close()  # a read-write open migrates it
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM _migrations WHERE name = '003_api_keys'").fetchone()[0] == 1


def test_postgres_keys_follow_the_rules(pg_url: str) -> None:
    from azmem.stores.postgres.keys import PostgresKeyTable

    table = PostgresKeyTable.from_url(pg_url)
    ring = KeyRing(table, on_close=table.close)
    assert ring.list() == []  # no table yet: no keys, nothing created by a read
    _check_ring(ring)
    ring.close()


def test_postgres_first_keys_made_at_once_create_one_table(pg_url: str) -> None:
    """Two processes making their first key together: the advisory lock serialises table creation."""
    from azmem.stores.postgres.keys import PostgresKeyTable

    rings = [KeyRing(t, on_close=t.close) for t in (PostgresKeyTable.from_url(pg_url) for _ in range(4))]
    errors: list[BaseException] = []

    def make(i: int) -> None:
        try:
            rings[i].create(f"k{i}", user_ids=[f"u{i}"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(k.name for k in rings[0].list()) == ["k0", "k1", "k2", "k3"]
    for ring in rings:
        ring.close()


# -- the CLI -----------------------------------------------------------------------------------


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(args))
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def test_cli_creates_a_key_printed_once_lists_and_revokes_it(tmp_path: Path) -> None:
    store = str(tmp_path / "memory.db")
    code, out, err = _cli("keys", "create", "alex-laptop", "--user", "alex", "--store", store)
    assert code == 0, err
    secret = out.strip()
    assert parse_key(secret) is not None
    assert out == secret + "\n"
    assert "only time it is shown" in err
    with SQLiteStore(store) as s:
        assert s.keys.verify(secret) is not None

    code, out, _ = _cli("keys", "list", "--store", store, "--json")
    listed = json.loads(out)["keys"]
    assert [(k["name"], k["user_ids"], k["read_only"]) for k in listed] == [("alex-laptop", ["alex"], False)]
    assert secret not in out
    assert _secret_part(secret) not in out
    code, out, _ = _cli("keys", "list", "--store", store)
    assert "alex-laptop" in out
    assert "user=alex" in out

    code, out, _ = _cli(
        "keys",
        "create",
        "svc",
        "--all-scopes",
        "--read-only",
        "--rate-limit",
        "60",
        "--json",
        "--store",
        store,
    )
    made = json.loads(out)
    assert code == 0
    assert made["scopes"] == "ALL scopes"
    assert made["read_only"]
    assert made["rate_limit"] == 60
    assert parse_key(made["key"]) is not None

    code, _, err = _cli("keys", "revoke", "alex-laptop", "--store", store)
    assert code == 0
    assert "Revoked" in err
    with SQLiteStore(store) as s:
        assert s.keys.verify(secret) is None
    code, out, _ = _cli("keys", "list", "--revoked", "--json", "--store", store)
    assert {k["name"]: k["revoked_at"] is not None for k in json.loads(out)["keys"]} == {
        "alex-laptop": True,
        "svc": False,
    }


def test_cli_refuses_a_key_bound_to_nothing_by_omission(tmp_path: Path) -> None:
    store = str(tmp_path / "memory.db")
    code, _, err = _cli("keys", "create", "oops", "--store", store)
    assert code == 2
    assert "--all-scopes" in err
    code, _, err = _cli("keys", "create", "oops", "--user", "a", "--all-scopes", "--store", store)
    assert code == 2
    _cli("keys", "create", "dup", "--user", "a", "--store", store)
    code, _, err = _cli("keys", "create", "dup", "--user", "a", "--store", store)
    assert code == 4
    assert "already named" in err
    code, _, err = _cli("keys", "revoke", "nobody", "--store", store)
    assert code == 4
    assert "azmem keys list" in err
