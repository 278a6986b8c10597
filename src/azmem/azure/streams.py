"""What ``stream()`` returns: an iterator of text that also knows, at its end, how the answer ended.

Before, ``stream()`` yielded bare strings and kept the finish reason and the usage to itself
(it recorded them in the usage tracker and span only). A caller of the SDK's streams expects
to learn both; so the stream object still yields the text pieces (code that iterates it is
unchanged) and, once iterated to the end, also answers ``text``, ``finish_reason``,
``usage``, ``reasoning_summary`` and ``result`` (an :class:`LLMResult` like ``generate``'s).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import httpx2
import openai

from azmem.azure.chat import ChatEnv, Target, open_stream_flow, record_usage, span_attributes
from azmem.azure.errors import map_sdk_error
from azmem.azure.faces import END, Face
from azmem.azure.flow import Send, call_span, iterate_blocking
from azmem.azure.messages import Message
from azmem.azure.request import ChatOptions
from azmem.azure.response import LLMResult, StreamState
from azmem.azure.responses import ResponsesStreamState
from azmem.azure.routing.flow import RoutedChat
from azmem.azure.tracing import activate
from azmem.azure.usage import Usage
from azmem.errors import AzmemError, NetworkError

__all__ = ["AsyncLLMStream", "LLMStream", "StreamView", "stream_pieces"]


class _State(Protocol):
    """What both stream states (chat chunks, Responses events) expose."""

    usage: Usage | None
    finish_reason: str | None
    model: str | None
    request_id: str | None

    @property
    def text(self) -> str: ...

    @property
    def reasoning_summary(self) -> str | None: ...


class StreamView:
    """The answer so far, and how it ended once ``done``; filled in by the client's stream generator."""

    __slots__ = ("_deployment", "_done", "_state")

    def __init__(self) -> None:
        self._state: _State | None = None
        self._deployment = ""
        self._done = False

    def _bind(self, state: _State, deployment: str) -> None:
        self._state, self._deployment = state, deployment

    def _finish(self) -> None:
        self._done = True

    @property
    def done(self) -> bool:
        """True once the stream ended normally (every piece yielded, usage recorded)."""
        return self._done

    @property
    def text(self) -> str:
        """All the text yielded so far (the whole answer once ``done``)."""
        return self._state.text if self._state is not None else ""

    @property
    def finish_reason(self) -> str | None:
        """``stop``, ``length``, ``tool_calls`` or ``content_filter``; None until the service said."""
        return self._state.finish_reason if self._state is not None else None

    @property
    def usage(self) -> Usage | None:
        """The call's tokens, sent by the service at the end of the stream; None until then."""
        return self._state.usage if self._state is not None else None

    @property
    def reasoning_summary(self) -> str | None:
        return self._state.reasoning_summary if self._state is not None else None

    @property
    def result(self) -> LLMResult[Any]:
        """The finished answer as ``generate`` would return it; only once the stream is ``done``."""
        if not self._done or self._state is None:
            raise RuntimeError("the stream has not finished: iterate it to the end first")
        state = self._state
        return LLMResult(
            text=state.text,
            usage=state.usage or Usage(),
            deployment=self._deployment,
            model=state.model,
            request_id=state.request_id,
            finish_reason=state.finish_reason,
            reasoning_summary=state.reasoning_summary,
        )


class LLMStream(StreamView, Iterator[str]):
    """A blocking stream: ``for piece in stream`` yields text; close it (or use ``with``) to stop early."""

    __slots__ = ("_items",)

    def __init__(self, make: Callable[[StreamView], AsyncGenerator[str, None]]) -> None:
        super().__init__()
        self._items = iterate_blocking(make(self))

    def __iter__(self) -> LLMStream:
        return self

    def __next__(self) -> str:
        return next(self._items)

    def close(self) -> None:
        """Stop reading: the connection is closed and the span ends (nothing is recorded as usage)."""
        self._items.close()

    def __enter__(self) -> LLMStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncLLMStream(StreamView, AsyncIterator[str]):
    """The async twin of :class:`LLMStream`: ``async for``, ``aclose()``, ``async with``."""

    __slots__ = ("_gen",)

    def __init__(self, make: Callable[[StreamView], AsyncGenerator[str, None]]) -> None:
        super().__init__()
        self._gen = make(self)

    def __aiter__(self) -> AsyncLLMStream:
        return self

    async def __anext__(self) -> str:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def __aenter__(self) -> AsyncLLMStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def stream_pieces(
    face: Face,
    env: ChatEnv,
    routing: RoutedChat | None,
    perform: Callable[[Send], Any] | None,
    target: Target,
    msgs: list[Message],
    options: ChatOptions,
    view: StreamView,
) -> AsyncGenerator[str, None]:
    """The text pieces of one streamed answer, for either client (``face``) and either wire protocol.

    Only the opening is retried (and routed); ``view`` learns the state as it fills.
    """
    # Not current: at every yield the caller would run inside it (see llm_span); it is
    # made current only while the stream opens, between no yields.
    with call_span(
        env.tracer,
        f"chat {target.deployment}",
        lambda: _stream_attributes(target, options),
        current=False,
    ) as span:
        with activate(span):
            if routing is not None:
                opening, current = routing.open_stream(env, msgs, options, span)
                sdk_stream, _headers = await face.drive(opening, face.routed(routing, current))
                target = routing.streaming_target(current, span)
            else:
                assert perform is not None
                sdk_stream, _headers = await face.drive(
                    open_stream_flow(target, env, msgs, options, span), perform
                )
        state_type = ResponsesStreamState if target.responses_api else StreamState
        state = state_type(target.context("chat"), max_tokens=options.max_tokens)
        view._bind(state, target.deployment)
        try:
            while (chunk := await face.next_chunk(sdk_stream)) is not END:
                text = state.feed(chunk)
                if text:
                    yield text
        except (openai.OpenAIError, httpx2.TransportError) as exc:
            raise _stream_error(exc, state) from exc
        finally:
            await face.close_stream(sdk_stream)
        _finish_stream(span, env, target, options, state)
        view._finish()


def _stream_attributes(target: Target, options: ChatOptions) -> dict[str, Any]:
    attrs = span_attributes(target, options, cache_enabled=False, operation="chat")
    attrs["gen_ai.request.stream"] = True
    return attrs


def _stream_error(exc: Exception, state: StreamState | ResponsesStreamState) -> AzmemError:
    """A failure in the middle of a stream; never retried (text already reached the caller)."""
    if isinstance(exc, httpx2.TransportError):
        return NetworkError(
            f"The stream from '{state.ctx.deployment}' broke off: {type(exc).__name__}",
            debug_info=state.ctx.debug_info(),
        )
    return map_sdk_error(exc, state.ctx)


def _finish_stream(
    span: Any, env: ChatEnv, target: Target, options: ChatOptions, state: StreamState | ResponsesStreamState
) -> None:
    if state.usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", state.usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", state.usage.output_tokens)
        record_usage(env, target, options, state.usage, cached=False)
    if state.finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [state.finish_reason])
    state.check_finish()
