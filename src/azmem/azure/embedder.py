"""``AzureEmbedder`` / ``AsyncAzureEmbedder``: the :mod:`azmem.embeddings` protocol over Azure OpenAI.

The logic is pure planning (:func:`plan_batches`), one sans-IO flow per request
(:func:`batch_flow`) and pure assembly; the sync class runs the batches one after the
other, the async class runs a few concurrently. Peers sent everything in one request
(which fails past 2,048 inputs) or in fixed batches of 100 (slow), and never sent
``dimensions``; here batches are as large as the service allows, bounded by both the
input count and an estimated token budget, and ``dimensions`` is always passed through.

Vectors come back float32 and L2-normalised. Azure's vectors are unit length already
(also when ``dimensions`` shortens them), so the normalisation is a cheap guarantee of
the protocol's contract rather than a change.

An input over the model's per-input token limit follows the role's ``long_input`` policy
(:data:`LongInputPolicy`): ``error`` (the default) fails the call naming the input,
``truncate`` embeds the part that fits, ``chunk`` embeds it in pieces and averages their
vectors. Pieces are cut by :func:`estimate_tokens` first; should the service still refuse
one (the estimate can under-count unusual text), the call is planned once more with the
strict bound of one byte per token, which no byte-level BPE tokenizer can exceed.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypedDict, TypeVar, get_args

import numpy as np
import numpy.typing as npt
import openai
from openai.types import CreateEmbeddingResponse
from typing_extensions import Unpack

from azmem.azure.cache import ResponseCache
from azmem.azure.flow import Flow, Send, call_span, drive, drive_async, performer, send_with_retries
from azmem.azure.messages import clean_text
from azmem.azure.provider import AzureProvider
from azmem.azure.retry import RetryPolicy
from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
from azmem.azure.tracing import server_attributes
from azmem.azure.usage import Usage, UsageTracker
from azmem.errors import ConfigurationError, ContextLengthError, EmbedderMismatchError, EmptyResponseError

__all__ = [
    "MAX_BATCH_INPUTS",
    "MAX_BATCH_TOKENS",
    "MAX_INPUT_TOKENS",
    "AsyncAzureEmbedder",
    "AzureEmbedder",
    "LongInputPolicy",
    "estimate_tokens",
    "plan_batches",
    "split_input",
]

MAX_BATCH_INPUTS = 2048
"""The service's limit on inputs per embeddings request."""
MAX_BATCH_TOKENS = 250_000
"""Our per-request budget of *estimated* tokens (the service caps a request's total tokens)."""

MAX_INPUT_TOKENS = 8_191
"""Tokens per input of Azure's embedding models (ada-002, text-embedding-3-small/-large)."""

LongInputPolicy = Literal["error", "truncate", "chunk"]
"""What the embedder does with an input over the per-input limit (see the module docstring)."""
_POLICIES: tuple[str, ...] = get_args(LongInputPolicy)

_KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


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


def _decode(value: Any) -> npt.NDArray[np.float32]:
    if isinstance(value, str):  # base64 of little-endian float32, what we ask for
        return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32, copy=False)
    return np.asarray(value, dtype=np.float32)


def _parse(raw: Any) -> CreateEmbeddingResponse:
    parsed: CreateEmbeddingResponse = raw.parse()
    return parsed


def _normalise(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: npt.NDArray[np.float32] = (matrix / norms).astype(np.float32, copy=False)
    return out


class _EmbedderOptions(TypedDict, total=False):
    """The keyword arguments both embedders take, declared once (the async one adds ``max_concurrency``).

    Unset or ``None``: ``dimensions``, ``retry`` and ``long_input`` come from the role's
    settings (``retry`` then from the top-level policy), ``max_input_tokens`` from the role's
    ``capabilities.context_window`` (else :data:`MAX_INPUT_TOKENS`), ``cache`` from the
    settings' cache when it is enabled, ``tracer`` is azmem's default and ``usage`` is not
    tracked; the batch limits are the service's.
    """

    dimensions: int | None
    tracer: Any | None
    usage: UsageTracker | None
    cache: ResponseCache | None
    retry: RetryPolicy | None
    max_batch_inputs: int
    max_batch_tokens: int
    long_input: LongInputPolicy | None
    max_input_tokens: int | None


_OPTION_NAMES = frozenset(_EmbedderOptions.__annotations__)
ClientT = TypeVar("ClientT", openai.OpenAI, openai.AsyncOpenAI)


@dataclass(frozen=True, slots=True)
class _EmbedTarget:
    deployment: str
    endpoint: str
    model_arg: str
    model_name: str
    dimensions: int | None
    api_version: str | None
    auth: str | None


@dataclass(slots=True)
class _Plan:
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


class _BaseEmbedder(Generic[ClientT]):
    """Configuration, planning and assembly shared by both embedders (no I/O)."""

    def __init__(
        self,
        settings: AzmemSettings | AzureOpenAISettings | AzureProvider | None = None,
        *,
        client: ClientT | None = None,
        **options: Unpack[_EmbedderOptions],
    ) -> None:
        unknown = options.keys() - _OPTION_NAMES
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword argument(s): {', '.join(sorted(unknown))}"
            )
        top_level: RetryPolicy | None = None
        self._owned_cache: ResponseCache | None = None
        cache = options.get("cache")
        if settings is None:
            settings = AzmemSettings.load()
        if isinstance(settings, AzmemSettings):
            top_level = settings.retry
            if cache is None and settings.cache.enabled:
                cache = self._owned_cache = ResponseCache(
                    settings.cache_path, ttl_seconds=settings.cache.ttl_seconds
                )
            settings = settings.role("embedding")
        if isinstance(settings, AzureProvider):
            if client is not None:
                raise ConfigurationError("pass either client= or an AzureProvider, not both")
            self._provider, self._owns_provider = settings, False
        elif isinstance(client, openai.AsyncOpenAI):
            self._provider, self._owns_provider = AzureProvider(settings, async_client=client), True
        else:
            self._provider, self._owns_provider = AzureProvider(settings, client=client), True
        cfg = self._provider.settings
        # An explicit retry= wins, then the role's own policy, then the top-level one.
        self._policy = options.get("retry") or cfg.retry or top_level or RetryPolicy()
        self._tracer = options.get("tracer")
        self._usage = options.get("usage")
        self._cache = cache
        self._max_inputs = options.get("max_batch_inputs", MAX_BATCH_INPUTS)
        if not 1 <= self._max_inputs <= MAX_BATCH_INPUTS:
            raise ConfigurationError(f"max_batch_inputs must be between 1 and {MAX_BATCH_INPUTS}")
        self._max_tokens = options.get("max_batch_tokens", MAX_BATCH_TOKENS)
        policy = options.get("long_input") or cfg.long_input
        if policy not in _POLICIES:
            raise ConfigurationError(
                f"long_input must be one of {', '.join(_POLICIES)}, not {policy!r}",
                suggestion="'error' names an input over the model's token limit, 'truncate' embeds the "
                "part that fits, 'chunk' averages the vectors of its pieces.",
            )
        self._long_input: LongInputPolicy = policy
        limit = options.get("max_input_tokens") or cfg.capabilities.context_window or MAX_INPUT_TOKENS
        if limit < 1:
            raise ConfigurationError(f"max_input_tokens must be positive, not {limit}")
        self._max_input_tokens = limit
        dims = options.get("dimensions")
        if dims is None:
            dims = cfg.dimensions
        self._target = _EmbedTarget(
            deployment=self._provider.deployment,
            endpoint=self._provider.endpoint,
            model_arg=self._provider.model_arg(),
            model_name=cfg.model_name,
            dimensions=dims,
            api_version=self._provider.api_version,
            auth=self._provider.auth_kind,
        )
        self._dimension: int | None = dims or _KNOWN_DIMENSIONS.get(cfg.model_name)
        self.name = f"azure:{self._provider.deployment}"

    @property
    def dimension(self) -> int:
        """``dimensions`` if set, else the model's known size, else what the service returned."""
        if self._dimension is None:
            raise ConfigurationError(
                f"The dimension of embedding deployment '{self._target.deployment}' is not known yet.",
                suggestion="Set dimensions=<n> or model='text-embedding-3-small' (the underlying model) "
                "in the embedding settings, or embed once before asking.",
            )
        return self._dimension

    @dimension.setter
    def dimension(self, value: int) -> None:
        # Settable so the class satisfies the Embedder protocol's plain ``dimension: int``
        # attribute for type checkers; also how a caller pins an unknown model's size.
        if value < 1:
            raise ConfigurationError(f"dimension must be positive, not {value}")
        self._dimension = value

    @property
    def long_input(self) -> LongInputPolicy:
        """The policy for an input over :attr:`max_input_tokens`: error, truncate or chunk."""
        return self._long_input

    @property
    def max_input_tokens(self) -> int:
        """The per-input token limit the ``long_input`` policy works to."""
        return self._max_input_tokens

    def _units(self, cleaned: list[str], strict: bool) -> tuple[list[str], list[int]]:
        """What to send for the inputs under the policy, and the input each unit belongs to.

        ``error`` sends every input as it is: whether it is too long is the service's call,
        since the estimate over-counts most text and would refuse inputs the model takes.
        """
        if self._long_input == "error":
            return cleaned, list(range(len(cleaned)))
        limit = self._max_input_tokens
        units: list[str] = []
        owners: list[int] = []
        for i, text in enumerate(cleaned):
            fits = len(text.encode("utf-8")) <= limit if strict else estimate_tokens(text) <= limit
            pieces = [text] if fits else split_input(text, limit, strict=strict)
            if self._long_input == "truncate":
                pieces = pieces[:1]
            units += pieces
            owners += [i] * len(pieces)
        return units, owners

    def _plan(self, texts: Sequence[str], *, strict: bool = False) -> _Plan:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        # The service rejects empty inputs; one space embeds as "nothing" and keeps positions.
        cleaned = [clean_text(t) or " " for t in texts]
        units, owners = self._units(cleaned, strict)
        plan = _Plan(
            texts=units,
            vectors=[None] * len(units),
            keys=[None] * len(units),
            owners=owners,
            sizes=[estimate_tokens(t) for t in cleaned],
            strict=strict,
        )
        misses: list[int] = []
        for i, text in enumerate(units):
            if self._cache is not None:
                key = ResponseCache.key(
                    "embeddings",
                    self._target.deployment,
                    {
                        "input": text,
                        "dimensions": self._target.dimensions,
                        "endpoint": self._target.endpoint,
                        "model": self._target.model_arg,
                    },
                )
                plan.keys[i] = key
                hit = self._cache.get(key)
                if isinstance(hit, str):
                    plan.vectors[i] = _decode(hit)
                    plan.hits += 1
                    continue
            misses.append(i)
        sub = [units[i] for i in misses]
        plan.batches = [
            [misses[j] for j in batch]
            for batch in plan_batches(sub, max_inputs=self._max_inputs, max_tokens=self._max_tokens)
        ]
        return plan

    def _span(self, plan: _Plan) -> Any:
        return call_span(
            self._tracer, f"embeddings {self._target.deployment}", lambda: self._span_attributes(plan)
        )

    def _span_attributes(self, plan: _Plan) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.provider.name": "azure.ai.openai",
            "gen_ai.system": "az.ai.openai",
            "gen_ai.request.model": self._target.deployment,
            "llm.provider": "azure",
            "cache.enabled": self._cache is not None,
            "cache.hit": bool(plan.texts) and plan.hits == len(plan.texts),
            "azmem.inputs": plan.inputs,
            "azmem.long_input": self._long_input,
            "azmem.cache_hits": plan.hits,
            "azmem.batches": len(plan.batches),
            **server_attributes(self._target.endpoint),
        }
        if plan.chunked:
            attrs["azmem.input_pieces"] = len(plan.texts)
        if self._target.dimensions is not None:
            attrs["gen_ai.embeddings.dimension.count"] = self._target.dimensions
        return attrs

    def _batch_flow(self, plan: _Plan, batch: list[int], span: Any) -> Flow[Usage]:
        """One request under the retry policy; fills ``plan.vectors`` for its positions."""
        t = self._target
        kwargs: dict[str, Any] = {
            "model": t.model_arg,
            "input": [plan.texts[i] for i in batch],
            "encoding_format": "base64",
        }
        if t.dimensions is not None:
            kwargs["dimensions"] = t.dimensions
        ctx = self._provider.context("embeddings")
        try:
            response, _attempts = yield from send_with_retries(
                Send("embeddings", "create", kwargs), ctx=ctx, policy=self._policy, span=span, read=_parse
            )
        except ContextLengthError as exc:
            raise self._too_long(plan, batch, exc) from exc
        if len(response.data) != len(batch):
            raise EmptyResponseError(
                f"Embedding deployment '{t.deployment}' returned {len(response.data)} vectors "
                f"for {len(batch)} inputs.",
                debug_info=ctx.debug_info(),
            )
        for item in response.data:
            plan.vectors[batch[item.index]] = _decode(item.embedding)
        u = response.usage
        return Usage(input_tokens=u.prompt_tokens, output_tokens=0, total_tokens=u.total_tokens)

    def _too_long(self, plan: _Plan, batch: list[int], exc: ContextLengthError) -> ContextLengthError:
        """The service's refusal of a batch, told in the caller's terms: which of *their* texts.

        The service says only that some input is too long; the inputs of the batch whose
        estimate is over the limit are named (else the longest one), with advice that fits
        the policy: under ``error``, shorten it or pick one of the two other policies; under
        ``truncate`` / ``chunk``, whose strict round cannot exceed the limit azmem works to,
        that limit must be higher than the deployment's.
        """
        limit = self._max_input_tokens
        owners = sorted({plan.owners[u] for u in batch})
        named = [i for i in owners if plan.sizes[i] > limit] or [max(owners, key=lambda i: plan.sizes[i])]
        shown = ", ".join(f"texts[{i}]" for i in named[:5]) + (
            f" and {len(named) - 5} more" if len(named) > 5 else ""
        )
        estimates = ", ".join(f"{plan.sizes[i]:,}" for i in named[:5])
        deployment = self._target.deployment
        if self._long_input == "error":
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
                f"limit of {limit:,} tokens (long_input={self._long_input!r}). {exc.message}"
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
                "long_input": self._long_input,
            },
            suggestion=suggestion,
            debug_info=exc.debug_info,
            status_code=exc.status_code,
        )

    def _retry_strictly(self) -> bool:
        """After a refusal of estimate-sized pieces, whether to plan again with the strict bound."""
        return self._long_input != "error"

    def _assemble(
        self,
        plan: _Plan,
        usages: Sequence[Usage],
        span: Any,
        *,
        prompt_name: str | None = None,
        group_id: str | None = None,
    ) -> npt.NDArray[np.float32]:
        if not plan.inputs:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        rows = [v for v in plan.vectors if v is not None]
        width = {len(v) for v in rows}
        if len(width) != 1 or len(rows) != len(plan.texts):
            raise EmbedderMismatchError(
                f"Deployment '{self._target.deployment}' returned vectors of mixed sizes {sorted(width)}.",
                suggestion="Clear the embedding cache if the deployment's model or dimensions changed.",
            )
        dim = width.pop()
        if self._dimension is None:
            self._dimension = dim
        elif dim != self._dimension:
            raise EmbedderMismatchError(
                f"Deployment '{self._target.deployment}' returned {dim}-dimensional vectors, "
                f"expected {self._dimension}.",
                suggestion="Set dimensions (or model) in the embedding settings to match the deployment.",
            )
        matrix = _normalise(np.vstack(rows))
        if self._cache is not None:
            sent = {i for batch in plan.batches for i in batch}
            for i in sorted(sent):
                key = plan.keys[i]
                if key is not None:
                    self._cache.set(
                        key,
                        base64.b64encode(matrix[i].astype("<f4").tobytes()).decode("ascii"),
                        namespace="embeddings",
                    )
        if plan.chunked:
            matrix = _combine(matrix, plan)
        fresh = Usage(
            input_tokens=sum(u.input_tokens for u in usages),
            output_tokens=0,
            total_tokens=sum(u.total_tokens for u in usages),
        )
        span.set_attribute("gen_ai.usage.input_tokens", fresh.input_tokens)
        if self._usage is not None:
            if usages:
                self._usage.record(
                    deployment=self._target.deployment,
                    model=self._target.model_name,
                    prompt_name=prompt_name or "embeddings",
                    group_id=group_id,
                    usage=fresh,
                    cached=False,
                )
            if plan.hits:
                self._usage.record(
                    deployment=self._target.deployment,
                    model=self._target.model_name,
                    prompt_name=prompt_name or "embeddings",
                    group_id=group_id,
                    usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0, cached=True),
                    cached=True,
                )
        return matrix


def _combine(units: npt.NDArray[np.float32], plan: _Plan) -> npt.NDArray[np.float32]:
    """One unit vector per input: the mean of its pieces' vectors weighted by their estimated tokens.

    Weighting by size keeps a short tail piece from counting as much as a full one (the
    chunk-and-average recipe OpenAI documents for inputs over the limit).
    """
    weights = np.array([estimate_tokens(t) for t in plan.texts], dtype=np.float64)
    out = np.zeros((plan.inputs, units.shape[1]), dtype=np.float64)
    np.add.at(out, np.asarray(plan.owners), units.astype(np.float64) * weights[:, None])
    return _normalise(out.astype(np.float32))


class AzureEmbedder(_BaseEmbedder[openai.OpenAI]):
    """Blocking embedder; satisfies :class:`azmem.embeddings.Embedder`."""

    def embed(
        self, texts: Sequence[str], *, group_id: str | None = None, prompt_name: str | None = None
    ) -> npt.NDArray[np.float32]:
        """float32 ``[len(texts), dimension]``, unit rows, in input order.

        ``group_id`` and ``prompt_name`` (default ``"embeddings"``) label the call in the
        usage tracker, like ``generate``'s arguments of the same names.
        """
        try:
            return self._embed(texts, strict=False, group_id=group_id, prompt_name=prompt_name)
        except ContextLengthError:
            if not self._retry_strictly():
                raise
        return self._embed(texts, strict=True, group_id=group_id, prompt_name=prompt_name)

    def _embed(
        self, texts: Sequence[str], *, strict: bool, group_id: str | None, prompt_name: str | None
    ) -> npt.NDArray[np.float32]:
        plan = self._plan(texts, strict=strict)
        perform = performer(self._provider.sync_client())
        with self._span(plan) as span:
            usages = [drive(self._batch_flow(plan, batch, span), perform) for batch in plan.batches]
            return self._assemble(plan, usages, span, prompt_name=prompt_name, group_id=group_id)

    def close(self) -> None:
        """Close what this embedder created (SDK clients, the settings' cache), never a caller's."""
        if self._owns_provider:
            self._provider.close()
        if self._owned_cache is not None:
            self._owned_cache.close()

    def __enter__(self) -> AzureEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAzureEmbedder(_BaseEmbedder[openai.AsyncOpenAI]):
    """Awaitable embedder; satisfies :class:`azmem.embeddings.AsyncEmbedder`.

    Up to ``max_concurrency`` batches are in flight at once: large imports are bound by
    round trips, and the retry policy already backs off when the service throttles.
    """

    def __init__(
        self,
        settings: AzmemSettings | AzureOpenAISettings | AzureProvider | None = None,
        *,
        client: openai.AsyncOpenAI | None = None,
        max_concurrency: int = 4,
        **options: Unpack[_EmbedderOptions],
    ) -> None:
        super().__init__(settings, client=client, **options)
        self._max_concurrency = max(1, max_concurrency)

    async def aembed(
        self, texts: Sequence[str], *, group_id: str | None = None, prompt_name: str | None = None
    ) -> npt.NDArray[np.float32]:
        """Same contract as :meth:`AzureEmbedder.embed`."""
        try:
            return await self._aembed(texts, strict=False, group_id=group_id, prompt_name=prompt_name)
        except ContextLengthError:
            if not self._retry_strictly():
                raise
        return await self._aembed(texts, strict=True, group_id=group_id, prompt_name=prompt_name)

    async def _aembed(
        self, texts: Sequence[str], *, strict: bool, group_id: str | None, prompt_name: str | None
    ) -> npt.NDArray[np.float32]:
        plan = self._plan(texts, strict=strict)
        perform = performer(self._provider.async_client())
        gate = asyncio.Semaphore(self._max_concurrency)

        async def one(batch: list[int], span: Any) -> Usage:
            async with gate:
                return await drive_async(self._batch_flow(plan, batch, span), perform)

        with self._span(plan) as span:
            tasks = [asyncio.ensure_future(one(b, span)) for b in plan.batches]
            try:
                usages = list(await asyncio.gather(*tasks))
            except BaseException:
                # The first failure is the caller's answer (its type unchanged, unlike a
                # TaskGroup's ExceptionGroup); the other batches are abandoned, not leaked.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            return self._assemble(plan, usages, span, prompt_name=prompt_name, group_id=group_id)

    async def aclose(self) -> None:
        """Close what this embedder created (SDK clients, the settings' cache), never a caller's."""
        if self._owns_provider:
            await self._provider.aclose()
        if self._owned_cache is not None:
            self._owned_cache.close()

    async def __aenter__(self) -> AsyncAzureEmbedder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
