"""Input checks run before any write, so that bad input never leaves half a batch behind.

Decisions (same for every store):
* NUL characters are rejected everywhere (text, metadata keys and strings, scope ids):
  FTS5 tokenizers and several SQLite string functions stop at NUL, so a stored NUL
  would make a memory partly unsearchable.
* Lone surrogates (possible in a Python str, never valid UTF-8) are rejected.
* A memory's text is at most MAX_MEMORY_BYTES of UTF-8: memories are facts or single
  messages, and the embedder only reads the first ~256 tokens anyway.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.errors import InvalidInputError
from azmem.stores.models import Scope

MAX_MEMORY_BYTES = 64 * 1024
MAX_METADATA_BYTES = 64 * 1024
MAX_ID_CHARS = 256
MAX_LIST_LIMIT = 10_000  # a page of list(), a batch of iter_all() or of an export


def check_text(value: object, what: str, *, max_bytes: int | None = None, allow_blank: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    if not allow_blank and not value.strip():
        raise InvalidInputError(f"{what} is empty")
    nul = value.find("\x00")
    if nul >= 0:
        raise InvalidInputError(
            f"{what} contains a NUL character at position {nul}",
            suggestion="strip control characters before storing",
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} is not valid Unicode: lone surrogate at position {exc.start}",
            suggestion="decode input bytes with errors='replace' before passing them in",
        ) from None
    if max_bytes is not None and size > max_bytes:
        raise InvalidInputError(
            f"{what} is {size:,} bytes of UTF-8; the limit is {max_bytes:,}",
            suggestion="split long text into several memories (or let extraction summarise it)",
        )
    return value


def check_optional_id(value: object, what: str) -> str | None:
    if value is None:
        return None
    text = check_text(value, what)
    if len(text) > MAX_ID_CHARS:
        raise InvalidInputError(f"{what} is longer than {MAX_ID_CHARS} characters")
    return text


def check_scope(scope: object, *, for_write: bool) -> Scope:
    if not isinstance(scope, Scope):
        raise InvalidInputError(f"scope must be a Scope, got {type(scope).__name__}")
    for name, value in scope.as_dict().items():
        check_optional_id(value, name)
    if for_write and scope.is_empty():
        raise InvalidInputError(
            "at least one of user_id, agent_id or run_id is required",
            suggestion="pass user_id='...' (or agent_id / run_id) to scope the memory",
        )
    return scope


def encode_metadata(metadata: object) -> str:
    """Canonical JSON text for the metadata column; rejects what JSON cannot round-trip."""
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    _walk(metadata, "metadata", depth=0)
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"metadata is not JSON-serialisable: {exc}",
            suggestion="use strings, numbers, booleans, None, lists and dicts (dates as ISO strings)",
        ) from None
    if len(text.encode("utf-8")) > MAX_METADATA_BYTES:
        raise InvalidInputError(f"metadata is larger than {MAX_METADATA_BYTES:,} bytes as JSON")
    return text


def _walk(value: Any, where: str, depth: int) -> None:
    if depth > 32:
        raise InvalidInputError(f"{where} is nested deeper than 32 levels")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"{where} keys must be strings, got {k!r}")
            check_text(k, f"{where} key {k!r:.40}", allow_blank=True)
            _walk(v, f"{where}[{k!r:.40}]", depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _walk(v, f"{where}[{i}]", depth + 1)
    elif isinstance(value, str):
        check_text(value, where, allow_blank=True)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"{where} is {value!r}; JSON has no NaN or infinity")


def check_vector(
    vector: object, dimension: int, what: str = "vector", *, normalise: bool = True
) -> npt.NDArray[np.float32]:
    """float32, shape (dimension,), finite, non-zero; returned L2-normalised unless `normalise`
    is off (a copy keeps a stored vector's exact bits)."""
    if vector is None:
        raise InvalidInputError(f"{what} is required")
    try:
        arr = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be a sequence of numbers") from None
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != (dimension,):
        raise InvalidInputError(
            f"{what} has shape {arr.shape}; the store's embedder makes vectors of dimension {dimension}"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{what} contains NaN or infinity")
    norm = float(np.linalg.norm(arr))
    if norm == 0.0:
        raise InvalidInputError(f"{what} is all zeros; it has no direction to compare")
    return (arr / norm).astype(np.float32) if normalise else arr


def check_limit(value: object, what: str, *, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{what} must be an integer, got {type(value).__name__}")
    if not 1 <= value <= maximum:
        raise InvalidInputError(f"{what} must be between 1 and {maximum}, got {value}")
    return value
