"""Settings: precedence of every source, mem0-shaped input, unknown keys, missing values, capabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from azmem.azure.retry import RetryPolicy
from azmem.azure.settings import (
    DEFAULT_API_VERSION,
    DEFAULT_TOKEN_SCOPE,
    AzmemSettings,
    AzureOpenAISettings,
    default_capabilities,
)
from azmem.errors import ConfigurationError

EP_GENERIC = "https://generic.openai.azure.com"
EP_ROLE = "https://role.openai.azure.com"
EP_FILE = "https://file.openai.azure.com"
EP_ARG = "https://arg.openai.azure.com"


def _key(cfg: AzureOpenAISettings | None) -> str | None:
    assert cfg is not None
    return cfg.api_key.get_secret_value() if cfg.api_key else None


# --------------------------------------------------------------------------- precedence


def test_defaults_without_any_source(tmp_path: Path) -> None:
    s = AzmemSettings.load()
    assert s.chat is None
    assert s.embedding is None
    assert s.embedder == "local"
    assert s.retry == RetryPolicy()
    assert s.home == tmp_path / "azmem-home"  # AZMEM_HOME from the autouse fixture
    assert s.store_path == tmp_path / "azmem-home" / "memory.db"
    assert s.cache_path == tmp_path / "azmem-home" / "cache.db"
    assert s.cache.enabled is False


def test_generic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", EP_GENERIC + "/")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "generic-key-123")
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT_NAME", "dep-name")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-06-01")
    monkeypatch.setenv("AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "emb-3-small")
    s = AzmemSettings.load()
    assert s.chat is not None
    assert s.chat.endpoint == EP_GENERIC
    assert s.chat.deployment == "dep-name"
    assert s.chat.api_version == "2024-06-01"
    assert _key(s.chat) == "generic-key-123"
    assert s.embedding is not None
    assert s.embedding.deployment == "emb-3-small"
    assert s.embedding.endpoint == EP_GENERIC, "the embedder shares the generic endpoint"
    assert _key(s.embedding) == "generic-key-123"
    assert s.embedder == "azure"


def test_generic_env_variants_prefer_the_more_specific_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", EP_GENERIC)
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "dep")
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT_NAME", "dep-name")
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "2025-04-01-preview")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-06-01")
    monkeypatch.setenv("AZURE_OPENAI_USE_MANAGED_IDENTITY", "true")
    chat = AzmemSettings.load().chat
    assert chat is not None
    assert chat.deployment == "dep"
    assert chat.api_version == "2025-04-01-preview"
    assert chat.use_managed_identity is True


def test_role_env_beats_generic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", EP_GENERIC)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "generic-key-123")
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "generic-dep")
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "2024-06-01")
    monkeypatch.setenv("LLM_AZURE_ENDPOINT", EP_ROLE)
    monkeypatch.setenv("LLM_AZURE_OPENAI_API_KEY", "llm-key-123")
    monkeypatch.setenv("LLM_AZURE_DEPLOYMENT", "llm-dep")
    monkeypatch.setenv("LLM_AZURE_API_VERSION", "2025-04-01-preview")
    monkeypatch.setenv("EMBEDDING_AZURE_ENDPOINT", "https://emb.openai.azure.com")
    monkeypatch.setenv("EMBEDDING_AZURE_OPENAI_API_KEY", "emb-key-123")
    monkeypatch.setenv("EMBEDDING_AZURE_DEPLOYMENT", "emb-dep")
    monkeypatch.setenv("EMBEDDING_AZURE_API_VERSION", "2024-02-01")
    s = AzmemSettings.load()
    assert s.chat is not None
    assert s.embedding is not None
    assert (s.chat.endpoint, s.chat.deployment, s.chat.api_version) == (
        EP_ROLE,
        "llm-dep",
        "2025-04-01-preview",
    )
    assert _key(s.chat) == "llm-key-123"
    assert (s.embedding.endpoint, s.embedding.deployment) == ("https://emb.openai.azure.com", "emb-dep")
    assert s.embedding.api_version == "2024-02-01"
    assert _key(s.embedding) == "emb-key-123"


def test_explicit_arguments_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_AZURE_ENDPOINT", EP_ROLE)
    monkeypatch.setenv("LLM_AZURE_DEPLOYMENT", "llm-dep")
    monkeypatch.setenv("LLM_AZURE_OPENAI_API_KEY", "llm-key-123")
    s = AzmemSettings.load(chat={"deployment": "arg-dep", "endpoint": EP_ARG})
    assert s.chat is not None
    assert (s.chat.endpoint, s.chat.deployment) == (EP_ARG, "arg-dep")
    assert _key(s.chat) == "llm-key-123", "fields not given explicitly still come from env"


def test_top_level_api_key_is_honoured_for_every_role(monkeypatch: pytest.MonkeyPatch) -> None:
    """mem0 ignores a top-level api_key and silently uses Entra ID; we do not."""
    monkeypatch.setenv("LLM_AZURE_OPENAI_API_KEY", "env-key-123")
    monkeypatch.setenv("EMBEDDING_AZURE_OPENAI_API_KEY", "env-emb-key-123")
    s = AzmemSettings.load(
        api_key="top-key-123",
        endpoint=EP_ARG,
        chat="gpt-4o",
        embedding={"deployment": "emb", "api_key": "own-emb-key-123"},
    )
    assert _key(s.chat) == "top-key-123"
    assert s.chat is not None
    assert s.chat.endpoint == EP_ARG
    assert s.chat.deployment == "gpt-4o"
    assert _key(s.embedding) == "own-emb-key-123", "a role's own key beats the shared one"


def test_config_file_is_below_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "azmem.yaml"
    path.write_text(
        f"chat:\n  endpoint: {EP_FILE}\n  deployment: file-dep\n  timeout: 12\n"
        "retry:\n  max_attempts: 7\ncache:\n  enabled: true\n"
    )
    monkeypatch.setenv("LLM_AZURE_DEPLOYMENT", "env-dep")
    s = AzmemSettings.load(path)
    assert s.chat is not None
    assert s.chat.endpoint == EP_FILE
    assert s.chat.deployment == "env-dep"
    assert s.chat.timeout == 12
    assert s.retry.max_attempts == 7
    assert s.cache.enabled is True


def test_toml_file_from_azmem_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "azmem.toml"
    path.write_text(
        f'[chat]\nendpoint = "{EP_FILE}"\ndeployment = "o3-prod"\nmodel = "o3-mini"\n'
        '[embedding]\ndeployment = "emb"\ndimensions = 256\n[store]\npath = "/tmp/x.db"\n'
    )
    monkeypatch.setenv("AZMEM_CONFIG", str(path))
    s = AzmemSettings.load()
    assert s.chat is not None
    assert s.embedding is not None
    assert s.chat.resolved_capabilities().reasoning is True
    assert s.embedding.endpoint == EP_FILE, "embedding inherits the chat endpoint"
    assert s.embedding.dimensions == 256
    assert s.store_path == Path("/tmp/x.db")


def test_explicit_dict_config_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_AZURE_DEPLOYMENT", "env-dep")
    s = AzmemSettings.load({"chat": {"endpoint": EP_ARG, "deployment": "dict-dep"}})
    assert s.chat is not None
    assert s.chat.deployment == "dict-dep"


def test_overrides_beat_the_config_dict() -> None:
    s = AzmemSettings.load({"chat": {"endpoint": EP_ARG, "deployment": "a"}}, chat={"deployment": "b"})
    assert s.chat is not None
    assert s.chat.deployment == "b"
    assert s.chat.endpoint == EP_ARG


def test_azmem_prefixed_env_through_pydantic_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZMEM_CACHE__ENABLED", "true")
    monkeypatch.setenv("AZMEM_RETRY__MAX_ATTEMPTS", "9")
    s = AzmemSettings.load()
    assert s.cache.enabled is True
    assert s.retry.max_attempts == 9


def test_small_chat_inherits_from_chat() -> None:
    s = AzmemSettings.load(
        chat={
            "endpoint": EP_ARG,
            "deployment": "gpt-4o",
            "api_key": "k-123456",
            "api_version": "2025-04-01-preview",
        },
        small_chat={"deployment": "gpt-4o-mini"},
    )
    assert s.small_chat is not None
    assert s.small_chat.endpoint == EP_ARG
    assert s.small_chat.api_version == "2025-04-01-preview"
    assert _key(s.small_chat) == "k-123456"
    assert s.small_chat.role == "small_chat"
    assert (
        AzmemSettings.load(chat={"endpoint": EP_ARG, "deployment": "d"}).role("small_chat").deployment == "d"
    )


# --------------------------------------------------------------------------- mem0 shape


MEM0 = {
    "llm": {
        "provider": "azure_openai",
        "config": {
            "model": "gpt-4o-mini",
            "temperature": 0.1,
            "max_tokens": 2000,
            "http_client_proxies": {"https": "http://proxy.local:3128"},
            "azure_kwargs": {
                "api_key": "mem0-key-123",
                "azure_deployment": "my-mini",
                "azure_endpoint": EP_ARG + "/",
                "api_version": "2024-10-21",
                "default_headers": {"x-team": "memory"},
            },
        },
    },
    "embedder": {
        "provider": "azure_openai",
        "config": {
            "model": "text-embedding-3-small",
            "embedding_dims": 512,
            "azure_kwargs": {"azure_deployment": "emb", "azure_endpoint": EP_ARG, "api_key": "mem0-key-123"},
        },
    },
}


def test_mem0_shaped_config_is_accepted() -> None:
    s = AzmemSettings.load(MEM0)
    assert s.chat is not None
    assert s.embedding is not None
    assert s.chat.deployment == "my-mini"
    assert s.chat.model == "gpt-4o-mini"
    assert s.chat.endpoint == EP_ARG
    assert _key(s.chat) == "mem0-key-123"
    assert s.chat.default_headers == {"x-team": "memory"}
    assert s.chat.proxy == {"https://": "http://proxy.local:3128"}
    assert s.chat.temperature == 0.1
    assert s.chat.max_tokens == 2000
    assert s.embedding.deployment == "emb"
    assert s.embedding.dimensions == 512
    assert s.embedder == "azure"


def test_mem0_model_is_the_deployment_when_no_azure_deployment() -> None:
    s = AzmemSettings.load(
        {"llm": {"provider": "azure_openai", "config": {"model": "gpt-4o", "azure_kwargs": {}}}}
    )
    assert s.chat is not None
    assert s.chat.deployment == "gpt-4o"


def test_role_level_azure_kwargs() -> None:
    role = AzureOpenAISettings(
        azure_kwargs={"azure_endpoint": EP_ARG, "azure_deployment": "d", "api_key": "k-1234567"}
    )
    assert role.endpoint == EP_ARG
    assert role.deployment == "d"
    s = AzmemSettings.load(
        chat={"azure_kwargs": {"azure_endpoint": EP_ARG, "azure_deployment": "x"}, "model": "o1"}
    )
    assert s.chat is not None
    assert s.chat.deployment == "x"
    assert s.chat.resolved_capabilities().reasoning is True


def test_is_reasoning_model_maps_to_the_capability() -> None:
    cfg = {"llm": {"provider": "azure_openai", "config": {"model": "my-dep-v2", "is_reasoning_model": True}}}
    s = AzmemSettings.load(cfg)
    assert s.chat is not None
    assert s.chat.resolved_capabilities().reasoning is True


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("kwargs", "bad", "closest"),
    [
        ({"chat": {"deploymnt": "x"}}, "chat.deploymnt", "deployment"),
        (
            {"chat": {"endpoint": EP_ARG, "capabilities": {"reasonng": True}}},
            "capabilities.reasonng",
            "reasoning",
        ),
        ({"retry": {"max_atempts": 3}}, "retry.max_atempts", "max_attempts"),
        ({"cache": {"enabeld": True}}, "cache.enabeld", "enabled"),
        ({"chatt": {"deployment": "x"}}, "chatt", "chat"),
        ({"embeding": {"deployment": "x"}}, "embeding", "embedding"),
        ({"endpont": EP_ARG}, "endpont", "endpoint"),
    ],
)
def test_unknown_keys_name_the_closest_valid_key(kwargs: dict[str, object], bad: str, closest: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AzmemSettings.load(**kwargs)  # type: ignore[arg-type]
    assert bad in info.value.message
    assert f"'{closest}'" in info.value.message
    assert info.value.details["closest"] == closest


def test_mem0_typo_in_azure_kwargs_is_not_silently_dropped() -> None:
    cfg = {"llm": {"provider": "azure_openai", "config": {"azure_kwargs": {"azuer_deployment": "d"}}}}
    with pytest.raises(ConfigurationError, match=r"azuer_deployment.*azure_deployment"):
        AzmemSettings.load(cfg)


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("chat:\n  endpoint: https://a.openai.azure.com\n  api_verison: '2024-10-21'\n")
    with pytest.raises(ConfigurationError, match=r"api_verison.*api_version"):
        AzmemSettings.load(path)


def test_unknown_key_on_direct_construction() -> None:
    with pytest.raises(ConfigurationError, match="deploymnt"):
        AzureOpenAISettings(deploymnt="x")  # type: ignore[call-arg]


def test_unsupported_provider_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="azure_openai"):
        AzmemSettings.load({"llm": {"provider": "openai", "config": {}}})


# --------------------------------------------------------------------------- missing values


def test_missing_endpoint_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_AZURE_DEPLOYMENT", "d")
    s = AzmemSettings.load()
    with pytest.raises(ConfigurationError) as info:
        s.role("chat")
    assert "LLM_AZURE_ENDPOINT" in str(info.value)
    assert "AZURE_OPENAI_ENDPOINT" in str(info.value)
    assert "endpoint=" in str(info.value)


def test_missing_deployment_names_the_env_var() -> None:
    s = AzmemSettings.load(endpoint=EP_ARG)
    with pytest.raises(ConfigurationError, match="LLM_AZURE_DEPLOYMENT"):
        s.role("chat")
    with pytest.raises(ConfigurationError, match="EMBEDDING_AZURE_DEPLOYMENT"):
        s.role("embedding")


def test_embedder_azure_without_deployment_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_EMBEDDING_DEPLOYMENT"):
        AzmemSettings.load(embedder="azure")


def test_missing_config_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        AzmemSettings.load(tmp_path / "nope.yaml")


def test_invalid_value_does_not_echo_the_input() -> None:
    with pytest.raises(ConfigurationError) as info:
        AzmemSettings.load(chat={"endpoint": "not-a-url-secretish"})
    assert "not-a-url-secretish" not in str(info.value)
    assert "chat.endpoint" in str(info.value)


# --------------------------------------------------------------------------- values and capabilities


def test_role_defaults() -> None:
    role = AzureOpenAISettings(endpoint=EP_ARG + "/openai/", deployment="d")
    assert role.endpoint == EP_ARG, "a pasted /openai suffix is stripped"
    assert role.api_version == DEFAULT_API_VERSION == "2024-10-21"
    assert role.token_scope == DEFAULT_TOKEN_SCOPE
    assert role.api_mode == "dated"
    assert role.auth == "auto"


@pytest.mark.parametrize(
    ("name", "reasoning", "json_schema", "vision", "window"),
    [
        ("gpt-4o", False, True, True, 128_000),
        ("gpt-4o-mini-2024-07-18", False, True, True, 128_000),
        ("gpt-4.1-nano", False, True, True, 1_047_576),
        ("gpt-5", True, True, True, 400_000),
        ("gpt-5-mini", True, True, True, 400_000),
        ("gpt-5-chat", False, True, True, 128_000),
        ("o1", True, True, True, 200_000),
        ("o1-mini", True, False, False, 128_000),
        ("o3-mini", True, True, False, 200_000),
        ("o4-mini", True, True, True, 200_000),
        ("gpt-35-turbo", False, False, False, 16_385),
        ("gpt-4", False, False, False, 8_192),
        ("my-custom-deployment", False, True, False, 128_000),
        ("prod-o3-2025", True, True, True, 200_000),
    ],
)
def test_name_based_capability_defaults(
    name: str, reasoning: bool, json_schema: bool, vision: bool, window: int
) -> None:
    caps = default_capabilities(name, api_mode="dated", api_version="2024-10-21")
    assert (caps.reasoning, caps.json_schema, caps.vision, caps.context_window) == (
        reasoning,
        json_schema,
        vision,
        window,
    )


def test_old_api_version_disables_json_schema_but_v1_does_not() -> None:
    old = AzureOpenAISettings(deployment="gpt-4o", api_version="2024-06-01")
    assert old.resolved_capabilities().json_schema is False
    assert (
        AzureOpenAISettings(deployment="gpt-4o", api_version="2024-08-01-preview")
        .resolved_capabilities()
        .json_schema
    )
    v1 = AzureOpenAISettings(deployment="gpt-4o", api_mode="v1", api_version="2024-06-01")
    assert v1.resolved_capabilities().json_schema is True


def test_explicit_capabilities_always_win() -> None:
    """A versioned deployment name must not decide (mem0 sent max_tokens to reasoning deployments)."""
    role = AzureOpenAISettings(
        deployment="o3-mini",
        api_version="2024-06-01",
        capabilities={"reasoning": False, "json_schema": True, "context_window": 4096},
    )
    caps = role.resolved_capabilities()
    assert caps.reasoning is False
    assert caps.json_schema is True
    assert caps.context_window == 4096
    plain = AzureOpenAISettings(deployment="chat-prod-v2", capabilities={"reasoning": True})
    assert plain.resolved_capabilities().reasoning is True


def test_model_name_wins_over_deployment_name_for_defaults() -> None:
    role = AzureOpenAISettings(deployment="prod-chat", model="o4-mini")
    assert role.resolved_capabilities().reasoning is True


def test_secrets_never_shown() -> None:
    key = "sk-SETTINGS-VISIBLE-CHECK-9876"
    secret = "client-SECRET-VISIBLE-CHECK-1234"

    def provider() -> str:
        return "tok"

    s = AzmemSettings.load(
        chat={
            "endpoint": EP_ARG,
            "deployment": "d",
            "api_key": key,
            "client_secret": secret,
            "tenant_id": "t",
            "client_id": "c",
            "credential": provider,
        }
    )
    assert s.chat is not None
    assert s.chat.credential is provider
    for text in (repr(s), str(s), str(s.model_dump()), s.model_dump_json(), repr(s.chat), str(s.chat)):
        assert key not in text
        assert secret not in text
        assert "provider" not in text or "function" not in text
    assert "credential" not in s.chat.model_dump()


def test_proxy_forms() -> None:
    assert AzureOpenAISettings(proxy="http://p:1").proxy == "http://p:1"
    assert AzureOpenAISettings(proxy={"http": "http://p:1", "https://": "http://p:2"}).proxy == {
        "http://": "http://p:1",
        "https://": "http://p:2",
    }


def test_routing_section_is_kept_for_the_router(tmp_path: Path) -> None:
    path = tmp_path / "azmem.yaml"
    path.write_text(
        f"chat: {{endpoint: {EP_FILE}, deployment: gpt-4o}}\n"
        "routing:\n  pools:\n    chat:\n      deployments:\n"
        "        - {endpoint: https://b.openai.azure.com, deployment: x}\n"
    )
    s = AzmemSettings.load(path)
    assert s.routing is not None
    assert s.routing["pools"]["chat"]["deployments"][0]["deployment"] == "x"


def test_pasted_mem0_memory_config_keys_get_specific_advice() -> None:
    cfg = {**MEM0, "vector_store": {"provider": "qdrant", "config": {}}}
    with pytest.raises(ConfigurationError) as info:
        AzmemSettings.load(cfg)
    assert "vector_store" in info.value.message
    assert "store.path" in (info.value.suggestion or "")


def test_azmem_routing_env_belongs_to_the_router(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZMEM_ROUTING", "/somewhere/routing.yaml")
    assert AzmemSettings.load().routing is None


def test_api_version_must_be_dated_in_dated_mode() -> None:
    with pytest.raises(ConfigurationError, match="api_mode='v1'"):
        AzmemSettings.load(chat={"endpoint": EP_ARG, "deployment": "d", "api_version": "v1"})
    with pytest.raises(ConfigurationError, match="2024-10-21"):
        AzmemSettings.load(chat={"endpoint": EP_ARG, "deployment": "d", "api_version": "10/21/2024"})
    ok = AzureOpenAISettings(api_mode="v1", api_version="preview")
    assert ok.api_mode == "v1"


def test_pasted_v1_base_url_selects_the_v1_api() -> None:
    role = AzureOpenAISettings(endpoint=EP_ARG + "/openai/v1/", deployment="d")
    assert role.endpoint == EP_ARG
    assert role.api_mode == "v1"
    assert AzureOpenAISettings(endpoint=EP_ARG + "/openai/v1", api_mode="dated").api_mode == "dated"


def test_keys_inside_the_routing_section_are_not_shown() -> None:
    key = "sk-ROUTING-VISIBLE-CHECK-5555"
    s = AzmemSettings.load(
        routing={"pools": {"chat": {"endpoint": EP_ARG, "deployment": "d", "api_key": key}}}
    )
    assert s.routing is not None
    assert s.routing["pools"]["chat"]["api_key"] == key, "the router still gets the raw value"
    for text in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert key not in text
    from azmem.errors import redact

    assert key not in redact(f"echo {key}")


def test_small_chat_from_azmem_env_inherits_the_chat_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", EP_GENERIC)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "generic-key-123")
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "gpt-4o")
    monkeypatch.setenv("AZMEM_SMALL_CHAT__DEPLOYMENT", "gpt-4o-mini")
    small = AzmemSettings.load().role("small_chat")
    assert small.deployment == "gpt-4o-mini"
    assert small.endpoint == EP_GENERIC
    assert _key(small) == "generic-key-123"


def test_tilde_is_expanded_in_home_store_and_cache_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    s = AzmemSettings.load(home="~/h", store={"path": "~/s.db"}, cache={"path": "~/c.db"})
    assert (s.home, s.store_path, s.cache_path) == (tmp_path / "h", tmp_path / "s.db", tmp_path / "c.db")
    monkeypatch.setenv("AZMEM_HOME", "~/env-home")
    assert AzmemSettings.load().store_path == tmp_path / "env-home" / "memory.db"
