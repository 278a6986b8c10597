"""The other half of `protocol.check_texts`: what came back from an embedder, checked once.

The memory engine and the graph take an embedder's answer row by row, zipped with the
texts that were sent; an answer of the wrong shape would pair a text with another
text's vector, or drop some silently. So every caller checks the same thing here
before using a row. A wrong shape is the embedder's fault, not the caller's input, hence
`RuntimeError` rather than `InvalidInputError`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["check_rows"]


def check_rows(value: object, n: int) -> npt.NDArray[np.float32]:
    """``value`` as a float32 matrix with one row per text sent (``n``), or `RuntimeError`."""
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise RuntimeError(f"embedder returned shape {arr.shape} for {n} texts")
    return arr
