"""Deterministic stand-in content for generated replies, drawn from the request itself.

A rehearsal against the emulator used to store "example text" as a memory and hand mem0's
extraction ``{"reply": ...}``: nothing that came out resembled what went in, so a pipeline
that lost or mangled its input looked the same as one that worked. Generated replies now
echo the user's own sentences: a text reply quotes the last user message, string fields of
a structured reply take the user's sentences in order, and string lists take one sentence
each. That makes an extraction-shaped answer a faithful echo ("facts" = what the user said),
never an inference: no model runs, and the same request always gives the same reply.

Where the user's words are found, in order of preference:

* role-labelled lines of a transcript the client rendered into one message
  (``user: ...``, ``[2024-01-01 10:00 UTC] user: ...``): the user's lines only;
* JSON in the message (or in its last fenced block): its strings, those under a key that
  says "new" first (``new_facts``, ``new_messages``);
* otherwise the message text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from .tokens import estimate_text, message_text

__all__ = [
    "MAX_ITEMS",
    "fill_template",
    "fitting",
    "prompt_template",
    "quote",
    "source_sentences",
    "text_reply",
]

MAX_ITEMS = 8
"""At most this many sentences (and so list items) per generated reply."""

_USER_LINE = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?user(?:\s*\([^)]*\))?\s*:\s*(.*)$", re.IGNORECASE)
_ROLE_LINE = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:assistant|system|tool|agent)(?:\s*\([^)]*\))?\s*:", re.I)
_FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TEXT_KEYS = {
    "text",
    "content",
    "fact",
    "facts",
    "memory",
    "memories",
    "summary",
    "answer",
    "reply",
    "message",
}


def _last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return message_text(messages[-1]) if messages else ""


def _transcript_lines(text: str) -> list[str] | None:
    """The user's lines of a rendered transcript (continuation lines joined), or None if it is not one."""
    found: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        user = _USER_LINE.match(line)
        if user:
            current = [user.group(1).strip()]
            found.append("")
            found[-1] = " ".join(current)
        elif _ROLE_LINE.match(line):
            current = None
        elif current is not None and line.startswith((" ", "\t")) and line.strip():
            current.append(line.strip())
            found[-1] = " ".join(current)
        else:
            current = None
    return [f for f in found if f] or None


def _strings(value: Any, *, prefer_new: bool = True) -> list[str]:
    """String leaves of decoded JSON, those under a key that says "new" first."""
    if prefer_new and isinstance(value, dict):
        new = [v for k, v in value.items() if "new" in str(k).lower()]
        if new:
            found = _strings(new, prefer_new=False)
            if found:
                return found
    out: list[str] = []
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and not _is_text_key(key) and " " not in item:
                continue  # ids, roles, enum-like values are not the user's words
            out.extend(_strings(item, prefer_new=False))
    elif isinstance(value, list):
        for item in value:
            out.extend(_strings(item, prefer_new=False))
    return out


def _json_strings(text: str) -> list[str] | None:
    candidates = [*[m.group(1) for m in _FENCE.finditer(text)][::-1], text]
    for candidate in candidates:
        try:
            decoded = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(decoded, dict | list):
            found = [s for s in _strings(decoded) if s.strip()]
            if found:
                return found
    return None


def _split(texts: Sequence[str]) -> list[str]:
    out: list[str] = []
    for text in texts:
        for line in text.splitlines():
            for sentence in _SENTENCE_END.split(line.strip()):
                sentence = sentence.strip()
                if sentence and sentence not in out:
                    out.append(sentence)
    return out[:MAX_ITEMS]


def source_sentences(messages: Sequence[Any]) -> list[str]:
    """The user's own sentences in the request, in order (at most :data:`MAX_ITEMS`)."""
    text = _last_user_text(messages)
    lines = _transcript_lines(text)
    if lines is None:
        lines = _json_strings(text)
    if lines is None:
        lines = [re.sub(r"^\s*input\s*:\s*", "", text, flags=re.IGNORECASE)]
    return _split(lines)


def quote(sentences: Sequence[str], limit: int = 200) -> str:
    """The user's sentences as one quotation for a text reply, cut at ``limit`` characters."""
    said = " ".join(sentences)
    if len(said) > limit:
        said = said[: limit - 1].rstrip() + "…"
    return said


def text_reply(sentences: Sequence[str], name: str) -> str:
    """A generated text reply: who answers, then the user's sentences quoted."""
    said = quote(sentences)
    base = f"This is an emulated reply from {name}."
    return f'{base} You said: "{said}"' if said else base


def fitting(render: Callable[[list[str]], str], sentences: Sequence[str], room: int | None) -> str:
    """``render`` with as many sentences as fit in ``room`` tokens (none, if even one does not)."""
    for count in range(len(sentences), 0, -1):
        text = render(list(sentences[:count]))
        if room is None or estimate_text(text) <= room:
            return text
    return render([])


def _is_text_key(key: Any) -> bool:
    return str(key).lower() in _TEXT_KEYS


def _is_id_key(key: Any) -> bool:
    k = str(key).lower()
    return k in ("id", "ids", "index") or k.endswith(("_id", "_ids"))


_MARKER = re.compile(r"(output|json structure|json format|respond|return)[^{\n]*[:\n]", re.IGNORECASE)


def prompt_template(messages: Sequence[Any]) -> dict[str, Any] | None:
    """The richest example JSON object the instructions show as the expected output, if any.

    Prompts that ask for ``json_object`` usually show the shape they want ("Output:
    {"memory": [...]}"); following it gives the caller the keys it will read.
    """
    decoder = json.JSONDecoder()
    best: tuple[int, dict[str, Any]] | None = None
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user"):
            continue
        text = message_text(message)
        for marker in _MARKER.finditer(text):
            start = text.find("{", marker.end())
            if start < 0 or start - marker.end() > 40:
                continue
            try:
                found, _ = decoder.raw_decode(text, start)
            except ValueError:
                continue
            if isinstance(found, dict) and found:
                score = len(json.dumps(found))
                if best is None or score > best[0]:
                    best = (score, found)
    return best[1] if best else None


def fill_template(template: Any, sentences: Sequence[str], *, key: Any = None, index: int = 0) -> Any:
    """An instance shaped like the example ``template``, its text taken from ``sentences``.

    Lists get one item per sentence (the first example item as the pattern); text-like
    strings (long ones, or under keys such as ``text``/``fact``) take sentence ``index``; id
    strings become the item's index; other values (events, kinds, flags) keep the example's.
    """
    if isinstance(template, dict):
        return {k: fill_template(v, sentences, key=k, index=index) for k, v in template.items()}
    if isinstance(template, list):
        if not template or _is_id_key(key):
            return []  # links to ids the emulator cannot know
        pattern = template[0]
        count = max(len(sentences), 1)
        return [fill_template(pattern, sentences, key=key, index=i) for i in range(count)]
    if isinstance(template, str):
        if _is_id_key(key):
            return str(index)
        if sentences and (_is_text_key(key) or " " in template or template.startswith("<")):
            return sentences[index % len(sentences)]
        return template
    return template
