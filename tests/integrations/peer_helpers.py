"""Helpers for the peer tests: bag-of-words vectors and reading what the peers sent.

The emulator's own embeddings are hashes of the whole text, so no two different texts are
close, and the peers' searches would find only exact repeats. :func:`word_vector` is
deterministic and offline, and makes texts similar exactly when they share content words.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

DIMENSIONS = 1536
_STOP = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "does", "did", "do", "for", "from", "has", "have", "i", "in"}
    | {"is", "it", "its", "of", "on", "or", "the", "to", "was", "what", "where", "who"}
)


def word_vector(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """A unit vector: one hashed, signed component per distinct content word."""
    values = [0.0] * dimensions
    words = {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP} or {"<empty>"}
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        values[index] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embed_reply(request: dict[str, Any]) -> list[list[float]]:
    """An emulator script for an embedding deployment: word vectors for every input."""
    items = request["input"]
    texts = [items] if isinstance(items, str) else list(items)
    return [word_vector(str(t), request.get("dimensions") or DIMENSIONS) for t in texts]


def schema_name(request: dict[str, Any] | None) -> str | None:
    """The json_schema name of a chat request (the response model's class name), if any."""
    fmt = (request or {}).get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        name = fmt.get("json_schema", {}).get("name")
        return str(name) if name else None
    return None
