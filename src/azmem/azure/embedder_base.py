"""What both Azure embedders share: configuration, planning against the cache, one sans-IO
flow per batch request, and assembly of the vectors, usage and cache writes.

Kept out of :mod:`azmem.azure.embedder` so that module holds only how each face drives
the flows (one after the other, or a few concurrently): sync and async share this logic
rather than each carrying a copy.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar

import numpy as np
import numpy.typing as npt
import openai
from openai.types import CreateEmbeddingResponse
from typing_extensions import Unpack

from azmem.azure.cache import ResponseCache
from azmem.azure.embedding_plan import (
    MAX_BATCH_INPUTS,
    MAX_BATCH_TOKENS,
    MAX_INPUT_TOKENS,
    POLICIES,
    LongInputPolicy,
    Plan,
    combine,
    estimate_tokens,
    input_units,
    normalise,
    plan_batches,
    too_long_error,
)
from azmem.azure.flow import Flow, Send, call_span, send_with_retries
from azmem.azure.messages import clean_text
from azmem.azure.provider import AzureProvider
from azmem.azure.retry import RetryPolicy
from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
from azmem.azure.tracing import server_attributes
from azmem.azure.usage import Usage, UsageTracker
from azmem.errors import ConfigurationError, ContextLengthError, EmbedderMismatchError, EmptyResponseError

__all__ = ["BaseEmbedder", "EmbedderOptions"]


_KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def _decode(value: Any) -> npt.NDArray[np.float32]:
    if isinstance(value, str):  # base64 of little-endian float32, what we ask for
        return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32, copy=False)
    return np.asarray(value, dtype=np.float32)


def _parse(raw: Any) -> CreateEmbeddingResponse:
    parsed: CreateEmbeddingResponse = raw.parse()
    return parsed


class EmbedderOptions(TypedDict, total=False):
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


_OPTION_NAMES = frozenset(EmbedderOptions.__annotations__)
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


class BaseEmbedder(Generic[ClientT]):
    """Configuration, planning and assembly shared by both embedders (no I/O)."""

    def __init__(
        self,
        settings: AzmemSettings | AzureOpenAISettings | AzureProvider | None = None,
        *,
        client: ClientT | None = None,
        **options: Unpack[EmbedderOptions],
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
        if policy not in POLICIES:
            raise ConfigurationError(
                f"long_input must be one of {', '.join(POLICIES)}, not {policy!r}",
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

    def _plan(self, texts: Sequence[str], *, strict: bool = False) -> Plan:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        # The service rejects empty inputs; one space embeds as "nothing" and keeps positions.
        cleaned = [clean_text(t) or " " for t in texts]
        units, owners = input_units(
            cleaned, policy=self._long_input, limit=self._max_input_tokens, strict=strict
        )
        plan = Plan(
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

    def _span(self, plan: Plan) -> Any:
        return call_span(
            self._tracer, f"embeddings {self._target.deployment}", lambda: self._span_attributes(plan)
        )

    def _span_attributes(self, plan: Plan) -> dict[str, Any]:
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

    def _batch_flow(self, plan: Plan, batch: list[int], span: Any) -> Flow[Usage]:
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
            raise too_long_error(
                plan,
                batch,
                exc,
                policy=self._long_input,
                limit=self._max_input_tokens,
                deployment=t.deployment,
            ) from exc
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

    def _retry_strictly(self) -> bool:
        """After a refusal of estimate-sized pieces, whether to plan again with the strict bound."""
        return self._long_input != "error"

    def _assemble(
        self,
        plan: Plan,
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
        matrix = normalise(np.vstack(rows))
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
            matrix = combine(matrix, plan)
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
