"""Shared test setup: every test gets its own azmem home so no test touches the user's data."""

from __future__ import annotations

from pathlib import Path

import pytest

_AZURE_ENV = (
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_DEPLOYMENT",
    "AZURE_OPENAI_DEPLOYMENT_NAME",
    "AZURE_OPENAI_EMBEDDING_DEPLOYMENT",
    "AZURE_OPENAI_API_VERSION",
    "OPENAI_API_VERSION",
    "AZURE_OPENAI_USE_MANAGED_IDENTITY",
    "LLM_AZURE_OPENAI_API_KEY",
    "LLM_AZURE_DEPLOYMENT",
    "LLM_AZURE_ENDPOINT",
    "LLM_AZURE_API_VERSION",
    "EMBEDDING_AZURE_OPENAI_API_KEY",
    "EMBEDDING_AZURE_DEPLOYMENT",
    "EMBEDDING_AZURE_ENDPOINT",
    "EMBEDDING_AZURE_API_VERSION",
    "AZURE_OPENAI_AD_TOKEN",
    "OPENAI_API_KEY",
    "AZMEM_CONFIG",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's real Azure variables and data directory out of every test."""
    for name in _AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZMEM_HOME", str(tmp_path / "azmem-home"))
