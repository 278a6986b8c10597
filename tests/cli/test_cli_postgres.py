"""Every memory command, unchanged, on a PostgreSQL store named by AZMEM_STORE (a real server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from azmem.cli import app

from .conftest import json_out, no_traceback


@pytest.fixture
def pg_cli(pg_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AZMEM_STORE", pg_url)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        result = runner.invoke(app, list(args))
        no_traceback(result)
        return result

    return invoke


def test_every_command_on_postgres(pg_cli, pg_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    added = json_out(
        pg_cli("add", "I drink green tea every morning", "--user", "alex", "--no-infer", "--json")
    )
    tea = added["results"][0]["id"]
    json_out(pg_cli("add", "My dog Biscuit is a beagle", "--user", "alex", "--no-infer", "--json"))
    json_out(pg_cli("add", "I drink coffee only", "--user", "sam", "--no-infer", "--json"))

    found = json_out(pg_cli("search", "what does alex drink", "--user", "alex", "--json"))["results"]
    assert found[0]["id"] == tea
    assert {r["user_id"] for r in found} == {"alex"}
    assert json_out(pg_cli("get", tea, "--json"))["memory"] == "I drink green tea every morning"
    listed = json_out(pg_cli("list", "--user", "alex", "--json"))["results"]
    assert len(listed) == 2

    conversation = tmp_path / "c.jsonl"
    lines = [{"user_id": "maria", "messages": [{"role": "user", "content": "I moved to Lisbon last year"}]}]
    conversation.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    stats = json_out(pg_cli("import", str(conversation), "--no-infer", "--json"))
    assert stats["events"]["ADD"] == 1

    answer = json_out(pg_cli("query", "what does alex drink?", "--user", "alex", "--json"))
    assert tea in [m["id"] for m in answer["memories"]]

    assert json_out(pg_cli("delete", tea, "--json")) == {"deleted": 1, "id": tea}
    history = json_out(pg_cli("history", tea, "--json"))["results"]
    assert [h["event"] for h in history] == ["ADD", "DELETE"]
    assert pg_cli("get", tea).exit_code == 4

    reindexed = pg_cli("reindex", "--json")
    assert reindexed.exit_code == 0, reindexed.stderr

    # the whole store to SQLite and back into a fresh PostgreSQL database
    local = tmp_path / "copy.db"
    copied = json_out(pg_cli("copy", pg_url, str(local), "--json"))
    assert copied["memories"] == 3
    assert copied["verified"] is True
    assert ":***@" in copied["source"]  # the password never printed
    search_copy = json_out(pg_cli("search", "beagle", "--user", "alex", "--store", str(local), "--json"))
    assert search_copy["results"][0]["memory"] == "My dog Biscuit is a beagle"


def test_doctor_reports_the_postgres_store(pg_cli) -> None:  # type: ignore[no-untyped-def]
    json_out(pg_cli("add", "one memory", "--user", "u", "--no-infer", "--json"))
    result = pg_cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["store"]["status"] == "ok"
    assert "PostgreSQL 18" in checks["store"]["detail"]
    assert checks["pgvector"]["status"] == "ok"
    assert checks["migrations"]["status"] == "ok"
    assert checks["indexes"]["status"] == "ok"


def test_an_unreachable_server_is_exit_6_with_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("AZMEM_STORE", f"postgresql://u:secret-pw@127.0.0.1:{port}/db")
    result = CliRunner().invoke(app, ["list", "--user", "a"])
    no_traceback(result)
    assert result.exit_code == 6
    assert f"127.0.0.1:{port}" in result.stderr
    assert "secret-pw" not in result.stderr
