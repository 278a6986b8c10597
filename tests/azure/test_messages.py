"""Message types, normalisation without mutation, input cleaning and image parts."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessage

from azmem.azure.messages import (
    AssistantMessage,
    ImagePart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
    clean_text,
    image_part,
    normalize_messages,
    to_wire,
)
from azmem.errors import InvalidInputError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def test_a_string_is_one_user_message() -> None:
    assert normalize_messages("hi") == [UserMessage(content="hi")]


def test_every_role_is_kept_in_order_with_tool_links() -> None:
    conversation: list[Any] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "assistant", "content": "Sunny in Oslo."},
        {"role": "developer", "content": "dev note"},
    ]
    msgs = normalize_messages(conversation)
    assert [type(m) for m in msgs] == [
        SystemMessage,
        UserMessage,
        AssistantMessage,
        ToolMessage,
        AssistantMessage,
        SystemMessage,
    ]
    wire = to_wire(msgs)
    assert [w["role"] for w in wire] == ["system", "user", "assistant", "tool", "assistant", "developer"]
    assert wire[2]["tool_calls"][0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
    }
    assert wire[3] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
    assert msgs[2].tool_calls[0].arguments_json() == {"city": "Oslo"}  # type: ignore[union-attr]


def test_normalisation_never_mutates_or_aliases_the_callers_list() -> None:
    original: list[Any] = [{"role": "user", "content": "hello"}, UserMessage(content="again")]
    snapshot = copy.deepcopy(original)
    out = normalize_messages(original)
    out.append(UserMessage(content="appended"))
    assert original == snapshot
    assert out is not original


def test_sdk_message_objects_are_accepted() -> None:
    sdk = ChatCompletionMessage(role="assistant", content="from the sdk")
    assert normalize_messages([sdk]) == [AssistantMessage(content="from the sdk")]


@pytest.mark.parametrize("bad", [[{"role": "wizard", "content": "x"}], [{"content": "no role"}], [42], []])
def test_invalid_messages_raise_invalid_input(bad: list[Any]) -> None:
    with pytest.raises(InvalidInputError):
        normalize_messages(bad)


def test_a_single_dict_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidInputError, match="Wrap the message"):
        normalize_messages({"role": "user", "content": "x"})  # type: ignore[arg-type]


def test_cleaning_drops_control_zero_width_and_surrogates_but_keeps_layout() -> None:
    dirty = "a\x00b\u200bc\u200d\ufeffd\x07e\ud800f\x7f\tg\nh\r\n"
    assert clean_text(dirty) == "abcdef\tg\nh\r\n"
    assert clean_text(b"ok \xff\xfe bytes") == "ok  bytes"
    assert clean_text("naïve café 日本") == "naïve café 日本"


def test_cleaning_happens_on_the_wire_not_in_the_callers_object() -> None:
    msg = UserMessage(content="x\u200by")
    assert to_wire([msg])[0]["content"] == "xy"
    assert msg.content == "x\u200by"


def test_image_from_url_bytes_and_file(tmp_path: Path) -> None:
    url = image_part("https://example.com/cat.png", detail="low")
    assert url == ImagePart(url="https://example.com/cat.png", detail="low")
    from_bytes = image_part(PNG, detail="high")
    assert from_bytes.url == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert from_bytes.detail == "high"
    # The content decides, not a misleading file name.
    path = tmp_path / "photo.png"
    path.write_bytes(JPEG)
    assert image_part(path).url.startswith("data:image/jpeg;base64,")
    assert image_part(str(path)).url.startswith("data:image/jpeg;base64,")


def test_image_type_from_name_or_argument_when_content_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "scan.bmp"
    path.write_bytes(b"BM" + b"\x00" * 10)
    assert image_part(path).url.startswith("data:image/bmp;base64,")
    assert image_part(b"???", mime_type="image/tiff").url.startswith("data:image/tiff;base64,")
    with pytest.raises(InvalidInputError, match="mime_type"):
        image_part(b"not an image")


def test_image_from_a_missing_file_says_what_it_accepts(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="neither"):
        image_part(tmp_path / "nope.png")


def test_vision_parts_on_the_wire() -> None:
    msg = UserMessage(content=(TextPart(text="what is\u200b this?"), image_part(PNG, detail="low")))
    wire = to_wire([msg])[0]
    assert wire["content"][0] == {"type": "text", "text": "what is this?"}
    assert wire["content"][1]["type"] == "image_url"
    assert wire["content"][1]["image_url"]["detail"] == "low"
    # And the wire shape reads back into the same typed message.
    assert normalize_messages([wire])[0].content[1].detail == "low"  # type: ignore[union-attr]


def test_messages_are_immutable() -> None:
    msg = UserMessage(content="x")
    with pytest.raises(Exception, match="frozen"):
        msg.content = "y"  # type: ignore[misc]
    call = ToolCall(id="c", name="f")
    assert call.arguments_json() == {}
