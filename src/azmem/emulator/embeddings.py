"""Embeddings: request checks and deterministic vectors.

Vectors are derived from a SHA-3 hash of the input (text, or the token array's JSON), so the same
input always gives the same unit vector, on every run and machine; similar texts are *not* close.
A vector of `dimensions` is the first `dimensions` components of the full vector, renormalised, the
way text-embedding-3 shortening behaves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from typing import Any

from . import protocol
from .chat import RequestRejected
from .config import Deployment
from .tokens import estimate_input

MAX_INPUTS = 2048
_CACHE: dict[tuple[str, int], list[float]] = {}
_CACHE_LIMIT = 4096


def vector(item: Any, dimension: int) -> list[float]:
    """The unit vector for one input; `item` is a string or a token array."""
    key = item if isinstance(item, str) else json.dumps(item)
    cached = _CACHE.get((key, dimension))
    if cached is not None:
        return cached
    # SHAKE-256 is SHA-3's extendable output: any number of deterministic bytes from the input,
    # far faster than drawing from a seeded PRNG in Python.
    stream = hashlib.shake_256(key.encode("utf-8")).digest(4 * dimension)
    raw = [u / 2147483648.0 - 1.0 for u in struct.unpack(f"<{dimension}I", stream)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    out = [x / norm for x in raw]
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[(key, dimension)] = out
    return out


def encode_base64(values: list[float]) -> str:
    """Little-endian float32, as the service sends and the SDK decodes."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def parse_inputs(body: dict[str, Any], dep: Deployment) -> tuple[list[Any], int | None]:
    """The list of inputs and the requested dimensions, or `RequestRejected` as Azure would answer."""
    raw = body.get("input")
    if raw is None:
        raise RequestRejected(400, protocol.invalid_request("'input' is a required property", param="input"))
    items: list[Any]
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw)):
        items = [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        raise RequestRejected(
            400, protocol.invalid_request("'input' must be a string or an array", param="input")
        )
    if not items:
        raise RequestRejected(
            400, protocol.invalid_request("'input' : input must be a non-empty array", param="input")
        )
    if len(items) > MAX_INPUTS:
        raise RequestRejected(400, protocol.invalid_request(protocol.MSG_TOO_MANY_INPUTS))
    for item in items:
        if isinstance(item, str):
            if item == "":
                raise RequestRejected(
                    400, protocol.invalid_request("'$.input' is invalid. Please check the API reference.")
                )
        elif not (isinstance(item, list) and all(isinstance(x, int) for x in item)):
            raise RequestRejected(
                400, protocol.invalid_request("'$.input' is invalid. Please check the API reference.")
            )
        tokens = estimate_input(item)
        if tokens > (dep.context_window or 8192):
            raise RequestRejected(400, protocol.embedding_input_too_long(dep.context_window or 8192, tokens))
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not dep.supports_dimensions:
            raise RequestRejected(
                400, protocol.invalid_request("This model does not support specifying dimensions.")
            )
        full = dep.dimensions or 1536
        if not isinstance(dimensions, int) or dimensions < 1 or dimensions > full:
            raise RequestRejected(
                400,
                protocol.invalid_request(
                    f"The requested dimensions {dimensions} is not valid. It must be between 1 and {full}.",
                    param="dimensions",
                ),
            )
    encoding = body.get("encoding_format", "float")
    if encoding not in (None, "float", "base64"):
        raise RequestRejected(
            400,
            protocol.invalid_request(
                f"'{encoding}' is not one of ['float', 'base64'] - 'encoding_format'", param="encoding_format"
            ),
        )
    return items, dimensions


def prompt_tokens(items: list[Any]) -> int:
    return sum(estimate_input(item) for item in items)


def response_body(
    items: list[Any], dep: Deployment, dimensions: int | None, encoding: str | None, vectors: Any = None
) -> dict[str, Any]:
    """The list response; `vectors` (scripted) replaces the generated ones when given."""
    full = dep.dimensions or 1536
    data = []
    for index, item in enumerate(items):
        if vectors is not None:
            values = [float(x) for x in vectors[index]]
        else:
            # SHAKE output is a prefix stream: the first `dimensions` raw components are those of
            # the full vector, so normalising them equals shortening the full vector.
            values = vector(item, dimensions or full)
        embedding: Any = encode_base64(values) if encoding == "base64" else values
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = prompt_tokens(items)
    return {
        "object": "list",
        "data": data,
        "model": dep.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
