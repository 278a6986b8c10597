"""Audit of issue 2 §2: every source's rank, per role and field, and docs/configuration.md's examples.

The precedence matrix builds the sources up from the lowest (a config file) to the highest
(explicit arguments) and checks after each step that the newest source won, for each field
of each role. The role-specific variables of one role must never reach another role over
the generic ones (an ``LLM_AZURE_*`` key sent to the embedding resource would be both a 401
and a leaked key).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from azmem.azure.settings import DEFAULT_API_VERSION, AzmemSettings, AzureOpenAISettings
from azmem.errors import ConfigurationError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

# field -> (role -> generic variable, role -> role-specific variable)
_GENERIC = {
    "chat": {
        "endpoint": "AZURE_OPENAI_ENDPOINT",
        "api_key": "AZURE_OPENAI_API_KEY",
        "deployment": "AZURE_OPENAI_DEPLOYMENT",
        "api_version": "OPENAI_API_VERSION",
    },
    "embedding": {
        "endpoint": "AZURE_OPENAI_ENDPOINT",
        "api_key": "AZURE_OPENAI_API_KEY",
        "deployment": "AZURE_OPENAI_EMBEDDING_DEPLOYMENT",
        "api_version": "OPENAI_API_VERSION",
    },
}
_ROLE = {
    "chat": {
        "endpoint": "LLM_AZURE_ENDPOINT",
        "api_key": "LLM_AZURE_OPENAI_API_KEY",
        "deployment": "LLM_AZURE_DEPLOYMENT",
        "api_version": "LLM_AZURE_API_VERSION",
    },
    "embedding": {
        "endpoint": "EMBEDDING_AZURE_ENDPOINT",
        "api_key": "EMBEDDING_AZURE_OPENAI_API_KEY",
        "deployment": "EMBEDDING_AZURE_DEPLOYMENT",
        "api_version": "EMBEDDING_AZURE_API_VERSION",
    },
}
_VALUES = {
    "endpoint": lambda level: f"https://{level}.openai.azure.com",
    "api_key": lambda level: f"{level}-key-0123456789",
    "deployment": lambda level: f"{level}-deployment",
    "api_version": lambda level: {
        "file": "2024-06-01",
        "generic": "2024-08-01-preview",
        "role": "2025-01-01-preview",
        "explicit": "2025-04-01-preview",
    }[level],
}
_BASE = {  # the other fields, so the role exists whatever field is under test
    "endpoint": "https://base.openai.azure.com",
    "deployment": "base-deployment",
}


def _value(cfg: AzureOpenAISettings, field: str) -> Any:
    value = getattr(cfg, field)
    return value.get_secret_value() if field == "api_key" and value is not None else value


@pytest.mark.parametrize("field", ["endpoint", "api_key", "deployment", "api_version"])
@pytest.mark.parametrize("role", ["chat", "embedding"])
def test_each_source_beats_the_ones_below_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, role: str, field: str
) -> None:
    base = {k: v for k, v in _BASE.items() if k != field}

    def load(explicit: dict[str, Any] | None = None) -> AzureOpenAISettings:
        cfg = getattr(AzmemSettings.load(**({role: explicit} if explicit else {})), role)
        assert cfg is not None
        return cfg

    # defaults
    file = tmp_path / "azmem.yaml"
    file.write_text(yaml.safe_dump({role: base}), encoding="utf-8")
    monkeypatch.setenv("AZMEM_CONFIG", str(file))
    if field == "api_version":
        assert load().api_version == DEFAULT_API_VERSION
    # config file
    file.write_text(yaml.safe_dump({role: {**base, field: _VALUES[field]("file")}}), encoding="utf-8")
    assert _value(load(), field) == _VALUES[field]("file")
    # generic env
    monkeypatch.setenv(_GENERIC[role][field], _VALUES[field]("generic"))
    assert _value(load(), field) == _VALUES[field]("generic")
    # role-specific env
    monkeypatch.setenv(_ROLE[role][field], _VALUES[field]("role"))
    assert _value(load(), field) == _VALUES[field]("role")
    # explicit arguments
    assert _value(load({field: _VALUES[field]("explicit")}), field) == _VALUES[field]("explicit")


def test_chat_only_variables_never_reach_the_embedding_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://shared.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "shared-key-0123456789")
    monkeypatch.setenv("LLM_AZURE_ENDPOINT", "https://chat-only.openai.azure.com")
    monkeypatch.setenv("LLM_AZURE_OPENAI_API_KEY", "chat-only-key-0123456789")
    monkeypatch.setenv("LLM_AZURE_DEPLOYMENT", "chat")
    monkeypatch.setenv("EMBEDDING_AZURE_DEPLOYMENT", "embed")
    s = AzmemSettings.load()
    assert s.chat is not None
    assert s.embedding is not None
    assert s.chat.endpoint == "https://chat-only.openai.azure.com"
    assert _value(s.chat, "api_key") == "chat-only-key-0123456789"
    assert s.embedding.endpoint == "https://shared.openai.azure.com"
    assert _value(s.embedding, "api_key") == "shared-key-0123456789"


def test_a_chat_key_is_never_sent_to_another_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """No generic key: the embedding resource gets no key (so Entra ID), never chat's."""
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://shared.openai.azure.com")
    monkeypatch.setenv("LLM_AZURE_ENDPOINT", "https://chat-only.openai.azure.com")
    monkeypatch.setenv("LLM_AZURE_OPENAI_API_KEY", "chat-only-key-0123456789")
    monkeypatch.setenv("LLM_AZURE_DEPLOYMENT", "chat")
    monkeypatch.setenv("EMBEDDING_AZURE_DEPLOYMENT", "embed")
    s = AzmemSettings.load()
    assert s.embedding is not None
    assert s.embedding.endpoint == "https://shared.openai.azure.com"
    assert s.embedding.api_key is None


def test_an_explicit_chat_key_is_not_inherited_by_a_role_on_another_resource() -> None:
    explicit = AzmemSettings.load(
        chat={"endpoint": "https://a.openai.azure.com", "api_key": "a-key-0123456789", "deployment": "c"},
        small_chat={"endpoint": "https://b.openai.azure.com/", "deployment": "mini"},
    )
    assert explicit.small_chat is not None
    assert explicit.small_chat.api_key is None, "a's key is not b's"
    same = AzmemSettings.load(
        chat={"endpoint": "https://a.openai.azure.com", "api_key": "a-key-0123456789", "deployment": "c"},
        small_chat={"endpoint": "https://A.openai.azure.com/openai/", "deployment": "mini"},
    )
    assert same.small_chat is not None
    assert _value(same.small_chat, "api_key") == "a-key-0123456789", "same resource, other spelling"


def test_chat_only_variables_still_serve_an_embedding_role_that_has_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_AZURE_ENDPOINT", "https://chat.openai.azure.com")
    monkeypatch.setenv("LLM_AZURE_OPENAI_API_KEY", "chat-key-0123456789")
    monkeypatch.setenv("LLM_AZURE_DEPLOYMENT", "chat")
    monkeypatch.setenv("EMBEDDING_AZURE_DEPLOYMENT", "embed")
    s = AzmemSettings.load()
    assert s.embedding is not None
    assert s.embedding.endpoint == "https://chat.openai.azure.com"
    assert _value(s.embedding, "api_key") == "chat-key-0123456789"


def test_top_level_api_key_beats_env_for_every_role(monkeypatch: pytest.MonkeyPatch) -> None:
    """A top-level api_key argument is honoured for every role (mem0 reads only azure_kwargs)."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key-0123456789")
    s = AzmemSettings.load(
        endpoint="https://x.openai.azure.com", api_key="arg-key-0123456789", chat="c", embedding="e"
    )
    assert s.chat is not None
    assert s.embedding is not None
    assert _value(s.chat, "api_key") == _value(s.embedding, "api_key") == "arg-key-0123456789"


# --------------------------------------------------------------------------- docs/configuration.md

_BLOCK = re.compile(r"```(yaml|toml|python)\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(DOCS.read_text(encoding="utf-8"))]


def test_configuration_docs_have_examples() -> None:
    kinds = {kind for kind, _ in _blocks()}
    assert kinds == {"yaml", "toml", "python"}


@pytest.mark.parametrize("index", range(len(_blocks())) if DOCS.exists() else [])
def test_configuration_docs_examples_load(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every example in docs/configuration.md is loaded as written (python blocks run their asserts)."""
    kind, text = _blocks()[index]
    monkeypatch.chdir(tmp_path)
    if kind in {"yaml", "toml"}:
        path = tmp_path / f"azmem.{kind}"
        path.write_text(text, encoding="utf-8")
        settings = AzmemSettings.load(path)
        assert settings.chat is not None or settings.embedding is not None or "retry" in text
    else:
        namespace: dict[str, Any] = {"__name__": "docs_example"}
        try:
            exec(compile(text, f"{DOCS.name}[{index}]", "exec"), namespace)
        except ConfigurationError as exc:  # pragma: no cover - shown on failure
            pytest.fail(f"example {index} raised {exc!r}")


# --------------------------------------------------------------------------- placeholders are no secrets


@pytest.mark.parametrize("placeholder", ["api-key", "AZURE_OPENAI_API_KEY", "your-api-key"])
def test_a_placeholder_key_is_not_registered_as_a_secret(placeholder: str) -> None:
    """Registering "api-key" would blank it out of every message and defeat the api-key=... pattern."""
    from azmem import errors

    try:
        role = {"endpoint": "https://x.openai.azure.com", "deployment": "d", "api_key": placeholder}
        AzmemSettings.load(chat=role)
        AzmemSettings.load(routing={"pools": {"chat": [{"api_key": placeholder}]}})
        assert placeholder not in errors._known_secrets
        assert "zzz999zzz999" not in errors.redact("https://x/?api-key=zzz999zzz999&x=1")
        assert "AZURE_OPENAI_API_KEY" in errors.redact("Set AZURE_OPENAI_API_KEY or api_key=...")
    finally:
        errors._known_secrets.discard(placeholder)  # the registry is process-wide
