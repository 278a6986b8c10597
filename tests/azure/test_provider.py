"""AzureProvider: the URLs, headers, timeouts, proxies and client lifetimes the real SDK ends up with."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import openai
import pytest
from azure_stub_server import StubServer, stub_server

from azmem.azure.provider import AzureProvider
from azmem.azure.settings import AzureOpenAISettings
from azmem.errors import ConfigurationError

KEY = "prov-key-123456"


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with stub_server() as server:
        yield server


def _settings(endpoint: str, **kw: object) -> AzureOpenAISettings:
    return AzureOpenAISettings(endpoint=endpoint, deployment="gpt-4o-prod", api_key=KEY, **kw)  # type: ignore[arg-type]


def _chat(client: openai.OpenAI, provider: AzureProvider) -> str | None:
    reply = client.chat.completions.create(
        model=provider.model_arg(), messages=[{"role": "user", "content": "hi"}]
    )
    return reply.choices[0].message.content


def test_dated_api_routes_by_deployment_with_api_key(stub: StubServer) -> None:
    provider = AzureProvider(_settings(stub.endpoint, api_version="2025-04-01-preview"))
    client = provider.sync_client()
    assert isinstance(client, openai.AzureOpenAI)
    assert _chat(client, provider) == "ok"
    seen = stub.seen[0]
    assert seen.path == "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2025-04-01-preview"
    assert seen.headers["api-key"] == KEY
    assert seen.json["model"] == "gpt-4o-prod"
    assert provider.api_version == "2025-04-01-preview"
    provider.close()


def test_v1_api_uses_openai_client_without_api_version(stub: StubServer) -> None:
    provider = AzureProvider(_settings(stub.endpoint, api_mode="v1"))
    client = provider.sync_client()
    assert type(client) is openai.OpenAI
    assert _chat(client, provider) == "ok"
    seen = stub.seen[0]
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.json["model"] == "gpt-4o-prod"
    assert provider.api_version is None
    provider.close()


@pytest.mark.parametrize("api_mode", ["dated", "v1"])
async def test_async_clients(stub: StubServer, api_mode: str) -> None:
    provider = AzureProvider(_settings(stub.endpoint, api_mode=api_mode))
    client = provider.async_client()
    assert isinstance(client, openai.AsyncOpenAI)
    assert isinstance(client, openai.AsyncAzureOpenAI) == (api_mode == "dated")
    reply = await client.chat.completions.create(
        model=provider.model_arg(), messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "ok"
    assert provider.async_client() is client, "built once"
    await provider.aclose()
    assert client.is_closed()


def test_sdk_retries_are_off_and_timeouts_split(stub: StubServer) -> None:
    provider = AzureProvider(_settings(stub.endpoint, timeout=42, connect_timeout=3))
    client = provider.sync_client()
    assert client.max_retries == 0
    assert isinstance(client.timeout, httpx2.Timeout)
    assert client.timeout.read == 42
    assert client.timeout.connect == 3
    provider.close()


def test_default_headers_are_sent(stub: StubServer) -> None:
    provider = AzureProvider(
        _settings(stub.endpoint, default_headers={"x-team": "memory", "x-ms-useragent": "t"})
    )
    _chat(provider.sync_client(), provider)
    assert stub.seen[0].headers["x-team"] == "memory"
    assert stub.seen[0].headers["x-ms-useragent"] == "t"
    provider.close()


@pytest.mark.parametrize("proxy_form", ["str", "dict"])
def test_proxy_really_carries_the_requests(stub: StubServer, proxy_form: str) -> None:
    """The endpoint does not resolve; only a working proxy (the stub) can answer."""
    proxy: str | dict[str, str] = stub.endpoint if proxy_form == "str" else {"http": stub.endpoint}
    provider = AzureProvider(_settings("http://unreachable-resource.invalid", proxy=proxy))
    assert _chat(provider.sync_client(), provider) == "ok"
    assert stub.seen[0].path.startswith("http://unreachable-resource.invalid/openai/deployments/gpt-4o-prod/")
    provider.close()


async def test_async_proxy_really_carries_the_requests(stub: StubServer) -> None:
    provider = AzureProvider(
        _settings("http://unreachable-resource.invalid", proxy={"http://": stub.endpoint})
    )
    client = provider.async_client()
    await client.chat.completions.create(
        model=provider.model_arg(), messages=[{"role": "user", "content": "x"}]
    )
    assert stub.seen[0].path.startswith("http://unreachable-resource.invalid/openai/")
    await provider.aclose()


def test_proxied_client_keeps_our_timeouts(stub: StubServer) -> None:
    provider = AzureProvider(_settings(stub.endpoint, proxy=stub.endpoint, timeout=9, connect_timeout=2))
    client = provider.sync_client()
    assert client.timeout.read == 9  # type: ignore[union-attr]
    assert client.timeout.connect == 2  # type: ignore[union-attr]
    provider.close()


def test_callers_client_is_wrapped_and_never_closed(stub: StubServer) -> None:
    own = openai.AzureOpenAI(
        azure_endpoint=stub.endpoint, api_key=KEY, api_version="2024-10-21", azure_deployment="gpt-4o-prod"
    )
    provider = AzureProvider(AzureOpenAISettings(deployment="gpt-4o-prod"), client=own)
    wrapped = provider.sync_client()
    assert wrapped.max_retries == 0, "our retry policy decides, never the SDK's"
    assert own.max_retries == 2, "the caller's object is left as it was"
    assert wrapped._client is own._client, "one connection pool: the copy shares the caller's HTTP client"
    assert provider.endpoint.startswith(stub.endpoint)
    assert _chat(provider.sync_client(), provider) == "ok"
    provider.close()
    assert not own.is_closed()
    with pytest.raises(ConfigurationError, match="async_client"):
        provider.async_client()
    own.close()


def test_built_client_is_closed() -> None:
    provider = AzureProvider(_settings("https://x.openai.azure.com"))
    client = provider.sync_client()
    provider.close()
    assert client.is_closed()


def test_missing_values_are_reported_before_any_request() -> None:
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        AzureProvider(AzureOpenAISettings(deployment="d", api_key=KEY))
    with pytest.raises(ConfigurationError, match="LLM_AZURE_DEPLOYMENT"):
        AzureProvider(AzureOpenAISettings(endpoint="https://x.openai.azure.com", api_key=KEY))
    with pytest.raises(ConfigurationError, match="EMBEDDING_AZURE_DEPLOYMENT"):
        AzureProvider(
            AzureOpenAISettings(role="embedding", endpoint="https://x.openai.azure.com", api_key=KEY)
        )


def test_facts() -> None:
    provider = AzureProvider(_settings("https://x.openai.azure.com", model="o3-mini"))
    assert provider.deployment == "gpt-4o-prod"
    assert provider.model_arg() == "gpt-4o-prod"
    assert provider.endpoint == "https://x.openai.azure.com"
    assert provider.capabilities.reasoning is True
    assert provider.auth_kind == "api_key"
    ctx = provider.context("embeddings", attempt=2)
    assert (ctx.operation, ctx.deployment, ctx.attempt, ctx.auth) == (
        "embeddings",
        "gpt-4o-prod",
        2,
        "api_key",
    )
    assert KEY not in repr(provider)


def test_wrapped_client_supplies_its_deployment() -> None:
    own = openai.AzureOpenAI(
        azure_endpoint="https://x.openai.azure.com",
        api_key=KEY,
        api_version="2024-10-21",
        azure_deployment="dep-7",
    )
    provider = AzureProvider(AzureOpenAISettings(), client=own)
    assert provider.deployment == "dep-7"
    assert provider.model_arg() == "dep-7"
    plain = openai.OpenAI(base_url="https://x.openai.azure.com/openai/v1/", api_key=KEY)
    with pytest.raises(ConfigurationError, match="deployment"):
        AzureProvider(AzureOpenAISettings(), client=plain)
    own.close()
    plain.close()
