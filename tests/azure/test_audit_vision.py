"""Audit: the role's ``vision_detail`` and ``capabilities.vision`` settings, on the wire.

``vision_detail`` is the detail of every image part that did not choose one (the caller's
message objects are left as they were); a deployment whose resolved capabilities say it
has no vision is refused images before anything is sent. Sync and async, generate and
stream, against the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llm_helpers import Factory, chat_requests, factories

from azmem.azure.messages import ImagePart, TextPart, UserMessage, image_part
from azmem.errors import InvalidInputError

PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


def _sent_details(emu: Any) -> list[str | None]:
    (sent,) = chat_requests(emu)
    return [
        part["image_url"].get("detail")
        for message in sent.json["messages"]
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    ]


def _call(llm: Any, how: str, messages: Any) -> None:
    if how == "generate":
        llm.generate(messages)
    else:
        assert llm.stream(messages)


@pytest.mark.parametrize("how", ["generate", "stream"])
def test_vision_detail_is_the_default_detail_of_image_parts(make_llm: Factory, how: str) -> None:
    emu = make_llm.emu
    llm = make_llm(chat_kw={"vision_detail": "low"})
    as_dict = {"type": "image_url", "image_url": {"url": PNG}}
    message = UserMessage(content=(TextPart(text="what is this?"), ImagePart(url=PNG), image_part(PNG)))
    _call(llm, how, [message, {"role": "user", "content": [as_dict]}])
    assert _sent_details(emu) == ["low", "low", "low"]
    # the caller's objects are untouched
    part = message.content[1]
    assert isinstance(part, ImagePart)
    assert part.detail == "auto"
    assert "detail" not in part.model_fields_set
    assert as_dict == {"type": "image_url", "image_url": {"url": PNG}}


def test_an_explicit_detail_wins_over_vision_detail(make_llm: Factory) -> None:
    emu = make_llm.emu
    llm = make_llm(chat_kw={"vision_detail": "low"})
    message = UserMessage(
        content=(ImagePart(url=PNG, detail="high"), image_part(PNG, detail="auto"), ImagePart(url=PNG))
    )
    as_dict = {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}}
    llm.generate([message, {"role": "user", "content": [as_dict]}])
    assert _sent_details(emu) == ["high", "auto", "low", "high"]


def test_without_vision_detail_images_go_as_auto(make_llm: Factory) -> None:
    emu = make_llm.emu
    make_llm().generate([UserMessage(content=(ImagePart(url=PNG),))])
    assert _sent_details(emu) == ["auto"]


@pytest.mark.parametrize("how", ["generate", "stream"])
def test_images_for_a_deployment_without_vision_are_refused_before_sending(
    make_llm: Factory, how: str
) -> None:
    emu = make_llm.emu
    llm = make_llm(chat_kw={"capabilities": {"vision": False}})
    with pytest.raises(InvalidInputError) as info:
        _call(llm, how, [UserMessage(content=(TextPart(text="look"), ImagePart(url=PNG)))])
    assert "'gpt-4o'" in str(info.value)
    assert "image" in str(info.value)
    assert emu.requests == [], "nothing was sent"


def test_a_deployment_without_vision_still_takes_text(make_llm: Factory) -> None:
    emu = make_llm.emu
    llm = make_llm(chat_kw={"capabilities": {"vision": False}})
    llm.generate([UserMessage(content=(TextPart(text="no images here"),))])
    assert len(chat_requests(emu)) == 1


def test_a_legacy_model_has_no_vision_by_default(make_llm: Factory) -> None:
    """The capability resolved from the model name (gpt-35-turbo), not only an explicit setting."""
    llm = make_llm(chat_kw={"model": "gpt-35-turbo"})
    with pytest.raises(InvalidInputError, match="does not accept image input"):
        llm.generate([UserMessage(content=(ImagePart(url=PNG),))])
    assert make_llm.emu.requests == []
