"""A placeholder API key: one clear error that says so, without the Azure SDK's own log lines."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from azmem.emulator import Emulator

from .conftest import Invoke

CHAIN = (
    "DefaultAzureCredential failed to retrieve a token from the included credentials.\nAttempted credentials:"
)


class _NoTokenCredential:
    """Stands in for DefaultAzureCredential on a machine with no Azure sign-in: logs the chain, fails."""

    def __init__(self, **_: Any) -> None:
        pass

    def get_token(self, *_: Any, **__: Any) -> Any:
        logging.getLogger("azure.identity._credentials.chained").warning(
            "%s\n\tAzureCliCredential: ...", CHAIN
        )
        raise ClientAuthenticationError(message=CHAIN + "\n\tAzureCliCredential: Azure CLI not found on path")

    def close(self) -> None:
        pass


@pytest.fixture
def placeholder_env(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    import azure.identity

    from azmem.azure import auth

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", _NoTokenCredential)
    monkeypatch.setattr(auth, "_logged", set())  # the once-per-endpoint notice stays unspent for other tests
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "<your-api-key>")
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "gpt-4o")
    monkeypatch.setenv("AZMEM_RETRY__MAX_ATTEMPTS", "1")


@pytest.mark.usefixtures("placeholder_env")
def test_a_placeholder_key_is_named_once_and_the_sdk_logs_stay_quiet(
    cli: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = cli("add", "I like tea", "--user", "u")
    assert result.exit_code == 3, result.stderr
    assert (
        "AZURE_OPENAI_API_KEY looks like a placeholder ('<your-api-key>' shape, value not shown)"
        in result.stderr
    )
    assert "so Microsoft Entra ID was tried" in result.stderr
    assert "az login" in result.stderr
    assert result.stderr.count("DefaultAzureCredential failed") == 1
    assert "Attempted credentials" not in result.stderr
    assert [r for r in caplog.records if r.name.startswith("azure.")] == []


@pytest.mark.usefixtures("placeholder_env")
def test_doctor_names_the_placeholder_and_does_not_claim_the_endpoint_answered(
    cli: Invoke, emulator: Emulator
) -> None:
    result = cli("doctor", "--json")
    assert result.exit_code == 1, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert "looks like a placeholder ('<your-api-key>' shape" in checks["auth"]["detail"]
    assert checks["auth"]["status"] == "fail"
    assert checks["endpoint"]["status"] != "ok"
    assert emulator.requests == []
