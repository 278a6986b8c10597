"""Graphiti's ``LLMClient`` on azmem's :class:`~azmem.azure.AsyncLLMClient`.

graphiti-core 0.31.2's own ``AzureOpenAILLMClient`` fails every structured call (its
``_handle_structured_response`` returns a dict where ``BaseOpenAIClient`` unpacks a
3-tuple), sends ``max_tokens`` to reasoning deployments, drops assistant turns, appends
to the caller's message list and, with OpenTelemetry on, turns every exception raised in
its span into a ``RuntimeError``. This class keeps Graphiti's contract exactly as its
callers use it (``generate_response(...) -> dict``, ``ModelSize``, ``prompt_name``,
``group_id``, ``attribute_extraction``, the ``llm.generate`` span and the token tracker)
and leaves the call itself to azmem: strict structured output with its fallback, the
parameters each deployment accepts, retries, usage, cache and typed errors.
"""

from __future__ import annotations

from typing import Any

import openai
from graphiti_core.llm_client import client as graphiti_client
from graphiti_core.llm_client.client import LLMClient
from graphiti_core.llm_client.config import DEFAULT_MAX_TOKENS, LLMConfig, ModelSize
from graphiti_core.prompts.models import Message
from pydantic import BaseModel

from azmem.azure.llm import AsyncLLMClient
from azmem.azure.provider import AzureProvider
from azmem.azure.request import ModelSize as AzmemModelSize
from azmem.azure.request import ReasoningEffort
from azmem.azure.response import LLMResult
from azmem.azure.settings import AzmemSettings
from azmem.errors import ConfigurationError, EmptyResponseError, InvalidInputError

from ._clients import settings_for_client

__all__ = ["AzmemLLMClient"]


class AzmemLLMClient(LLMClient):
    """A drop-in for ``AzureOpenAILLMClient``: same first three arguments, azmem underneath.

    Build it one of three ways:

    * ``AzmemLLMClient(azure_client, LLMConfig(model="gpt-4o", small_model="gpt-4o-mini"))``:
      the same arguments as Graphiti's ``AzureOpenAILLMClient``; ``model`` / ``small_model``
      are deployment names, sent through the caller's SDK client (never closed by us).
    * ``AzmemLLMClient()`` or ``AzmemLLMClient(config=LLMConfig(...), settings=...)``: azmem's
      settings (env ``AZURE_OPENAI_*``, ``AZMEM_*``, config file; an ``LLMConfig``'s
      ``base_url``, ``api_key``, ``model`` and ``small_model`` override them), so Entra ID,
      routing, the response cache and retries come configured.
    * ``AzmemLLMClient(client=AsyncLLMClient(...))``: an azmem client the caller built (with a
      usage tracker, say); never closed by us.

    Graphiti's ``ModelSize.small`` goes to azmem's ``small_chat`` deployment (``chat`` when
    unset), ``medium`` to ``chat``.
    """

    def __init__(
        self,
        azure_client: openai.AsyncOpenAI | None = None,
        config: LLMConfig | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        *,
        client: AsyncLLMClient | None = None,
        settings: AzmemSettings | None = None,
        reasoning_effort: ReasoningEffort | None = None,
    ) -> None:
        config = config if config is not None else LLMConfig()
        # cache=False: Graphiti's own cache keys on the messages alone; azmem's cache (when the
        # settings enable it) keys on everything sent.
        super().__init__(config, cache=False)
        self.max_tokens = max_tokens
        self.reasoning_effort: ReasoningEffort | None = reasoning_effort
        given = [name for name, v in (("azure_client", azure_client), ("client", client)) if v is not None]
        if len(given) > 1 or (given and settings is not None):
            raise InvalidInputError(
                "pass one of azure_client=, client= or settings=",
                suggestion="azure_client wraps your SDK client; client is an azmem AsyncLLMClient; "
                "settings builds one from azmem's settings.",
            )
        self._owned = client is None
        if client is not None:
            self.client = client
        elif azure_client is not None:
            self.client = _client_for_sdk(azure_client, config)
            self.model = self.model or getattr(azure_client, "_azure_deployment", None)
            self.small_model = self.small_model or self.model
        else:
            settings = settings if settings is not None else _settings_from(config)
            self.client = AsyncLLMClient(settings)
            # The deployments the settings name (an LLMConfig's names are already in them).
            self.model = settings.role("chat").deployment
            self.small_model = (settings.small_chat or settings.role("chat")).deployment
        self.cache_enabled = self.client.cache is not None

    async def generate_response(
        self,
        messages: list[Message],
        response_model: type[BaseModel] | None = None,
        max_tokens: int | None = None,
        model_size: ModelSize = ModelSize.medium,
        group_id: str | None = None,
        prompt_name: str | None = None,
        *,
        attribute_extraction: bool = False,
        model: str | None = None,
    ) -> dict[str, Any]:
        """Graphiti's contract: a dict (the response model's fields, or a JSON object when none).

        The caller's ``messages`` are left as they were: Graphiti's additions (the attribute
        extraction framing, the language instruction) go on copies.
        """
        if max_tokens is None:
            max_tokens = self.max_tokens
        size = self._size_for(model_size, model)
        prepared = [m.model_copy() for m in messages]
        self._apply_attribute_extraction_preamble(prepared, attribute_extraction)
        if prepared:
            # Looked up on the module at call time: Graphiti documents overriding it there.
            prepared[0].content += graphiti_client.get_extraction_language_instruction(group_id)
        attributes: dict[str, Any] = {
            "llm.provider": "azure",
            "model.size": model_size.value,
            "max_tokens": max_tokens,
            "cache.enabled": self.cache_enabled,
        }
        if prompt_name:
            attributes["prompt.name"] = prompt_name
        failure: Exception | None = None
        result: LLMResult[Any] | None = None
        # Graphiti's OpenTelemetryTracer wraps its `yield` in `except Exception: yield NoOpSpan()`,
        # so an exception raised inside the span comes out as RuntimeError("generator didn't stop
        # after throw()"). The error is recorded inside and raised outside, keeping its type.
        with self.tracer.start_span("llm.generate") as span:
            span.add_attributes(attributes)
            try:
                result = await self._generate(
                    prepared, response_model, max_tokens, size, prompt_name, group_id
                )
            except Exception as exc:
                span.set_status("error", str(exc))
                span.record_exception(exc)
                failure = exc
            else:
                span.add_attributes({"cache.hit": result.cached})
        if failure is not None:
            raise failure
        assert result is not None
        if not result.cached:
            self.token_tracker.record(prompt_name, result.usage.input_tokens, result.usage.output_tokens)
        return _as_dict(result)

    async def _generate_response(
        self,
        messages: list[Message],
        response_model: type[BaseModel] | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        model_size: ModelSize = ModelSize.medium,
        *,
        model: str | None = None,
    ) -> dict[str, Any]:
        """The abstract step of Graphiti's base class, for callers that use it directly."""
        size = self._size_for(model_size, model)
        return _as_dict(await self._generate(list(messages), response_model, max_tokens, size, None, None))

    async def _generate(
        self,
        messages: list[Message],
        response_model: type[BaseModel] | None,
        max_tokens: int,
        size: AzmemModelSize,
        prompt_name: str | None,
        group_id: str | None,
    ) -> LLMResult[Any]:
        # Every role is kept, assistant turns included (Graphiti's OpenAI clients drop them).
        wire = [{"role": m.role, "content": m.content} for m in messages]
        return await self.client.generate(
            wire,
            response_model=response_model,
            json=response_model is None,
            max_tokens=max_tokens,
            temperature=self.temperature,
            model_size=size,
            prompt_name=prompt_name,
            group_id=group_id,
            reasoning_effort=self.reasoning_effort,
        )

    def _size_for(self, model_size: ModelSize, model: str | None) -> AzmemModelSize:
        """The azmem role for a call; ``model=`` (Graphiti's LLMRuntime path) must name one of ours."""
        by_size: AzmemModelSize = "small" if model_size == ModelSize.small else "medium"
        if model is None or model == self.model == self.small_model:
            return by_size
        if model == self.model:
            return "medium"
        if model == self.small_model:
            return "small"
        raise InvalidInputError(
            f"model {model!r} is neither this client's medium deployment ({self.model!r}) "
            f"nor its small one ({self.small_model!r})",
            suggestion="Give each deployment its own AzmemLLMClient in the LLMRuntime, or name "
            "these deployments in LLMModel(id=...).",
        )

    async def aclose(self) -> None:
        """Close the azmem client this object built (never one the caller passed)."""
        if self._owned:
            await self.client.aclose()


def _as_dict(result: LLMResult[Any]) -> dict[str, Any]:
    if result.data is None:
        raise EmptyResponseError(f"Deployment '{result.deployment}' returned no JSON object.")
    return result.data


def _settings_from(config: LLMConfig) -> AzmemSettings:
    """azmem's settings with an ``LLMConfig``'s explicit values on top (they beat env vars)."""
    overrides: dict[str, Any] = {}
    if config.base_url:
        overrides["endpoint"] = config.base_url
    if config.api_key:
        overrides["api_key"] = config.api_key
    if config.model:
        overrides["chat"] = config.model
    if config.small_model:
        overrides["small_chat"] = config.small_model
    return AzmemSettings.load(**overrides)


def _client_for_sdk(azure_client: openai.AsyncOpenAI, config: LLMConfig) -> AsyncLLMClient:
    """An azmem client that sends through the caller's SDK client, one provider per size."""
    if not config.model and not getattr(azure_client, "_azure_deployment", None):
        raise ConfigurationError(
            "AzmemLLMClient(azure_client, config) needs the deployment name.",
            error_code="missing_deployment",
            suggestion="Pass config=LLMConfig(model='<chat deployment>', small_model='<small deployment>').",
        )
    chat = AzureProvider(
        settings_for_client(azure_client, role="chat", deployment=config.model), async_client=azure_client
    )
    small = None
    if config.small_model and config.small_model != config.model:
        small = AzureProvider(
            settings_for_client(azure_client, role="small_chat", deployment=config.small_model),
            async_client=azure_client,
        )
    return AsyncLLMClient(chat=chat, small_chat=small)
