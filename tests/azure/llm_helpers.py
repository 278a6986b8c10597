"""Builders for the LLM and embedder tests: real clients, real SDK, the emulator on loopback.

``Driver`` gives one face to both clients so every behaviour is asserted for sync and
async alike (the parity the architecture promises): the async client runs on one
``asyncio.Runner`` per test, so its HTTP pool lives on a single loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from azmem.azure.llm import AsyncLLMClient, LLMClient
from azmem.azure.retry import RetryPolicy
from azmem.azure.settings import AzureOpenAISettings

API_KEY = "test-key"
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02, retry_after_ceiling=5.0)

Mode = Literal["sync", "async"]


def settings(emu: Any, deployment: str = "gpt-4o", **kw: Any) -> AzureOpenAISettings:
    base: dict[str, Any] = {"endpoint": emu.endpoint, "deployment": deployment, "api_key": API_KEY}
    base.update(kw)
    return AzureOpenAISettings(**base)


class Driver:
    """``generate``/``stream`` with the same signature whichever client is underneath."""

    def __init__(self, mode: Mode, client: LLMClient | AsyncLLMClient, runner: asyncio.Runner | None) -> None:
        self.mode = mode
        self.client = client
        self._runner = runner

    def generate(self, messages: Any, **kw: Any) -> Any:
        if isinstance(self.client, LLMClient):
            return self.client.generate(messages, **kw)
        assert self._runner is not None
        return self._runner.run(self.client.generate(messages, **kw))

    def stream(self, messages: Any, **kw: Any) -> list[str]:
        if isinstance(self.client, LLMClient):
            return list(self.client.stream(messages, **kw))
        assert self._runner is not None
        client = self.client

        async def collect() -> list[str]:
            return [piece async for piece in client.stream(messages, **kw)]

        return self._runner.run(collect())

    def close(self) -> None:
        if isinstance(self.client, LLMClient):
            self.client.close()
        else:
            assert self._runner is not None
            self._runner.run(self.client.aclose())


class Factory:
    """Makes drivers for one test and closes them (and the async loop) afterwards."""

    def __init__(self, emu: Any, mode: Mode) -> None:
        self.emu = emu
        self.mode = mode
        self.runner: asyncio.Runner | None = asyncio.Runner() if mode == "async" else None
        self._made: list[Driver] = []

    def __call__(
        self,
        deployment: str = "gpt-4o",
        *,
        small: str | None = None,
        retry: RetryPolicy | None = FAST_RETRY,
        chat_kw: dict[str, Any] | None = None,
        **client_kw: Any,
    ) -> Driver:
        chat = client_kw.pop("chat", None) or settings(self.emu, deployment, **(chat_kw or {}))
        if small is not None:
            client_kw["small_chat"] = settings(self.emu, small)
        cls = LLMClient if self.mode == "sync" else AsyncLLMClient
        driver = Driver(self.mode, cls(chat=chat, retry=retry, **client_kw), self.runner)
        self._made.append(driver)
        return driver

    def close(self) -> None:
        for driver in self._made:
            driver.close()
        if self.runner is not None:
            self.runner.close()


def factories(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    """Body of each module's parametrised ``make_llm`` fixture (sync and async)."""
    factory = Factory(emulator, request.param)
    yield factory
    factory.close()


class Spans:
    """A local TracerProvider with an in-memory exporter; passed explicitly, never installed globally."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("azmem-tests")

    @property
    def finished(self) -> Sequence[ReadableSpan]:
        return self.exporter.get_finished_spans()

    def only(self) -> ReadableSpan:
        spans = self.finished
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]


def chat_requests(emu: Any) -> list[Any]:
    return [r for r in emu.requests if r.path.endswith("/chat/completions")]
