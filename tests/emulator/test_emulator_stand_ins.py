"""Generated replies are deterministic stand-ins drawn from the request, not "example text".

A rehearsal against the emulator must show whether the user's words made it through a
pipeline: azmem's own ``add`` stored "example text" and mem0's extraction got
``{"reply": ...}``, whatever was said. Now the user's sentences come back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
from emulator_helpers import azure
from pydantic import BaseModel

from azmem.emulator import Emulator
from azmem.memory import Memory

SAID = "I moved to Berlin last year. I love hiking in the Alps."


class Facts(BaseModel):
    facts: list[str]


def test_text_replies_quote_the_user(emulator: Emulator) -> None:
    with azure(emulator) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": SAID}])
    assert reply.choices[0].message.content == f'This is an emulated reply from gpt-4o. You said: "{SAID}"'


def test_structured_replies_echo_each_sentence(emulator: Emulator) -> None:
    with azure(emulator) as client:
        parsed = client.chat.completions.parse(
            model="gpt-4o", messages=[{"role": "user", "content": SAID}], response_format=Facts
        )
    assert parsed.choices[0].message.parsed == Facts(
        facts=["I moved to Berlin last year.", "I love hiking in the Alps."]
    )


def test_only_the_users_lines_of_a_transcript_are_echoed(emulator: Emulator) -> None:
    transcript = (
        "[2024-05-01 10:00 UTC (Wednesday)] user: My sister is called Ana.\n"
        "[2024-05-01 10:01 UTC (Wednesday)] assistant: Nice name!\n"
        "user: She lives in Porto."
    )
    with azure(emulator) as client:
        parsed = client.chat.completions.parse(
            model="gpt-4o", messages=[{"role": "user", "content": transcript}], response_format=Facts
        )
    assert parsed.choices[0].message.parsed == Facts(
        facts=["My sister is called Ana.", "She lives in Porto."]
    )


def test_json_object_follows_the_example_output_in_the_prompt(emulator: Emulator) -> None:
    """mem0 2.2.1's extraction asks for json_object with its own prompt and an example output."""
    from mem0.configs.prompts import ADDITIVE_EXTRACTION_PROMPT, generate_additive_extraction_prompt

    user = generate_additive_extraction_prompt(
        existing_memories=[], new_messages=f"user: {SAID}\nassistant: Ok\n"
    )
    with azure(emulator) as client:
        reply = client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "system", "content": ADDITIVE_EXTRACTION_PROMPT},
                {"role": "user", "content": user},
            ],
            response_format={"type": "json_object"},
        )
    data = json.loads(reply.choices[0].message.content or "")
    assert data == {
        "memory": [
            {"id": "0", "text": "I moved to Berlin last year."},
            {"id": "1", "text": "I love hiking in the Alps."},
        ]
    }


def test_the_same_request_gives_the_same_reply(emulator: Emulator) -> None:
    def ask(client: openai.AzureOpenAI) -> Any:
        return (
            client.chat.completions.parse(
                model="gpt-4o", messages=[{"role": "user", "content": SAID}], response_format=Facts
            )
            .choices[0]
            .message.parsed
        )

    with azure(emulator) as client:
        assert ask(client) == ask(client)


def test_a_memory_rehearsal_stores_what_the_user_said(emulator: Emulator, tmp_path: Path) -> None:
    config = {
        "endpoint": emulator.endpoint,
        "api_key": emulator.api_key,
        "chat": "gpt-4o",
        "embedding": "text-embedding-3-small",
        "embedder": "azure",
        "store": {"path": tmp_path / "memory.db"},
    }
    with Memory(config=config) as memory:
        memory.add(SAID, user_id="u1")
        stored = sorted(item["memory"] for item in memory.get_all(user_id="u1")["results"])
    assert stored == ["I love hiking in the Alps.", "I moved to Berlin last year."]
    assert not any("example" in text for text in stored)
