"""The embedder contract shared by the store, the memory engine and the benchmarks.

Vectors are float32 and L2-normalised so that every consumer can treat cosine
similarity as a plain inner product (the vector index relies on this).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["AsyncEmbedder", "Embedder", "aembed", "check_texts"]


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into unit vectors of one fixed dimension.

    ``name`` is persisted by the store: opening a store whose vectors came from a
    different embedder must fail rather than silently mix incomparable spaces.
    """

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Return a float32 array of shape ``[len(texts), dimension]``, each row of unit norm.

        An empty ``texts`` gives an array of shape ``[0, dimension]`` so callers need no
        special case.
        """
        ...


@runtime_checkable
class AsyncEmbedder(Protocol):
    """The async face of an embedder, for :class:`AsyncMemory`.

    Remote embedders implement it natively (awaiting HTTP); the local model is
    CPU-bound and implements it by running :meth:`Embedder.embed` in a worker
    thread, which is legitimate because onnxruntime releases the GIL.
    """

    name: str
    dimension: int

    async def aembed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Same contract as :meth:`Embedder.embed`."""
        ...


async def aembed(embedder: Embedder | AsyncEmbedder, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Embed from async code with whatever the embedder offers.

    Prefers a native ``aembed``; otherwise runs the blocking ``embed`` in a thread so
    the event loop is never stalled by model inference. (A plain attribute look-up, not
    ``isinstance`` against the runtime-checkable protocol, which walks the protocol's
    members on every call: this runs once per request in a server.)
    """
    native = getattr(embedder, "aembed", None)
    if native is not None:
        result: npt.NDArray[np.float32] = await native(texts)
        return result
    return await asyncio.to_thread(embedder.embed, list(texts))  # type: ignore[union-attr]


def check_texts(texts: Sequence[str], method: str) -> list[str]:
    """The texts given to `method` (``embed`` / ``aembed``) as a list, once each is a string
    (a single string is refused: it is a sequence of characters)."""
    if isinstance(texts, str):
        raise TypeError(f"{method}() takes a sequence of strings, not a single string: wrap it in a list")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return items
