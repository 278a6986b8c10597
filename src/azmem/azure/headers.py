"""What Azure OpenAI's response headers tell us: how long to wait, and which ids to quote to support."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["debug_headers", "parse_retry_after"]

_DEBUG_HEADERS = ("apim-request-id", "x-request-id", "x-ms-region", "x-ms-client-request-id")


def debug_headers(headers: Mapping[str, str] | Any) -> dict[str, str]:
    """The request-id and region headers worth quoting to Azure support."""
    out: dict[str, str] = {}
    if headers is None:
        return out
    for name in _DEBUG_HEADERS:
        value = headers.get(name)
        if value:
            out[name] = str(value)
    return out


def parse_retry_after(headers: Mapping[str, str] | Any, *, now: float | None = None) -> float | None:
    """Seconds the service asked us to wait, or None when it gave no usable hint.

    ``retry-after-ms`` wins over ``retry-after``; the latter may be seconds or an HTTP date.
    Zero, negative, non-finite and unparsable values are "no hint" (field reports show
    ``-1`` and ``0``), which lets the policy fall back to its own backoff.
    """
    if headers is None:
        return None
    ms = _positive_float(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _positive_float(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return delta if delta > 0 else None


def _positive_float(raw: Any) -> float | None:
    if raw is None:
        return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return value
