"""Input rules of the graph API, checked before anything is read, called or written.

Every check raises `InvalidInputError` naming the argument, so a bad call fails the
same way from Python, the CLI and (later) the server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import get_args

from azmem.errors import InvalidInputError, PayloadTooLargeError
from azmem.graph.model import EpisodeSource
from azmem.graph.queries import to_utc

__all__ = [
    "MAX_CONTENT_BYTES",
    "check_content",
    "check_group_id",
    "check_group_ids",
    "check_id",
    "check_limit",
    "check_source",
    "check_time",
]

#: One episode's content: bounds the extraction prompt (about 32k tokens).
MAX_CONTENT_BYTES = 128 * 1024
MAX_ID_CHARS = 255
MAX_LIMIT = 1000


def check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string")
    if len(value) > MAX_ID_CHARS or any(ord(ch) < 32 for ch in value):
        raise InvalidInputError(f"{what} must be at most {MAX_ID_CHARS} printable characters")
    return value


def check_group_id(value: object) -> str:
    return check_id(value, "group_id")


def check_group_ids(value: object) -> list[str]:
    if isinstance(value, str):
        return [check_group_id(value)]
    if not isinstance(value, Sequence) or not value:
        raise InvalidInputError("group_ids must be a non-empty list of group ids")
    return list(dict.fromkeys(check_group_id(v) for v in value))


def check_source(value: object) -> EpisodeSource:
    allowed = get_args(EpisodeSource)
    if value not in allowed:
        raise InvalidInputError(f"source must be one of {', '.join(allowed)}, got {value!r}")
    return value  # type: ignore[return-value]


def check_content(value: object, source: EpisodeSource) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("an episode's content must be a non-empty string")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_CONTENT_BYTES:
        raise PayloadTooLargeError(
            f"episode content is {size} bytes; the limit is {MAX_CONTENT_BYTES}",
            suggestion="split it into several episodes (add_episodes keeps their order)",
        )
    if source == "json":
        try:
            json.loads(value)
        except ValueError as exc:
            raise InvalidInputError(f"source='json' but the content is not JSON: {exc}") from None
    return value


def check_limit(value: object, what: str = "limit") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidInputError(f"{what} must be an integer from 1 to {MAX_LIMIT}, got {value!r}")
    return value


def check_time(value: object, what: str) -> datetime | None:
    return to_utc(value, what)
