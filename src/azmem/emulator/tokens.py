"""Token estimates without a tokenizer.

The emulator needs token counts for `usage`, the context-window check and TPM accounting. Real
counts need tiktoken and the model's encoding; an estimate of one token per four characters (at
least one per word-ish chunk, rounded up) is close enough for English text and keeps the emulator
dependency-free and deterministic. Clients must not expect the emulator's counts to equal Azure's.
"""

from __future__ import annotations

import json
import math
from typing import Any

PER_MESSAGE_OVERHEAD = 3
REPLY_PRIMING = 3


def estimate_text(text: str) -> int:
    if not text:
        return 0
    return max(1, math.ceil(len(text) / 4))


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict):
                if part.get("type") == "text":
                    parts.append(str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    parts.append("x" * 340)  # ~85 tokens, the low-detail image cost
            elif isinstance(part, str):
                parts.append(part)
        return " ".join(parts)
    return json.dumps(content)


def message_text(message: Any) -> str:
    """All the text of one chat message that the model reads (content, tool calls, names)."""
    if not isinstance(message, dict):
        return str(message)
    text = _content_text(message.get("content"))
    if message.get("tool_calls"):
        text += json.dumps(message["tool_calls"])
    if message.get("name"):
        text += str(message["name"])
    return text


def estimate_messages(messages: list[Any], extra: Any = None) -> int:
    """Prompt tokens for a chat request; `extra` (tools, schema) is counted as its JSON text."""
    total = REPLY_PRIMING
    for message in messages:
        total += PER_MESSAGE_OVERHEAD + estimate_text(message_text(message))
    if extra:
        total += estimate_text(json.dumps(extra))
    return total


def estimate_input(item: Any) -> int:
    """Tokens of one embeddings input: a string, or a token array (its length)."""
    if isinstance(item, str):
        return estimate_text(item)
    if isinstance(item, list):
        return len(item)
    return estimate_text(str(item))
