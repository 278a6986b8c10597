"""Audit: a caller's own SDK client whose auth setup fails inside the openai SDK.

The SDK raises plain ``ValueError`` / ``TypeError`` from its auth code (an Azure AD token
provider or an ``api_key`` callable that returns ""); those are configuration problems, so
they must surface as :class:`ConfigurationError` (never retried), judged by where they were
raised and not by their message. A ``ValueError`` raised by the caller's own code is a bug
of theirs and propagates untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from llm_helpers import Factory, factories, settings

from azmem.azure.embedder import AsyncAzureEmbedder, AzureEmbedder
from azmem.errors import ConfigurationError


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


class _Counting:
    """A token provider / key callable that counts its calls and returns ``value``."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.value


def _azure(emu: Any, mode: str, **auth: Any) -> Any:
    kwargs = {k: v for k, v in emu.client_kwargs().items() if k != "api_key"}
    if mode == "sync":
        return openai.AzureOpenAI(**kwargs, **auth)
    return openai.AsyncAzureOpenAI(**kwargs, **auth)


def _close(make_llm: Factory, own: Any) -> None:
    if make_llm.mode == "sync":
        own.close()
    else:
        assert make_llm.runner is not None
        make_llm.runner.run(own.close())


def test_a_token_provider_returning_empty_is_a_configuration_error(make_llm: Factory) -> None:
    emu = make_llm.emu
    provider = _Counting("")
    own = _azure(emu, make_llm.mode, azure_ad_token_provider=provider)
    llm = make_llm(chat=settings(emu), client=own)
    with pytest.raises(ConfigurationError) as info:
        llm.generate("hi")
    assert isinstance(info.value.__cause__, ValueError)
    assert "azure_ad_token_provider" in (info.value.suggestion or "")
    assert provider.calls == 1, "a configuration error is never retried"
    assert emu.requests == [], "nothing reached the service"
    _close(make_llm, own)


def test_a_token_provider_returning_empty_fails_a_stream_the_same_way(make_llm: Factory) -> None:
    emu = make_llm.emu
    provider = _Counting("")
    own = _azure(emu, make_llm.mode, azure_ad_token_provider=provider)
    with pytest.raises(ConfigurationError):
        make_llm(chat=settings(emu), client=own).stream("hi")
    assert provider.calls == 1
    _close(make_llm, own)


def test_an_api_key_callable_returning_empty_is_a_configuration_error(make_llm: Factory) -> None:
    """The v1 client's headers check raises TypeError('Could not resolve authentication method')."""
    emu = make_llm.emu
    key = _Counting("")
    cls = openai.OpenAI if make_llm.mode == "sync" else openai.AsyncOpenAI
    own: Any = cls(base_url=emu.v1_base_url, api_key=key, max_retries=0)
    with pytest.raises(ConfigurationError) as info:
        make_llm(chat=settings(emu), client=own).generate("hi")
    assert isinstance(info.value.__cause__, TypeError | ValueError)
    assert key.calls == 1, "never retried"
    assert emu.requests == []
    _close(make_llm, own)


def test_a_valueerror_from_the_callers_own_token_provider_is_not_mapped(make_llm: Factory) -> None:
    """Same type, raised in the caller's code rather than the SDK's: their bug, untouched."""
    emu = make_llm.emu
    bug = ValueError("Expected azure_ad_token_provider to return a non-empty string")  # same words

    def provider() -> str:
        raise bug

    own = _azure(emu, make_llm.mode, azure_ad_token_provider=provider)
    with pytest.raises(ValueError, match="non-empty string") as info:
        make_llm(chat=settings(emu), client=own).generate("hi")
    assert info.value is bug
    _close(make_llm, own)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_embedder_maps_it_too(emulator: Any, mode: str) -> None:
    import asyncio

    provider = _Counting("")
    own = _azure(emulator, mode, azure_ad_token_provider=provider)
    cfg = settings(emulator, "text-embedding-3-small")
    call: Callable[[], Any]
    if mode == "sync":
        embedder: Any = AzureEmbedder(cfg, client=own)
        call = lambda: embedder.embed(["a"])  # noqa: E731
    else:
        embedder = AsyncAzureEmbedder(cfg, client=own)
        call = lambda: asyncio.run(embedder.aembed(["a"]))  # noqa: E731
    with pytest.raises(ConfigurationError):
        call()
    assert provider.calls == 1
    assert emulator.requests == []
