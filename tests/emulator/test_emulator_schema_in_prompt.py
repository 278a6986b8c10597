"""json_object with the schema in the prompt (the client's fallback from json_schema) follows that schema."""

from __future__ import annotations

import json
from typing import Any, Literal

import openai
from pydantic import BaseModel

from azmem.azure.llm import LLMClient
from azmem.azure.settings import AzmemSettings
from azmem.emulator import Emulator


class Fact(BaseModel):
    text: str
    subject: Literal["user", "agent"]


class Facts(BaseModel):
    facts: list[Fact]
    confidence: float


def test_an_old_api_version_still_gets_structured_output_through_the_real_client(emulator: Emulator) -> None:
    chat = {"endpoint": emulator.endpoint, "deployment": "gpt-4o", "api_key": emulator.api_key}
    llm = LLMClient(AzmemSettings.load(chat={**chat, "api_version": "2024-02-01"}))
    try:
        for _ in range(2):  # the first call falls back; the second goes straight to json_object
            result = llm.generate("Extract the facts: I like tea.", response_model=Facts)
            assert isinstance(result.parsed, Facts)
    finally:
        llm.close()
    formats = [(r.json or {}).get("response_format", {}).get("type") for r in emulator.requests_for("gpt-4o")]
    assert "json_object" in formats
    assert all(r.status in (200, 400) for r in emulator.requests_for("gpt-4o"))


def test_json_object_without_a_schema_in_the_prompt_is_still_an_object(emulator: Emulator) -> None:
    with openai.AzureOpenAI(**emulator.client_kwargs()) as client:
        reply = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Answer in JSON."}],
            response_format={"type": "json_object"},
        )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_the_schema_stated_in_a_system_message_shapes_the_reply(emulator: Emulator) -> None:
    schema: dict[str, Any] = Facts.model_json_schema()
    system = f"Respond with a single JSON object.\nJSON schema: {json.dumps(schema)}"
    with openai.AzureOpenAI(**emulator.client_kwargs()) as client:
        reply = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "system", "content": system}, {"role": "user", "content": "I like tea"}],
            response_format={"type": "json_object"},
        )
    Facts.model_validate_json(reply.choices[0].message.content or "")
