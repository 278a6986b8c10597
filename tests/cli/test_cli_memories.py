"""The memory commands end to end on the embedded default (local embeddings + a temporary SQLite store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from azmem.cli import app

from .conftest import Invoke, json_out, no_traceback


def _add(cli: Invoke, text: str, *args: str) -> str:
    data = json_out(cli("add", text, "--no-infer", "--json", *args))
    (event,) = data["results"]
    assert event["event"] == "ADD"
    return str(event["id"])


def test_add_search_get_history_delete_round_trip(cli: Invoke) -> None:
    tea = _add(cli, "I drink green tea every morning", "--user", "alex")
    _add(cli, "My dog Biscuit is a beagle", "--user", "alex")
    _add(cli, "I drink coffee only", "--user", "sam")

    found = json_out(cli("search", "what does alex drink", "--user", "alex", "--json"))["results"]
    assert found[0]["id"] == tea
    assert {r["user_id"] for r in found} == {"alex"}  # scope isolation through the CLI
    assert 0 < found[0]["score"] <= 1

    item = json_out(cli("get", tea, "--json"))
    assert item["memory"] == "I drink green tea every morning"
    assert item["user_id"] == "alex"

    history = json_out(cli("history", tea, "--json"))["results"]
    assert [h["event"] for h in history] == ["ADD"]

    deleted = json_out(cli("delete", tea, "--json"))
    assert deleted == {"deleted": 1, "id": tea}
    gone = cli("get", tea)
    assert gone.exit_code == 4
    assert "Error:" in gone.stderr
    history = json_out(cli("history", tea, "--json"))["results"]
    assert [h["event"] for h in history] == ["ADD", "DELETE"]


def test_human_output_is_a_table_with_full_ids(cli: Invoke) -> None:
    memory_id = _add(cli, "I like hiking in the Alps", "--user", "alex")
    result = cli("list", "--user", "alex")
    assert result.exit_code == 0
    assert "I like hiking in the Alps" in result.stdout
    assert memory_id in result.stdout  # whole, on one line: copyable into `azmem get`
    assert "user=alex" in result.stdout
    searched = cli("search", "mountains", "--user", "alex")
    assert memory_id in searched.stdout
    assert "score" in searched.stdout


def test_metadata_and_filters(cli: Invoke) -> None:
    _add(cli, "Pasta carbonara recipe", "--user", "a", "--meta", "topic=food", "--meta", "rating=5")
    _add(cli, "Tomato soup recipe", "--user", "a", "--meta", "topic=food", "--meta", "rating=2")
    _add(cli, "Quarterly report due Friday", "--user", "a", "--meta", "topic=work")

    food = json_out(cli("list", "--user", "a", "--filter", '{"topic": "food"}', "--json"))["results"]
    assert sorted(r["memory"] for r in food) == ["Pasta carbonara recipe", "Tomato soup recipe"]
    assert {r["metadata"]["rating"] for r in food} == {5, 2}  # numbers stay numbers
    good = json_out(cli("search", "recipe", "--user", "a", "--filter", '{"rating": {"gte": 4}}', "--json"))
    assert [r["memory"] for r in good["results"]] == ["Pasta carbonara recipe"]


def test_list_pages_with_cursor(cli: Invoke) -> None:
    for i in range(5):
        _add(cli, f"note number {i}", "--user", "p")
    first = json_out(cli("list", "--user", "p", "--limit", "3", "--json"))
    assert len(first["results"]) == 3
    assert first["next_cursor"]
    second = json_out(cli("list", "--user", "p", "--limit", "3", "--cursor", first["next_cursor"], "--json"))
    assert len(second["results"]) == 2
    assert second["next_cursor"] is None
    seen = {r["id"] for r in first["results"]} | {r["id"] for r in second["results"]}
    assert len(seen) == 5


def test_add_reads_stdin(cli: Invoke) -> None:
    data = json_out(cli("add", "-", "--user", "u", "--no-infer", "--json", input="piped memory text"))
    assert data["results"][0]["memory"] == "piped memory text"


def test_delete_all_needs_a_scope_and_confirmation(cli: Invoke) -> None:
    _add(cli, "one", "--user", "x")
    _add(cli, "two", "--user", "x")
    keep = _add(cli, "three", "--user", "y")

    no_scope = cli("delete", "--all", "--yes")
    assert no_scope.exit_code == 2
    assert "needs a scope" in no_scope.stderr

    declined = cli("delete", "--all", "--user", "x", input="n\n")
    assert declined.exit_code != 0
    assert len(json_out(cli("list", "--user", "x", "--json"))["results"]) == 2

    done = json_out(cli("delete", "--all", "--user", "x", "--yes", "--json"))
    assert done == {"deleted": 2, "user_id": "x"}
    assert json_out(cli("list", "--user", "x", "--json"))["results"] == []
    assert json_out(cli("get", keep, "--json"))["memory"] == "three"


def test_global_options_work_before_the_command(store: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app, ["--store", str(store), "add", "before the command", "--user", "g", "--no-infer"]
    )
    assert added.exit_code == 0, added.stderr
    listed = runner.invoke(app, ["list", "--user", "g", "--json", "--store", str(store)])
    assert "before the command" in listed.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["list"], 4, "needs a scope"),
        (["search", "x"], 4, "needs a scope"),
        (["add", "text"], 4, "needs a scope"),
        (["list", "--user", "a", "--filter", "{not json"], 4, "--filter is not valid JSON"),
        (["list", "--user", "a", "--filter", "[1]"], 4, "--filter must be a JSON object"),
        (["list", "--user", "a", "--filter", '{"n": {"near": 1}}'], 4, "near"),
        (["add", "x", "--user", "a", "--meta", "novalue"], 4, "KEY=VALUE"),
        (["add", "", "--user", "a", "--no-infer"], 4, "Error:"),
        (["get", "no-such-id"], 4, "no-such-id"),
        (["delete", "no-such-id"], 4, "no-such-id"),
        (["delete"], 2, "either a memory ID or --all"),
        (["search", "x", "--user", "a", "--mode", "fuzzy"], 2, "fuzzy"),
    ],
)
def test_input_errors_exit_4_with_a_fix(cli: Invoke, args: list[str], code: int, message: str) -> None:
    assert cli("add", "seed", "--user", "seed", "--no-infer").exit_code == 0  # a store to read
    result = cli(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert result.stdout == ""


def test_bad_config_key_prints_the_suggestion_and_exits_3(cli: Invoke, tmp_path: Path) -> None:
    config = tmp_path / "azmem.yaml"
    config.write_text("chat:\n  endpoint: https://example.openai.azure.com\n  deploymnet: gpt-4o\n")
    result = cli("list", "--user", "a", "--config", str(config))
    assert result.exit_code == 3
    assert "deploymnet" in result.stderr
    assert "Fix:" in result.stderr
    assert "deployment" in result.stderr
    assert result.stdout == ""
    no_traceback(result)


def test_reindex_reports_the_count(cli: Invoke) -> None:
    _add(cli, "alpha", "--user", "r")
    _add(cli, "beta", "--user", "r")
    data = json_out(cli("reindex", "--json"))
    assert data["count"] == 2
    assert data["embedder"].startswith("local:")
    assert json_out(cli("search", "alpha", "--user", "r", "--json"))["results"][0]["memory"] == "alpha"


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--user", "a"],
        ["search", "tea", "--user", "a"],
        ["query", "tea?", "--user", "a"],
        ["get", "some-id"],
        ["history", "some-id"],
    ],
)
def test_read_only_commands_refuse_a_missing_store_instead_of_creating_it(
    cli: Invoke, tmp_path: Path, args: list[str]
) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    result = cli(*args, "--store", str(missing), with_store=False)
    assert result.exit_code == 4, result.stderr
    assert f"No store at {missing}" in result.stderr
    assert "azmem add" in result.stderr
    assert not (tmp_path / "no").exists()


def test_add_creates_the_store_and_its_directory(cli: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "x.db"
    assert (
        cli(
            "add", "I like tea", "--user", "a", "--no-infer", "--store", str(path), with_store=False
        ).exit_code
        == 0
    )
    assert path.is_file()
    listed = cli("list", "--user", "a", "--json", "--store", str(path), with_store=False)
    assert json_out(listed)["results"][0]["memory"] == "I like tea"


def test_tilde_is_expanded_in_store_option_config_and_home(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "userhome"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert (
        cli("add", "one", "--user", "a", "--no-infer", "--store", "~/opt.db", with_store=False).exit_code == 0
    )
    assert (home / "opt.db").is_file()
    config = tmp_path / "azmem.yaml"
    config.write_text("store:\n  path: ~/cfg.db\n", encoding="utf-8")
    assert (
        cli("add", "two", "--user", "a", "--no-infer", "--config", str(config), with_store=False).exit_code
        == 0
    )
    assert (home / "cfg.db").is_file()
    monkeypatch.setenv("AZMEM_HOME", "~/azmem-home")
    assert cli("add", "three", "--user", "a", "--no-infer", with_store=False).exit_code == 0
    assert (home / "azmem-home" / "memory.db").is_file()
    assert not (tmp_path / "~").exists()


def test_piped_text_loses_its_trailing_newline(cli: Invoke) -> None:
    added = json_out(cli("add", "-", "--user", "a", "--no-infer", "--json", input="  I like tea\n\n"))
    assert added["results"][0]["memory"] == "I like tea"


def test_a_system_message_says_it_is_not_stored(cli: Invoke) -> None:
    result = cli("add", "You are a helpful assistant", "--user", "a", "--role", "system", "--no-infer")
    assert result.exit_code == 0, result.stderr
    assert "system message" in result.stderr
    assert "already cover" not in result.stderr


@pytest.mark.parametrize(
    ("pair", "problem"),
    [
        ("role=hacker", "reserved key"),
        ("timestamp=now", "reserved key"),
        ("user_id=b", "reserved key"),
        ("a.b=1", "nested keys"),
        ("a/b=1", "could not address"),
        ("x" * 129 + "=1", "could not address"),
    ],
)
def test_meta_keys_that_are_reserved_or_unaddressable_are_refused(
    cli: Invoke, pair: str, problem: str
) -> None:
    result = cli("add", "I like tea", "--user", "a", "--no-infer", "--meta", pair)
    assert result.exit_code == 4, result.stderr
    assert problem in result.stderr
    assert "Fix:" in result.stderr


def test_a_meta_key_with_a_space_or_dash_is_fine_and_filterable(cli: Invoke) -> None:
    assert cli("add", "I like tea", "--user", "a", "--no-infer", "--meta", "drink-type=hot").exit_code == 0
    found = json_out(cli("list", "--user", "a", "--filter", '{"drink-type": "hot"}', "--json"))["results"]
    assert [m["memory"] for m in found] == ["I like tea"]
