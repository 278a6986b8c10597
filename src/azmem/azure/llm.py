"""``LLMClient`` and ``AsyncLLMClient``: thin drivers over the flows in :mod:`azmem.azure.chat`.

Everything that decides something (parameters per capability, retries, fallback,
re-asks, cache, usage, spans) lives in the shared base class and the sans-IO flows;
the two public classes differ only in how they do I/O (a blocking SDK call or an
awaited one), which each names in a :class:`_Face`, like httpx's ``Client``/``AsyncClient``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, ClassVar, Generic, Literal, TypedDict, TypeVar, overload

import openai
from pydantic import BaseModel
from typing_extensions import Unpack

from azmem.azure.cache import ResponseCache
from azmem.azure.chat import ChatEnv, Target, generate_flow
from azmem.azure.faces import ASYNC, BLOCKING, Face
from azmem.azure.flow import (
    Flow,
    Send,
    drive,
    drive_async,
    performer,
    run_blocking,
)
from azmem.azure.messages import Message, MessageInput, normalize_messages
from azmem.azure.provider import AzureProvider
from azmem.azure.request import (
    ChatOptions,
    ModelSize,
    ReasoningEffort,
    ReasoningSummary,
    ToolSpec,
    tool_param,
)
from azmem.azure.response import LLMResult
from azmem.azure.retry import RetryPolicy
from azmem.azure.routing.flow import RoutedChat
from azmem.azure.routing.router import Router
from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
from azmem.azure.spellings import SDK_NAMES, translate_sdk_params
from azmem.azure.streams import AsyncLLMStream, LLMStream, StreamView, stream_pieces
from azmem.azure.usage import UsageTracker
from azmem.errors import InvalidInputError

__all__ = ["AsyncLLMClient", "GenerateParams", "LLMClient"]

T = TypeVar("T", bound=BaseModel)
ClientT = TypeVar("ClientT", openai.OpenAI, openai.AsyncOpenAI)


class GenerateParams(TypedDict, total=False):
    """The keyword arguments of ``generate`` and ``stream`` besides the messages and the response model.

    Unset values fall back to the role's settings (``temperature``, ``max_tokens``, ...),
    then to the service's defaults.
    """

    json: bool
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    stop: Sequence[str] | None
    model_size: ModelSize
    prompt_name: str | None
    group_id: str | None
    tools: Sequence[ToolSpec] | None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None
    reasoning_effort: ReasoningEffort | None
    reasoning_summary: ReasoningSummary | None
    """Ask a reasoning deployment on the Responses API for a summary of its reasoning
    (``LLMResult.reasoning_summary``)."""
    max_reasks: int | None
    # The openai SDK's spellings, read as azmem's (see azmem.azure.spellings):
    model: str | None
    """A deployment this client sends to: the same as the model_size that selects it."""
    response_format: type[BaseModel] | dict[str, Any] | None
    """A pydantic model (= response_model), ``{"type": "json_object"}`` (= json) or ``{"type": "text"}``."""
    max_completion_tokens: int | None
    """The same as max_tokens."""


_PARAM_NAMES = frozenset(GenerateParams.__annotations__)
_ProviderArg = AzureOpenAISettings | AzureProvider | None


def _provider(arg: _ProviderArg, fallback: AzureOpenAISettings | None) -> tuple[AzureProvider | None, bool]:
    """(provider, whether we built it and so must close it)."""
    if isinstance(arg, AzureProvider):
        return arg, False
    cfg = arg if arg is not None else fallback
    return (AzureProvider(cfg), True) if cfg is not None else (None, False)


class _BaseLLMClient(Generic[ClientT]):
    """Everything both clients do, written once; ``_face`` says how the subclass does I/O.

    Arguments (keyword-only after ``settings``):

    * ``settings``: everything from :meth:`AzmemSettings.load` (env, config file); loaded
      automatically when neither it, ``chat`` nor ``client`` is given.
    * ``chat`` / ``small_chat``: one role's settings or a ready :class:`AzureProvider`;
      ``model_size="small"`` uses ``small_chat`` and falls back to ``chat``.
    * ``client``: the caller's own ``AzureOpenAI``/``OpenAI`` (or async) instance, wrapped
      with every feature kept; ``chat`` settings still name the deployment. Never closed by us.
    * ``router``: a :class:`~azmem.azure.routing.Router` over pools of deployments; each
      attempt then goes where it says (failover instead of sleeping, quota-aware limits).
      Built from ``settings.routing`` when that section is configured. See docs/routing.md.
    * ``tracer``, ``usage``, ``cache``, ``retry``, ``max_reasks``: collaborators and policy;
      ``None`` means azmem's defaults (global tracer, no usage tracking, the settings'
      cache and retry policy, two validation re-asks).
    * ``cache_sampled``: serve sampled calls (temperature unset or above 0, reasoning models)
      from the cache too; ``None``: the settings' ``cache.cache_sampled`` (default off, so
      only ``temperature=0`` calls are cached).
    """

    _face: ClassVar[Face]

    def __init__(
        self,
        settings: AzmemSettings | None = None,
        *,
        chat: AzureOpenAISettings | AzureProvider | None = None,
        small_chat: AzureOpenAISettings | AzureProvider | None = None,
        client: ClientT | None = None,
        tracer: Any | None = None,
        usage: UsageTracker | None = None,
        cache: ResponseCache | None = None,
        retry: RetryPolicy | None = None,
        max_reasks: int = 2,
        router: Router | None = None,
        cache_sampled: bool | None = None,
    ) -> None:
        if settings is None and chat is None and client is None:
            settings = AzmemSettings.load()
        self._routing: RoutedChat | None = None
        if router is None:
            router = Router.from_settings(settings)
        if router is not None:
            if client is not None:
                raise InvalidInputError(
                    "client= wraps one deployment; router= sends to several",
                    suggestion="Pass either client= or router=, not both.",
                )
            base = chat if isinstance(chat, AzureOpenAISettings) else (settings.chat if settings else None)
            self._routing = RoutedChat(router, base)
            # The role settings are the pools' shared base; per-call defaults (temperature,
            # max_tokens, ...) come from each pool's first deployment, which inherits them.
            if not isinstance(chat, AzureProvider):
                chat = self._routing.first_provider("medium")
            if not isinstance(small_chat, AzureProvider):
                small_chat = self._routing.first_provider("small")
        chat_cfg = settings.chat if settings is not None else None
        if client is not None:
            if isinstance(chat, AzureProvider):
                raise InvalidInputError(
                    "pass either client= or a chat AzureProvider, not both",
                    suggestion="Build the provider with AzureProvider(settings, client=...) instead.",
                )
            cfg = chat if chat is not None else chat_cfg
            if cfg is None:
                raise InvalidInputError(
                    "client= needs chat settings naming the deployment",
                    suggestion="Pass chat=AzureOpenAISettings(deployment='<name>', ...) with the client.",
                )
            # The provider never closes a caller's client, so it is safe for us to close it.
            chat_provider, own_chat = self._wrap_client(cfg, client), True
        else:
            found, own_chat = _provider(chat, chat_cfg)
            if found is None:
                assert settings is not None
                settings.role("chat")  # raises the ConfigurationError that names the env vars
                raise AssertionError("unreachable")
            chat_provider = found
        small, own_small = _provider(small_chat, settings.small_chat if settings is not None else None)
        self._chat = chat_provider
        self._small = small if small is not None else chat_provider
        self._owned = [
            p for p, own in ((chat_provider, own_chat), (small, own_small)) if own and p is not None
        ]
        self._owned_cache: ResponseCache | None = None
        if cache is None and settings is not None and settings.cache.enabled:
            cache = self._owned_cache = ResponseCache(
                settings.cache_path, ttl_seconds=settings.cache.ttl_seconds
            )
        policy = retry or (settings.retry if settings is not None else RetryPolicy())
        # An explicit retry= wins over every role's own policy (as in AzureEmbedder).
        self._role_retry = retry is None
        if cache_sampled is None:
            cache_sampled = settings.cache.cache_sampled if settings is not None else False
        self._env = ChatEnv(
            policy=policy, tracer=tracer, usage=usage, cache=cache, cache_sampled=cache_sampled
        )
        self._max_reasks = max_reasks
        self._targets: dict[ModelSize, Target] = {}
        self._performers: dict[ModelSize, Callable[[Send], Any]] = {}

    @staticmethod
    def _wrap_client(cfg: AzureOpenAISettings, client: Any) -> AzureProvider:
        if isinstance(client, openai.AsyncOpenAI):
            return AzureProvider(cfg, async_client=client)
        return AzureProvider(cfg, client=client)

    @property
    def usage(self) -> UsageTracker | None:
        return self._env.usage

    @property
    def cache(self) -> ResponseCache | None:
        return self._env.cache

    def _provider_for(self, size: ModelSize) -> AzureProvider:
        if size == "small":
            return self._small
        if size == "medium":
            return self._chat
        raise InvalidInputError(f"model_size must be 'small' or 'medium', not {size!r}")

    def _target(self, size: ModelSize) -> Target:
        target = self._targets.get(size)
        if target is None:
            provider = self._provider_for(size)
            retry = provider.settings.retry if self._role_retry else None
            target = self._targets[size] = Target.of(provider, provider.capabilities, retry=retry)
        return target

    def _deployment_sizes(self) -> dict[str, str]:
        """Which ``model=`` names select which model size: the deployments (or routed pools) we send to."""
        names: dict[str, str] = {}
        sizes: tuple[ModelSize, ...] = ("small", "medium")
        for size in sizes:
            names[self._provider_for(size).deployment] = size
            if self._routing is not None:
                names[self._routing.pool_for(size)] = size
        return names

    def _options(self, response_model: type[BaseModel] | None, params: GenerateParams) -> ChatOptions:
        if not params.keys() <= _PARAM_NAMES:
            unknown = params.keys() - _PARAM_NAMES
            raise InvalidInputError(f"unknown generate() argument(s): {', '.join(sorted(unknown))}")
        if not SDK_NAMES.isdisjoint(params):
            translated, response_model = translate_sdk_params(
                params, response_model, deployments=self._deployment_sizes()
            )
            params = GenerateParams(**translated)  # type: ignore[typeddict-item]
        size: ModelSize = params.get("model_size", "medium")
        cfg = self._provider_for(size).settings
        tools = params.get("tools")
        stop = params.get("stop")
        max_reasks = params.get("max_reasks")
        max_tokens = params.get("max_tokens")
        temperature = params.get("temperature")
        top_p = params.get("top_p")
        effort = params.get("reasoning_effort")
        tool_params = tuple(tool_param(t) for t in tools) if tools else None
        if response_model is not None and tool_params:
            loose = [t["function"]["name"] for t in tool_params if not t.get("function", {}).get("strict")]
            if loose:
                # chat.completions.parse only accepts strict function tools alongside a schema.
                raise InvalidInputError(
                    f"tools {loose} are not strict, which structured output (response_model) requires",
                    suggestion="Pass the tools as pydantic models, or add 'strict': True to their function.",
                )
        return ChatOptions(
            response_model=response_model,
            json=bool(params.get("json", False)),
            max_tokens=max_tokens if max_tokens is not None else cfg.max_tokens,
            temperature=temperature if temperature is not None else cfg.temperature,
            top_p=top_p if top_p is not None else cfg.top_p,
            seed=params.get("seed"),
            stop=tuple(stop) if stop else None,
            tools=tool_params,
            tool_choice=params.get("tool_choice"),
            reasoning_effort=effort if effort is not None else cfg.reasoning_effort,
            reasoning_summary=params.get("reasoning_summary"),
            model_size=size,
            prompt_name=params.get("prompt_name"),
            group_id=params.get("group_id"),
            max_reasks=self._max_reasks if max_reasks is None else max_reasks,
        )

    def _prepare_stream(
        self, messages: str | Sequence[MessageInput], params: GenerateParams
    ) -> tuple[Target, list[Message], ChatOptions]:
        """:meth:`_prepare` for ``stream()``, which yields text only."""
        target, msgs, options = self._prepare(messages, None, params)
        if options.json or options.tools:
            raise InvalidInputError("stream() yields text; use generate() for JSON or tool calls")
        return target, msgs, options

    def _prepare(
        self,
        messages: str | Sequence[MessageInput],
        response_model: type[BaseModel] | None,
        params: GenerateParams,
    ) -> tuple[Target, list[Message], ChatOptions]:
        options = self._options(response_model, params)
        return self._target(options.model_size), normalize_messages(messages), options

    def _perform(self, size: ModelSize) -> Callable[[Send], Any]:
        perform = self._performers.get(size)
        if perform is None:
            perform = self._performers[size] = performer(self._face.sdk(self._provider_for(size)))
        return perform

    def _generation(
        self,
        messages: str | Sequence[MessageInput],
        response_model: type[BaseModel] | None,
        params: GenerateParams,
    ) -> tuple[Flow[LLMResult[Any]], Callable[[Send], Any]]:
        """One ``generate`` call's flow and the perform that runs its steps, for the face's driver."""
        target, msgs, options = self._prepare(messages, response_model, params)
        if self._routing is not None:
            flow, current = self._routing.generate(self._env, msgs, options)
            return flow, self._face.routed(self._routing, current)
        return generate_flow(target, self._env, msgs, options), self._perform(options.model_size)

    def _stream(
        self, target: Target, msgs: list[Message], options: ChatOptions, view: StreamView
    ) -> AsyncGenerator[str, None]:
        perform = self._perform(options.model_size) if self._routing is None else None
        return stream_pieces(self._face, self._env, self._routing, perform, target, msgs, options, view)

    async def _close(self) -> None:
        """Close the SDK clients this client created (never a caller's own)."""
        for provider in self._owned:
            await self._face.close(provider)
        if self._routing is not None:
            await self._face.close(self._routing)
        if self._owned_cache is not None:
            self._owned_cache.close()


class LLMClient(_BaseLLMClient[openai.OpenAI]):
    """Chat completions on Azure OpenAI, blocking."""

    _face = BLOCKING

    @overload
    def generate(
        self,
        messages: str | Sequence[MessageInput],
        *,
        response_model: type[T],
        **params: Unpack[GenerateParams],
    ) -> LLMResult[T]: ...
    @overload
    def generate(
        self,
        messages: str | Sequence[MessageInput],
        *,
        response_model: None = None,
        **params: Unpack[GenerateParams],
    ) -> LLMResult[Any]: ...
    def generate(
        self,
        messages: str | Sequence[MessageInput],
        *,
        response_model: type[T] | None = None,
        **params: Unpack[GenerateParams],
    ) -> LLMResult[Any]:
        """Ask the deployment for one answer: text, a JSON dict (``json=True``) or a ``response_model``."""
        return drive(*self._generation(messages, response_model, params))

    def stream(self, messages: str | Sequence[MessageInput], **params: Unpack[GenerateParams]) -> LLMStream:
        """Yield the answer's text as it arrives; usage is recorded when the stream ends.

        The returned :class:`~azmem.azure.streams.LLMStream` iterates as text pieces and, once
        iterated to the end, has ``text``, ``finish_reason``, ``usage`` and ``result``.
        """
        target, msgs, options = self._prepare_stream(messages, params)
        return LLMStream(lambda view: self._stream(target, msgs, options, view))

    def close(self) -> None:
        """Close the SDK clients this client created (never a caller's own)."""
        run_blocking(self._close())

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncLLMClient(_BaseLLMClient[openai.AsyncOpenAI]):
    """Chat completions on Azure OpenAI, awaitable; the same flows as :class:`LLMClient`."""

    _face = ASYNC

    @overload
    async def generate(
        self,
        messages: str | Sequence[MessageInput],
        *,
        response_model: type[T],
        **params: Unpack[GenerateParams],
    ) -> LLMResult[T]: ...
    @overload
    async def generate(
        self,
        messages: str | Sequence[MessageInput],
        *,
        response_model: None = None,
        **params: Unpack[GenerateParams],
    ) -> LLMResult[Any]: ...
    async def generate(
        self,
        messages: str | Sequence[MessageInput],
        *,
        response_model: type[T] | None = None,
        **params: Unpack[GenerateParams],
    ) -> LLMResult[Any]:
        """Same contract as :meth:`LLMClient.generate`."""
        return await drive_async(*self._generation(messages, response_model, params))

    def stream(
        self, messages: str | Sequence[MessageInput], **params: Unpack[GenerateParams]
    ) -> AsyncLLMStream:
        """Same contract as :meth:`LLMClient.stream`, as an async iterator (:class:`AsyncLLMStream`)."""
        target, msgs, options = self._prepare_stream(messages, params)
        return AsyncLLMStream(lambda view: self._stream(target, msgs, options, view))

    async def aclose(self) -> None:
        """Close the SDK clients this client created (never a caller's own)."""
        await self._close()

    async def __aenter__(self) -> AsyncLLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
