"""Auth: placeholder keys, the Entra fallback, credentials and token providers through the real SDK."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from azure.core.credentials import AccessToken
from azure_stub_server import StubServer, stub_server

from azmem.azure.auth import is_placeholder_key, plan_auth
from azmem.azure.provider import AzureProvider
from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
from azmem.emulator import Emulator
from azmem.errors import ConfigurationError


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with stub_server() as server:
        yield server


PLACEHOLDERS = [
    None,
    "",
    "   ",
    "\t\n",
    "your-api-key",
    "YOUR_API_KEY",
    "your_key_here",
    "your-azure-openai-key",
    "<your-api-key>",
    "<API_KEY>",
    "xxx",
    "XXXX-XXXX",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "changeme",
    "CHANGE_ME",
    "replace-me",
    "replace_me",
    "insert-your-key-here",
    "key-here",
    "${AZURE_OPENAI_API_KEY}",
    "{api_key}",
    "****",
    "...",
    "placeholder",
    "None",
]
REAL = [
    "0123456789abcdef0123456789abcdef",
    "test-key",  # the emulator's keys are real keys
    "sk-proj-abc",
    "3f1c9a7d5e2b4c6a8e0f1b3d5c7a9e1f",
    "dummy-but-real",
    "your-api-key-is-not-this-one-2f9a",
]


@pytest.mark.parametrize("value", PLACEHOLDERS)
def test_placeholders_mean_no_key(value: str | None) -> None:
    assert is_placeholder_key(value)


@pytest.mark.parametrize("value", REAL)
def test_real_keys_are_kept(value: str) -> None:
    assert not is_placeholder_key(value)


def test_placeholder_key_falls_back_to_entra_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="azmem.azure.auth")
    settings = AzureOpenAISettings(
        endpoint="https://ph-once.openai.azure.com", deployment="d", api_key="<your-key>"
    )
    for _ in range(3):
        plan = plan_auth(settings)
        assert plan.kind == "entra"
        assert plan.api_key is None
        assert plan.source == "DefaultAzureCredential"
    lines = [r.getMessage() for r in caplog.records if r.name == "azmem.azure.auth"]
    assert len(lines) == 1
    assert "placeholder" in lines[0]
    assert "Entra ID" in lines[0]
    assert "<your-key>" not in lines[0]


def test_real_key_uses_the_key() -> None:
    plan = plan_auth(
        AzureOpenAISettings(endpoint="https://k.openai.azure.com", deployment="d", api_key=" k-1234567 ")
    )
    assert plan.kind == "api_key"
    assert plan.api_key == "k-1234567"


def test_auth_api_key_without_a_key_is_an_error() -> None:
    settings = AzureOpenAISettings(
        endpoint="https://k.openai.azure.com", deployment="d", auth="api_key", api_key="xxx"
    )
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_API_KEY"):
        plan_auth(settings)


def test_auth_entra_ignores_a_real_key() -> None:
    settings = AzureOpenAISettings(
        endpoint="https://k.openai.azure.com", deployment="d", auth="entra", api_key="k-1234567"
    )
    assert plan_auth(settings).kind == "entra"


def test_credential_choice() -> None:
    from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

    base = {"endpoint": "https://c.openai.azure.com", "deployment": "d"}
    mi = plan_auth(AzureOpenAISettings(**base, use_managed_identity=True, managed_identity_client_id="cid-1"))
    sp = plan_auth(AzureOpenAISettings(**base, tenant_id="t", client_id="c", client_secret="s-1234567"))
    default = plan_auth(AzureOpenAISettings(**base))
    assert (mi.source, sp.source, default.source) == (
        "ManagedIdentityCredential",
        "ClientSecretCredential",
        "DefaultAzureCredential",
    )
    assert isinstance(mi._build(asynchronous=False), ManagedIdentityCredential)
    assert isinstance(sp._build(asynchronous=False), ClientSecretCredential)
    assert isinstance(default._build(asynchronous=False), DefaultAzureCredential)
    for plan in (mi, sp, default):
        plan.close()


async def test_async_credentials_are_built_from_azure_identity_aio() -> None:
    pytest.importorskip("aiohttp", reason="azure.identity.aio needs aiohttp")
    from azure.identity.aio import ManagedIdentityCredential

    plan = plan_auth(
        AzureOpenAISettings(endpoint="https://c.openai.azure.com", deployment="d", use_managed_identity=True)
    )
    assert isinstance(plan._build(asynchronous=True), ManagedIdentityCredential)
    await plan.aclose()


def test_access_token_instead_of_a_credential_is_rejected() -> None:
    """The seed's mistake: `credential.get_token(scope)` passed where a provider belongs."""
    token = AccessToken("eyJabc.def.ghi", int(time.time()) + 3600)
    with pytest.raises(ConfigurationError, match=r"get_token"):
        plan_auth(
            AzureOpenAISettings(endpoint="https://c.openai.azure.com", deployment="d", credential=token)
        )


def test_fixed_token_string_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="expires"):
        plan_auth(
            AzureOpenAISettings(endpoint="https://c.openai.azure.com", deployment="d", credential="eyJ.a.b")
        )


class CountingCredential:
    """A TokenCredential whose tokens live ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.calls = 0
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.calls += 1
        self.scopes.append(scopes)
        return AccessToken(f"tok-{self.calls}", int(time.time() + self.ttl))


class AsyncCountingCredential(CountingCredential):
    async def get_token(self, *scopes: str, **_: Any) -> AccessToken:  # type: ignore[override]
        return CountingCredential.get_token(self, *scopes)

    async def close(self) -> None:
        pass


def _bearers(stub: StubServer) -> list[str]:
    return [s.headers.get("authorization", "") for s in stub.seen]


def _chat(provider: AzureProvider) -> None:
    provider.sync_client().chat.completions.create(
        model=provider.model_arg(), messages=[{"role": "user", "content": "x"}]
    )


@pytest.mark.parametrize("api_mode", ["dated", "v1"])
def test_token_credential_is_cached_until_near_expiry(stub: StubServer, api_mode: str) -> None:
    cred = CountingCredential(ttl=3600)
    settings = AzureOpenAISettings(
        endpoint=stub.endpoint,
        deployment="gpt-4o",
        credential=cred,
        api_mode=api_mode,
        token_scope="https://ai.azure.com/.default",
    )
    provider = AzureProvider(settings)
    _chat(provider)
    _chat(provider)
    assert _bearers(stub) == ["Bearer tok-1", "Bearer tok-1"]
    assert cred.scopes[0] == ("https://ai.azure.com/.default",), "the configured scope is used"
    assert "api-key" not in stub.seen[0].headers
    provider.close()


@pytest.mark.parametrize("api_mode", ["dated", "v1"])
def test_expiring_tokens_are_refreshed(stub: StubServer, api_mode: str) -> None:
    cred = CountingCredential(ttl=1)  # inside the refresh window: every request gets a fresh token
    provider = AzureProvider(
        AzureOpenAISettings(endpoint=stub.endpoint, deployment="gpt-4o", credential=cred, api_mode=api_mode)
    )
    _chat(provider)
    _chat(provider)
    assert _bearers(stub) == ["Bearer tok-1", "Bearer tok-2"]
    provider.close()


@pytest.mark.parametrize("api_mode", ["dated", "v1"])
async def test_async_credential_serves_the_async_client(stub: StubServer, api_mode: str) -> None:
    cred = AsyncCountingCredential(ttl=1)
    provider = AzureProvider(
        AzureOpenAISettings(endpoint=stub.endpoint, deployment="gpt-4o", credential=cred, api_mode=api_mode)
    )
    for _ in range(2):
        await provider.async_client().chat.completions.create(
            model=provider.model_arg(), messages=[{"role": "user", "content": "x"}]
        )
    assert _bearers(stub) == ["Bearer tok-1", "Bearer tok-2"]
    with pytest.raises(ConfigurationError, match="async"):
        provider.sync_client()
    await provider.aclose()


@pytest.mark.parametrize("api_mode", ["dated", "v1"])
async def test_sync_credential_also_serves_the_async_client(stub: StubServer, api_mode: str) -> None:
    cred = CountingCredential(ttl=3600)
    provider = AzureProvider(
        AzureOpenAISettings(endpoint=stub.endpoint, deployment="gpt-4o", credential=cred, api_mode=api_mode)
    )
    await provider.async_client().chat.completions.create(
        model=provider.model_arg(), messages=[{"role": "user", "content": "x"}]
    )
    assert _bearers(stub) == ["Bearer tok-1"]
    await provider.aclose()


def test_plain_callable_token_provider(stub: StubServer) -> None:
    tokens = iter(["cb-1", "cb-2"])
    provider = AzureProvider(
        AzureOpenAISettings(endpoint=stub.endpoint, deployment="gpt-4o", credential=lambda: next(tokens))
    )
    _chat(provider)
    _chat(provider)
    assert _bearers(stub) == ["Bearer cb-1", "Bearer cb-2"], "called on every request"
    provider.close()


def test_callable_returning_an_access_token_explains_the_mistake(stub: StubServer) -> None:
    cred = CountingCredential(ttl=3600)
    provider = AzureProvider(
        AzureOpenAISettings(
            endpoint=stub.endpoint,
            deployment="gpt-4o",
            credential=lambda: cred.get_token("https://cognitiveservices.azure.com/.default"),
        )
    )
    with pytest.raises(ConfigurationError) as info:
        _chat(provider)
    assert "AccessToken" in info.value.message
    assert "get_bearer_token_provider" in info.value.message
    assert stub.seen == [], "nothing was sent"
    provider.close()


def test_top_level_key_reaches_the_wire(stub: StubServer) -> None:
    settings = AzmemSettings.load(api_key="top-level-key-1", endpoint=stub.endpoint, chat="gpt-4o")
    provider = AzureProvider(settings.role("chat"))
    _chat(provider)
    assert stub.seen[0].headers["api-key"] == "top-level-key-1"
    assert "authorization" not in stub.seen[0].headers
    provider.close()


async def test_without_aiohttp_async_tokens_come_from_the_sync_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import azure.identity

    from azmem.azure import auth

    monkeypatch.setattr(auth, "_has_async_transport", lambda: False)
    cred = CountingCredential(ttl=3600)
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", lambda **_: cred)
    plan = plan_auth(AzureOpenAISettings(endpoint="https://noaio.openai.azure.com", deployment="d"))
    provider = plan.async_token_provider()
    assert await provider() == "tok-1"
    assert await provider() == "tok-1"
    assert cred.calls == 1


def test_credential_class_instead_of_instance_is_rejected() -> None:
    from azure.identity import DefaultAzureCredential

    with pytest.raises(ConfigurationError, match=r"DefaultAzureCredential\(\)"):
        plan_auth(
            AzureOpenAISettings(
                endpoint="https://c.openai.azure.com", deployment="d", credential=DefaultAzureCredential
            )
        )


def test_use_managed_identity_beats_a_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://mi.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "d")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "real-key-123456")
    monkeypatch.setenv("AZURE_OPENAI_USE_MANAGED_IDENTITY", "true")
    plan = plan_auth(AzmemSettings.load().role("chat"))
    assert plan.kind == "entra"
    assert plan.source == "ManagedIdentityCredential"


class EmulatorCredential:
    """A TokenCredential that gets its tokens from the emulator's issuer (they really expire)."""

    def __init__(self, emulator: Emulator, ttl: float) -> None:
        self.emulator = emulator
        self.ttl = ttl
        self.issued: list[str] = []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        token = self.emulator.issue_token(ttl_seconds=self.ttl)
        self.issued.append(token)
        return AccessToken(token, int(time.time() + self.ttl))


def test_emulator_tokens_refresh_where_a_fixed_token_expires(emulator: Emulator) -> None:
    clock = emulator.use_manual_clock()
    cred = EmulatorCredential(emulator, ttl=120)  # inside the refresh window: a new token per request
    refreshing = AzureProvider(
        AzureOpenAISettings(endpoint=emulator.endpoint, deployment="gpt-4o", credential=cred)
    )
    fixed_token = emulator.issue_token(ttl_seconds=120)
    fixed = AzureProvider(
        AzureOpenAISettings(endpoint=emulator.endpoint, deployment="gpt-4o", credential=lambda: fixed_token)
    )
    _chat(refreshing)
    _chat(fixed)
    clock.advance(600)  # every token issued so far has expired
    _chat(refreshing)
    assert len(cred.issued) == 2
    with pytest.raises(openai.AuthenticationError):
        _chat(fixed)
    sent = [r.headers.get("authorization") for r in emulator.requests_for("gpt-4o")]
    assert sent[0] == f"Bearer {cred.issued[0]}"
    assert sent[2] == f"Bearer {cred.issued[1]}"
    refreshing.close()
    fixed.close()


def test_emulator_placeholder_key_uses_the_token_provider(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="azmem.azure.auth")
    cred = EmulatorCredential(emulator, ttl=3600)
    settings = AzmemSettings.load(
        chat={
            "endpoint": emulator.endpoint,
            "deployment": "gpt-4o",
            "api_key": "<your-api-key>",
            "auth": "auto",
        }
    )
    # A placeholder key and no credential: Entra ID with DefaultAzureCredential, announced once.
    assert plan_auth(settings.role("chat")).kind == "entra"
    assert any("placeholder" in r.getMessage() for r in caplog.records)
    provider = AzureProvider(settings.role("chat").model_copy(update={"credential": cred}))
    _chat(provider)
    assert emulator.requests_for("gpt-4o")[-1].status == 200
    assert "api-key" not in emulator.requests_for("gpt-4o")[-1].headers
    provider.close()
