"""The commands that call the chat deployment (add --infer, import --infer, query), on the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from azmem.emulator import Emulator, Fault

from .conftest import Invoke, json_out


def _config(tmp_path: Path, emulator: Emulator) -> str:
    path = tmp_path / "azmem.yaml"
    settings: dict[str, Any] = {
        "endpoint": emulator.endpoint,
        "api_key": emulator.api_key,
        "chat": "gpt-4o",
        "retry": {"max_attempts": 1},
    }
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return str(path)


def _facts(*texts: str) -> str:
    return json.dumps({"facts": [{"text": t, "subject": "user"} for t in texts]})


def _decisions(*items: tuple[int, str, int | None, str]) -> str:
    return json.dumps(
        {"decisions": [{"fact": f, "event": e, "target": t, "text": x} for f, e, t, x in items]}
    )


def test_add_infers_facts_and_shows_updates(cli: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    config = _config(tmp_path, emulator)
    emulator.script("gpt-4o", [_facts("Is vegetarian"), _decisions((0, "ADD", None, "Is vegetarian"))])
    first = json_out(cli("add", "I stopped eating meat", "--user", "alex", "--config", config, "--json"))
    assert [(e["event"], e["memory"]) for e in first["results"]] == [("ADD", "Is vegetarian")]

    emulator.script("gpt-4o", [_facts("Eats fish again"), _decisions((0, "UPDATE", 0, "Is pescatarian"))])
    second = cli("add", "I eat fish again now", "--user", "alex", "--config", config)
    assert second.exit_code == 0, second.stderr
    assert "UPDATE" in second.stdout
    assert "Is pescatarian" in second.stdout
    assert "(was: Is vegetarian)" in second.stdout

    memory_id = first["results"][0]["id"]
    history = json_out(cli("history", memory_id, "--json"))["results"]
    assert [(h["event"], h["new_memory"]) for h in history] == [
        ("ADD", "Is vegetarian"),
        ("UPDATE", "Is pescatarian"),
    ]


def test_a_service_failure_mid_add_exits_5_and_stores_nothing(
    cli: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    config = _config(tmp_path, emulator)
    emulator.fault("gpt-4o", Fault.server_error(503))
    result = cli("add", "I like tea", "--user", "alex", "--config", config)
    assert result.exit_code == 5
    assert "Error:" in result.stderr
    assert "Fix:" in result.stderr
    assert json_out(cli("list", "--user", "alex", "--json"))["results"] == []


def test_import_with_infer_reports_the_events(cli: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    config = _config(tmp_path, emulator)
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps(
            {
                "user_id": "bo",
                "messages": [
                    {"role": "user", "content": "I live in Oslo and I have two cats."},
                    {"role": "assistant", "content": "Nice!"},
                ],
            }
        ),
        encoding="utf-8",
    )
    emulator.script(
        "gpt-4o",
        [
            _facts("Lives in Oslo", "Has two cats"),
            _decisions((0, "ADD", None, "Lives in Oslo"), (1, "ADD", None, "Has two cats")),
        ],
    )
    stats = json_out(cli("import", str(chat), "--infer", "--config", config, "--json"))
    assert stats["messages"] == 2
    assert stats["events"] == {"ADD": 2, "UPDATE": 0, "DELETE": 0}
    stored = {m["memory"] for m in json_out(cli("list", "--user", "bo", "--json"))["results"]}
    assert stored == {"Lives in Oslo", "Has two cats"}


def test_query_answers_with_the_cited_memories(cli: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    cli("add", "Biscuit is my beagle", "--user", "q", "--no-infer")
    cli("add", "I work in Rotterdam", "--user", "q", "--no-infer")
    no_chat = cli("query", "what is my dog called?", "--user", "q")
    assert no_chat.exit_code == 0
    assert "Biscuit" in no_chat.stdout  # the retrieved memories, without an answer

    config = _config(tmp_path, emulator)
    emulator.script("gpt-4o", [json.dumps({"answer": "Your dog is called Biscuit.", "used": [0]})])
    result = cli("query", "what is my dog called?", "--user", "q", "--config", config, "--limit", "1")
    assert result.exit_code == 0, result.stderr
    assert "Your dog is called Biscuit." in result.stdout
    assert "based on" in result.stdout
    assert "Rotterdam" not in result.stdout

    emulator.script("gpt-4o", [json.dumps({"answer": "Biscuit.", "used": [0]})])
    data = json_out(cli("query", "dog?", "--user", "q", "--config", config, "--limit", "1", "--json"))
    assert data["answer"] == "Biscuit."
    assert data["answered"] is True
    assert data["cited_ids"] == [data["memories"][0]["id"]]
