"""Token estimates made before sending, so the limiter can keep a deployment under its quota.

tiktoken needs its encodings from the network on first use, which breaks offline and in
locked-down containers, so the estimate is a heuristic instead: about four characters per
token over the message text, plus a fixed overhead per message (role, separators) and per
image. The service reports the real count afterwards; :class:`EstimateCorrector` learns the
ratio between the two so later estimates drift towards the truth for this workload.

The service counts ``prompt + max_tokens`` against the tokens-per-minute quota when a
request arrives, so a request's reservation includes its output budget too.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "EstimateCorrector", "estimate_prompt_tokens"]

CHARS_PER_TOKEN = 4.0
PER_MESSAGE_OVERHEAD = 4
PER_REQUEST_OVERHEAD = 3
PER_IMAGE_TOKENS = 765  # a 1024x1024 "high" detail image; "low" detail is 85


def _text_of(content: Any) -> tuple[int, int]:
    """Characters of text and number of images in one message's content."""
    if content is None:
        return 0, 0
    if isinstance(content, str):
        return len(content), 0
    chars = images = 0
    if isinstance(content, Sequence):
        for part in content:
            if isinstance(part, Mapping):
                kind = part.get("type")
                if kind == "text":
                    chars += len(str(part.get("text") or ""))
                elif kind in ("image_url", "input_image", "image"):
                    images += 1
            elif isinstance(part, str):
                chars += len(part)
    return chars, images


def estimate_prompt_tokens(messages: str | Sequence[Any], *, extra_chars: int = 0) -> int:
    """Estimate prompt tokens for chat messages (dicts or objects with ``role``/``content``).

    ``extra_chars`` covers text sent outside the messages (a JSON schema, tool definitions).
    """
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    chars = extra_chars
    images = 0
    for message in messages:
        if isinstance(message, Mapping):
            content = message.get("content")
            chars += len(str(message.get("name") or ""))
            for call in message.get("tool_calls") or ():
                chars += len(str(call))
        else:
            content = getattr(message, "content", None)
        c, i = _text_of(content)
        chars += c
        images += i
    text_tokens = math.ceil(chars / CHARS_PER_TOKEN)
    return (
        text_tokens + PER_MESSAGE_OVERHEAD * len(messages) + PER_REQUEST_OVERHEAD + PER_IMAGE_TOKENS * images
    )


class EstimateCorrector:
    """Learns reported/estimated prompt tokens as an EWMA, so a systematic bias disappears.

    Kept per process: the bias is a property of the workload's language and format, not of a
    deployment, and one shared ratio converges fastest.
    """

    def __init__(self, alpha: float = 0.2, *, lower: float = 0.25, upper: float = 4.0) -> None:
        self._alpha = alpha
        self._lower = lower
        self._upper = upper
        self._ratio = 1.0
        self._lock = threading.Lock()

    @property
    def ratio(self) -> float:
        return self._ratio

    def correct(self, estimate: int) -> int:
        return max(1, math.ceil(estimate * self._ratio))

    def observe(self, estimated: int, reported: int) -> None:
        """Feed the raw (uncorrected) estimate and the prompt tokens the service reported."""
        if estimated <= 0 or reported <= 0:
            return
        sample = min(self._upper, max(self._lower, reported / estimated))
        with self._lock:
            self._ratio += self._alpha * (sample - self._ratio)
