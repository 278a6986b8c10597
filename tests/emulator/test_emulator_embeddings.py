"""Embeddings: deterministic unit vectors, float and base64, dimensions, input forms, limits."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import openai
import pytest
from emulator_helpers import azure, raw, v1

from azmem.emulator import Emulator


def _norm(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


def test_sdk_default_base64_decodes_to_deterministic_unit_vectors(emulator: Emulator) -> None:
    with azure(emulator) as client:
        first = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
        again = client.embeddings.create(model="text-embedding-3-small", input="alpha")
    assert emulator.requests[0].json["encoding_format"] == "base64"
    alpha, beta = (d.embedding for d in first.data)
    assert len(alpha) == 1536
    assert _norm(alpha) == pytest.approx(1.0, abs=1e-5)
    assert alpha == again.data[0].embedding
    assert alpha != beta
    assert [d.index for d in first.data] == [0, 1]
    assert first.usage.prompt_tokens == first.usage.total_tokens == 3  # ceil(5/4) + ceil(4/4)


def test_float_and_base64_agree(emulator: Emulator) -> None:
    path = "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    _, _, as_float = raw(emulator, path, {"input": "same", "encoding_format": "float"})
    _, _, as_b64 = raw(emulator, path, {"input": "same", "encoding_format": "base64"})
    import json

    floats = json.loads(as_float)["data"][0]["embedding"]
    packed = base64.b64decode(json.loads(as_b64)["data"][0]["embedding"])
    decoded = list(struct.unpack(f"<{len(packed) // 4}f", packed))
    assert len(decoded) == len(floats) == 1536
    assert decoded == pytest.approx(floats, abs=1e-6)


@pytest.mark.parametrize(
    ("model", "size"), [("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536)]
)
def test_default_dimension_by_model(emulator: Emulator, model: str, size: int) -> None:
    with v1(emulator) as client:
        reply = client.embeddings.create(model=model, input="x")
    assert len(reply.data[0].embedding) == size
    assert reply.model == model


def test_dimensions_honoured_and_renormalised(emulator: Emulator) -> None:
    with azure(emulator) as client:
        short = client.embeddings.create(model="text-embedding-3-large", input="x", dimensions=256)
        full = client.embeddings.create(model="text-embedding-3-large", input="x")
    vec = short.data[0].embedding
    assert len(vec) == 256
    assert _norm(vec) == pytest.approx(1.0, abs=1e-5)
    # The shortened vector points the same way as the full vector's first 256 components.
    head = full.data[0].embedding[:256]
    assert sum(a * b for a, b in zip(vec, head, strict=True)) / _norm(head) == pytest.approx(1.0, abs=1e-5)


def test_dimensions_rejected_on_ada(emulator: Emulator) -> None:
    with azure(emulator) as client, pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=256)
    assert "does not support specifying dimensions" in str(info.value.body)


def test_token_array_inputs(emulator: Emulator) -> None:
    with azure(emulator) as client:
        single = client.embeddings.create(model="text-embedding-3-small", input=[1, 2, 3])
        many = client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]])
    assert len(single.data) == 1
    assert single.data[0].embedding == many.data[0].embedding
    assert many.usage.prompt_tokens == 5


def test_too_many_inputs(emulator: Emulator) -> None:
    with azure(emulator) as client, pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input=["x"] * 2049)
    assert "Too many inputs. The max number of inputs is 2048." in str(info.value.body)


def test_2048_inputs_accepted(emulator: Emulator) -> None:
    with azure(emulator) as client:
        reply = client.embeddings.create(
            model="text-embedding-3-small", input=[f"t{i}" for i in range(2048)], dimensions=8
        )
    assert len(reply.data) == 2048


def test_input_over_8192_tokens(emulator: Emulator) -> None:
    with azure(emulator) as client, pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input="abcd" * 8200)
    assert "maximum context length is 8192 tokens" in str(info.value.body)


def test_empty_string_rejected(emulator: Emulator) -> None:
    with azure(emulator) as client, pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-3-small", input=[""])


def test_scripted_vectors(emulator: Emulator) -> None:
    scripted: list[Any] = [[[0.6, 0.8]]]
    emulator.script("text-embedding-3-small", scripted)
    with azure(emulator) as client:
        reply = client.embeddings.create(model="text-embedding-3-small", input="x")
    assert reply.data[0].embedding == pytest.approx([0.6, 0.8])


def test_embeddings_on_chat_deployment(emulator: Emulator) -> None:
    with azure(emulator) as client, pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="gpt-4o", input="x")
    assert info.value.code == "OperationNotSupported"
