"""How one ``embed`` call's texts become requests: the limits, the token estimate, and the
long-input policy that splits, cuts or refuses an input over the model's per-input limit.

Apart from :mod:`azmem.azure.embedder` because all of it is pure (no client, no I/O), so
the sync and async embedders share it and tests can pin the splitting without a service.

An input over the model's per-input token limit follows the role's ``long_input`` policy
(:data:`LongInputPolicy`): ``error`` (the default) fails the call naming the input,
``truncate`` embeds the part that fits, ``chunk`` embeds it in pieces and averages their
vectors. Pieces are cut by :func:`estimate_tokens` first; should the service still refuse
one (the estimate can under-count unusual text), the call is planned once more with the
strict bound of one byte per token, which no byte-level BPE tokenizer can exceed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from azmem.errors import ContextLengthError

__all__ = [
    "MAX_BATCH_INPUTS",
    "MAX_BATCH_TOKENS",
    "MAX_INPUT_TOKENS",
    "POLICIES",
    "LongInputPolicy",
    "Plan",
    "combine",
    "estimate_tokens",
    "input_units",
    "normalise",
    "plan_batches",
    "split_input",
    "too_long_error",
]

MAX_BATCH_INPUTS = 2048
"""The service's limit on inputs per embeddings request."""
MAX_BATCH_TOKENS = 250_000
"""Our per-request budget of *estimated* tokens (the service caps a request's total tokens)."""

MAX_INPUT_TOKENS = 8_191
"""Tokens per input of Azure's embedding models (ada-002, text-embedding-3-small/-large)."""

LongInputPolicy = Literal["error", "truncate", "chunk"]
"""What the embedder does with an input over the per-input limit (see the module docstring)."""
POLICIES: tuple[str, ...] = get_args(LongInputPolicy)


def estimate_tokens(text: str) -> int:
    """An upper-leaning token estimate without a tokenizer (tiktoken needs a download).

    UTF-8 bytes / 3: English averages about 4 characters (bytes) per token, so this
    over-counts it by a third, while CJK text (3 bytes per character, about one token
    per character) comes out near exact. Over-counting only makes batches a little
    smaller; under-counting would make requests fail.
    """
    return len(text.encode("utf-8")) // 3 + 1


def plan_batches(
    texts: Sequence[str], *, max_inputs: int = MAX_BATCH_INPUTS, max_tokens: int = MAX_BATCH_TOKENS
) -> list[list[int]]:
    """Split positions into consecutive batches within both limits, keeping order.

    A single text above the token budget still gets a batch of its own: the service,
    not a guess, should say whether it is too long.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    budget = 0
    for index, text in enumerate(texts):
        cost = estimate_tokens(text)
        if current and (len(current) >= max_inputs or budget + cost > max_tokens):
            batches.append(current)
            current, budget = [], 0
        current.append(index)
        budget += cost
    if current:
        batches.append(current)
    return batches


def _max_bytes(max_tokens: int, *, strict: bool) -> int:
    """The most UTF-8 bytes a piece may have to cost at most ``max_tokens`` tokens.

    By :func:`estimate_tokens` (``bytes // 3 + 1 <= max_tokens``), or, ``strict``, by the
    bound no byte-level BPE tokenizer exceeds: every token covers at least one byte.
    """
    return max_tokens if strict else max(1, 3 * max_tokens - 1)


def _head(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes, never splitting a character,
    ending at whitespace when some falls in its second half (a cut word embeds as noise)."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    # A character wider than the whole budget still makes a piece, or nothing would progress.
    head = raw[:max_bytes].decode("utf-8", errors="ignore") or text[0]
    if len(head) == len(text) or text[len(head)].isspace():
        return head
    for i in range(len(head) - 1, len(head) // 2, -1):
        if head[i].isspace():
            return head[:i]
    return head


def split_input(text: str, max_tokens: int, *, strict: bool = False) -> list[str]:
    """``text`` in consecutive pieces of at most ``max_tokens`` tokens, split at whitespace where possible.

    The whitespace at a cut is dropped (each piece is embedded on its own); a text that fits
    is returned whole. ``strict`` sizes pieces by the one-byte-per-token bound instead of the
    estimate: smaller pieces, but certain to fit.
    """
    limit = _max_bytes(max_tokens, strict=strict)
    pieces: list[str] = []
    rest = text
    while rest:
        head = _head(rest, limit)
        if head.strip():
            pieces.append(head)
        rest = rest[len(head) :].lstrip()
    return pieces or [text]


def normalise(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: npt.NDArray[np.float32] = (matrix / norms).astype(np.float32, copy=False)
    return out


@dataclass(slots=True)
class Plan:
    """One ``embed`` call: the texts to send, what the cache already had, and what to send.

    ``texts`` are the units embedded: one per caller input, or, with the ``chunk`` policy,
    an input's pieces; ``owners[u]`` is the caller's input unit ``u`` belongs to and
    ``sizes[i]`` the estimated tokens of input ``i`` as given (cleaned), for error messages.
    """

    texts: list[str]
    vectors: list[npt.NDArray[np.float32] | None]
    keys: list[str | None]
    owners: list[int]
    sizes: list[int]
    strict: bool = False
    batches: list[list[int]] = field(default_factory=list)
    hits: int = 0

    @property
    def inputs(self) -> int:
        return len(self.sizes)

    @property
    def chunked(self) -> bool:
        return len(self.texts) != len(self.sizes)


def input_units(
    cleaned: list[str], *, policy: LongInputPolicy, limit: int, strict: bool
) -> tuple[list[str], list[int]]:
    """What to send for the inputs under the policy, and the input each unit belongs to.

    ``error`` sends every input as it is: whether it is too long is the service's call,
    since the estimate over-counts most text and would refuse inputs the model takes.
    """
    if policy == "error":
        return cleaned, list(range(len(cleaned)))
    units: list[str] = []
    owners: list[int] = []
    for i, text in enumerate(cleaned):
        fits = len(text.encode("utf-8")) <= limit if strict else estimate_tokens(text) <= limit
        pieces = [text] if fits else split_input(text, limit, strict=strict)
        if policy == "truncate":
            pieces = pieces[:1]
        units += pieces
        owners += [i] * len(pieces)
    return units, owners


def too_long_error(
    plan: Plan,
    batch: list[int],
    exc: ContextLengthError,
    *,
    policy: LongInputPolicy,
    limit: int,
    deployment: str,
) -> ContextLengthError:
    """The service's refusal of a batch, told in the caller's terms: which of *their* texts.

    The service says only that some input is too long; the inputs of the batch whose
    estimate is over the limit are named (else the longest one), with advice that fits
    the policy: under ``error``, shorten it or pick one of the two other policies; under
    ``truncate`` / ``chunk``, whose strict round cannot exceed the limit azmem works to,
    that limit must be higher than the deployment's.
    """
    owners = sorted({plan.owners[u] for u in batch})
    named = [i for i in owners if plan.sizes[i] > limit] or [max(owners, key=lambda i: plan.sizes[i])]
    shown = ", ".join(f"texts[{i}]" for i in named[:5]) + (
        f" and {len(named) - 5} more" if len(named) > 5 else ""
    )
    estimates = ", ".join(f"{plan.sizes[i]:,}" for i in named[:5])
    if policy == "error":
        message = (
            f"{shown} {'is' if len(named) == 1 else 'are'} too long to embed: deployment '{deployment}' "
            f"takes at most {limit:,} tokens per input (azmem estimates {estimates}). {exc.message}"
        )
        suggestion = (
            f"Shorten {shown}, or set long_input on the embedding role (or long_input= on the "
            "embedder): 'truncate' embeds the part that fits, 'chunk' embeds it in pieces and "
            "averages their vectors."
        )
    else:
        message = (
            f"Deployment '{deployment}' refused {shown} although azmem cut it to its per-input "
            f"limit of {limit:,} tokens (long_input={policy!r}). {exc.message}"
        )
        suggestion = (
            f"The deployment's per-input limit is lower than the {limit:,} tokens azmem works to: "
            "set capabilities.context_window on the embedding role (or max_input_tokens= on the "
            "embedder) to the model's real limit."
        )
    return ContextLengthError(
        message,
        error_code=exc.error_code,
        details={
            **exc.details,
            "inputs": named,
            "estimated_tokens": [plan.sizes[i] for i in named],
            "max_input_tokens": limit,
            "long_input": policy,
        },
        suggestion=suggestion,
        debug_info=exc.debug_info,
        status_code=exc.status_code,
    )


def combine(units: npt.NDArray[np.float32], plan: Plan) -> npt.NDArray[np.float32]:
    """One unit vector per input: the mean of its pieces' vectors weighted by their estimated tokens.

    Weighting by size keeps a short tail piece from counting as much as a full one (the
    chunk-and-average recipe OpenAI documents for inputs over the limit).
    """
    weights = np.array([estimate_tokens(t) for t in plan.texts], dtype=np.float64)
    out = np.zeros((plan.inputs, units.shape[1]), dtype=np.float64)
    np.add.at(out, np.asarray(plan.owners), units.astype(np.float64) * weights[:, None])
    return normalise(out.astype(np.float32))
