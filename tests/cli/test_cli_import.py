"""``azmem import``: file shapes, scope rules, and no half-imports of a bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from azmem.cli.conversations import load_conversations, parse_conversations
from azmem.cli.output import InputFileError
from azmem.emulator import Emulator, Fault

from .conftest import Invoke, json_out, stored


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


MESSAGES = [
    {"role": "user", "content": "I moved to Lisbon last year", "timestamp": "2025-01-10T09:00:00Z"},
    {"role": "assistant", "content": "How do you like Lisbon?"},
    {"role": "user", "content": "I love the pastel de nata"},
]


def test_import_json_conversation_with_its_own_scope(cli: Invoke, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c.json", {"user_id": "maria", "metadata": {"source": "chat"}, "messages": MESSAGES}
    )
    stats = json_out(cli("import", str(path), "--no-infer", "--json"))
    assert stats["conversations"] == 1
    assert stats["messages"] == 3
    assert stats["events"]["ADD"] == 3
    items = json_out(cli("list", "--user", "maria", "--json", "--limit", "10"))["results"]
    assert len(items) == 3
    assert all(i["metadata"]["source"] == "chat" for i in items)
    found = json_out(cli("search", "which city", "--user", "maria", "--json", "--limit", "1"))["results"]
    assert "Lisbon" in found[0]["memory"]


def test_import_jsonl_mixed_lines_and_command_line_scope(cli: Invoke, tmp_path: Path) -> None:
    lines = [json.dumps(m) for m in MESSAGES]
    lines.append(json.dumps({"user_id": "other", "messages": [{"role": "user", "content": "separate chat"}]}))
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    stats = json_out(cli("import", str(path), "--user", "joao", "--no-infer", "--batch-size", "2", "--json"))
    assert stats["conversations"] == 2
    assert stats["messages"] == 4
    # --user wins over the file's user_id
    assert len(json_out(cli("list", "--user", "joao", "--json"))["results"]) == 4
    assert json_out(cli("list", "--user", "other", "--json"))["results"] == []


def test_import_shows_progress_on_stderr_and_a_summary(cli: Invoke, tmp_path: Path) -> None:
    path = _write(tmp_path / "c.json", MESSAGES)
    result = cli("import", str(path), "--user", "p", "--no-infer")
    assert result.exit_code == 0, result.stderr
    assert "Importing" in result.stderr
    assert "messages" in result.stdout
    assert "memories added" in result.stdout


def test_import_without_any_scope_writes_nothing(cli: Invoke, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json", {"user_id": "u", "messages": MESSAGES})
    unscoped = _write(tmp_path / "unscoped.json", MESSAGES)
    result = cli("import", str(good), str(unscoped), "--no-infer")
    assert result.exit_code == 4
    assert "unscoped.json" in result.stderr
    assert "--user" in result.stderr
    assert stored(cli, "--user", "u") == []


def test_a_malformed_line_stops_the_import_before_any_write(cli: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(MESSAGES[0]) + "\n{broken\n", encoding="utf-8")
    result = cli("import", str(path), "--user", "u", "--no-infer")
    assert result.exit_code == 4
    assert "c.jsonl line 2" in result.stderr
    assert stored(cli, "--user", "u") == []


def test_import_reads_stdin(cli: Invoke) -> None:
    stats = json_out(cli("import", "-", "--user", "s", "--no-infer", "--json", input=json.dumps(MESSAGES)))
    assert stats["messages"] == 3


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("{not json", "not valid JSON"),
        ('{"messages": "hi"}', '"messages" must be a list'),
        ('{"messages": [], "usr_id": "a"}', "unknown conversation key 'usr_id'"),
        ('[{"role": "robot", "content": "x"}]', "role 'robot'"),
        ('[{"role": "user", "content": 5}]', '"content" must be a string'),
        ('[{"role": "user", "text": "x"}]', "unknown message key 'text'"),
        ('{"user_id": 7, "messages": []}', '"user_id" must be a string'),
        ("42", "must hold a conversation"),
    ],
)
def test_bad_documents_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(InputFileError) as info:
        parse_conversations(text, "f.json")
    assert problem in info.value.message
    assert info.value.suggestion


def test_shapes_are_recognised() -> None:
    single = parse_conversations(json.dumps({"agent_id": "bot", "messages": MESSAGES}), "a")
    assert len(single) == 1
    assert single[0].agent_id == "bot"
    assert len(single[0].messages) == 3
    many = parse_conversations(json.dumps([{"messages": MESSAGES}, {"messages": MESSAGES[:1]}]), "b")
    assert [len(c.messages) for c in many] == [3, 1]
    bare = parse_conversations(json.dumps(MESSAGES), "c")
    assert len(bare) == 1
    assert bare[0].messages[0]["timestamp"] == "2025-01-10T09:00:00Z"
    # one JSON object per line without a .jsonl name is still understood
    lines = parse_conversations("\n".join(json.dumps(m) for m in MESSAGES), "d")
    assert len(lines) == 1
    assert len(lines[0].messages) == 3


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        load_conversations(tmp_path / "missing.json")
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('[{"role": "user", "content": "caf\xe9"}]'.encode("latin-1"))
    with pytest.raises(InputFileError, match="not UTF-8"):
        load_conversations(latin1)


def test_a_failure_mid_import_keeps_the_finished_chunks_and_says_how_far_it_got(
    cli: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    config = tmp_path / "azmem.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "endpoint": emulator.endpoint,
                "api_key": emulator.api_key,
                "chat": "gpt-4o",
                "retry": {"max_attempts": 1},
            }
        ),
        encoding="utf-8",
    )
    # chunk 1: extraction (an empty store needs no reconciliation); chunk 2: the service fails
    facts = json.dumps({"facts": [{"text": "Moved to Lisbon", "subject": "user"}]})
    emulator.script("gpt-4o", [facts, Fault.server_error(500)])
    path = _write(tmp_path / "c.json", {"user_id": "f", "messages": MESSAGES})
    result = cli("import", str(path), "--infer", "--batch-size", "2", "--config", str(config))
    assert result.exit_code == 5
    assert "Imported 2 of 3 messages before the error below." in result.stderr
    assert "Error:" in result.stderr
    stored = json_out(cli("list", "--user", "f", "--json"))["results"]
    # the first chunk, whole; nothing of the second
    assert [m["memory"] for m in stored] == ["Moved to Lisbon"]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"role": "user", "content": ""}, "content is empty"),
        ({"role": "user", "content": "   "}, "content is empty"),
        ({"role": "user", "content": "x" * (64 * 1024 + 1)}, "the limit is 65,536 bytes"),
        ({"role": "user", "content": "a\x00b"}, "NUL character"),
        ({"role": "user", "content": "x", "timestamp": "yesterday"}, "'yesterday' is not an ISO 8601 time"),
        ({"role": "user", "content": "x", "timestamp": 99999999999999}, "not a valid Unix time"),
        ({"role": "user", "content": "x", "created_at": "soon"}, "'soon' is not an ISO 8601 time"),
    ],
)
def test_content_the_store_would_refuse_stops_the_import_before_any_write(
    cli: Invoke, tmp_path: Path, bad: dict[str, object], problem: str
) -> None:
    path = tmp_path / "c.jsonl"
    good = [json.dumps({"role": "user", "content": f"fact number {i}"}) for i in range(50)]
    path.write_text("\n".join([*good, json.dumps(bad)]) + "\n", encoding="utf-8")
    result = cli("import", str(path), "--user", "u", "--no-infer")
    assert result.exit_code == 4, result.stderr
    assert "c.jsonl line 51" in result.stderr
    assert problem in result.stderr
    assert "messages[" not in result.stderr
    assert stored(cli, "--user", "u") == []


def test_a_single_message_object_is_one_message(cli: Invoke, tmp_path: Path) -> None:
    path = _write(tmp_path / "one.json", {"role": "user", "content": "I like green tea"})
    assert json_out(cli("import", str(path), "--user", "u", "--no-infer", "--json"))["messages"] == 1
    stdin = json.dumps({"role": "user", "content": "I like black coffee"})
    assert json_out(cli("import", "-", "--user", "u", "--no-infer", "--json", input=stdin))["messages"] == 1
    assert len(json_out(cli("list", "--user", "u", "--json"))["results"]) == 2


@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl"])
def test_deeply_nested_json_is_an_input_error(cli: Invoke, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("[" * 100_000, encoding="utf-8")
    result = cli("import", str(path), "--user", "u", "--no-infer")
    assert result.exit_code == 4, result.stderr
    assert "nested too deeply" in result.stderr


def test_large_messages_are_split_under_the_per_add_limit(cli: Invoke, tmp_path: Path) -> None:
    # 20 messages of 60 KB are over the engine's 512 KiB per add(): chunks split by size too.
    messages = [{"role": "user", "content": f"{i} " + "x" * 60_000} for i in range(20)]
    path = _write(tmp_path / "big.json", messages)
    assert json_out(cli("import", str(path), "--user", "u", "--no-infer", "--json"))["messages"] == 20


def test_bad_metadata_stops_the_import_before_any_write(cli: Invoke, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json", {"user_id": "u", "messages": MESSAGES})
    bad = _write(tmp_path / "bad.json", {"user_id": "u", "messages": MESSAGES, "metadata": {"k": "a\x00"}})
    result = cli("import", str(good), str(bad), "--no-infer")
    assert result.exit_code == 4, result.stderr
    assert "bad.json" in result.stderr
    assert stored(cli, "--user", "u") == []
