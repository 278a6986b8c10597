"""The I/O a graph flow yields and the drivers (`Graph`, `AsyncGraph`) perform.

The memory engine's pattern (`azmem.memory.steps`): a flow is a generator that yields
these steps and receives each result through ``send``; an exception raised while
performing a step is thrown back into the flow, so a flow can react to a conflict.
`Embed` is the memory engine's own step (same meaning, same driver code).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from pydantic import BaseModel

from azmem.azure.request import ModelSize
from azmem.graph.store.protocol import GraphStore
from azmem.memory.prompts import Prompt
from azmem.memory.steps import Embed

__all__ = ["Chat", "Embed", "Flow", "OpenStore", "Step", "StoreCall"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Chat:
    """One structured LLM call; the driver sends back the parsed ``response_model`` instance."""

    prompt: Prompt
    messages: list[dict[str, str]]
    response_model: type[BaseModel]
    model_size: ModelSize
    group_id: str


@dataclass(frozen=True)
class StoreCall(Generic[T]):
    """Run ``fn(store)``; the async driver runs it on the graph's own store thread."""

    fn: Callable[[GraphStore], T]


@dataclass(frozen=True)
class OpenStore:
    """Bind the store to the embedder before the first vector read or write."""


Step: TypeAlias = Embed | Chat | StoreCall[Any] | OpenStore
Flow: TypeAlias = Generator[Step, Any, R]
