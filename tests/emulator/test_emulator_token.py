"""Entra ID rehearsal: the emulator's managed-identity endpoint and ``azmem emulator token``."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from emulator_helpers import raw
from typer.testing import CliRunner

from azmem.azure.llm import LLMClient
from azmem.azure.settings import AzureOpenAISettings
from azmem.cli import app
from azmem.cli.emulator import connection_info
from azmem.emulator import Emulator, default_deployments
from azmem.emulator.identity import TOKEN_PATH

SCOPE = "https://cognitiveservices.azure.com/.default"


def test_default_azure_credential_gets_tokens_from_the_emulator(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the two printed variables and no key, azmem's real Entra ID path runs end to end."""
    entra = connection_info(emulator.endpoint, [emulator.api_key], default_deployments())["entra"]
    for name, value in entra.items():
        monkeypatch.setenv(name, value)
    settings = AzureOpenAISettings(endpoint=emulator.endpoint, deployment="gpt-4o", auth="entra")
    with LLMClient(chat=settings) as llm:
        assert llm.generate("hi").text
    authorization = emulator.last_request.headers["authorization"]
    assert authorization.startswith("Bearer emu-")
    assert "api-key" not in emulator.last_request.headers
    assert any(r.path == TOKEN_PATH for r in emulator.requests)


def test_the_token_endpoint_checks_its_secret(emulator: Emulator) -> None:
    path = f"{TOKEN_PATH}?api-version=2019-08-01&resource={SCOPE}"
    status, _, body = raw(emulator, path, method="GET", headers={"X-IDENTITY-HEADER": "wrong"})
    assert status == 401
    status, _, body = raw(emulator, path, method="GET", headers={"X-IDENTITY-HEADER": emulator.api_key})
    assert status == 200
    answer = json.loads(body)
    assert answer["token_type"] == "Bearer"
    assert answer["resource"] == SCOPE
    assert int(answer["expires_on"]) > 0


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, ["emulator", "token", *args])
    assert "Traceback" not in result.stderr
    return result


def test_azmem_emulator_token_prints_a_usable_token(emulator: Emulator) -> None:
    result = _cli("--endpoint", emulator.endpoint, "--key", emulator.api_key)
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    with openai.AzureOpenAI(
        azure_endpoint=emulator.endpoint, azure_ad_token=token, api_version="2024-10-21", max_retries=0
    ) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


def test_token_options_expiry_role_and_json(emulator: Emulator) -> None:
    clock = emulator.use_manual_clock()
    as_json = _cli("--endpoint", emulator.endpoint, "--key", emulator.api_key, "--ttl", "60", "--json")
    token = json.loads(as_json.stdout)["access_token"]
    no_role = _cli("--endpoint", emulator.endpoint, "--key", emulator.api_key, "--no-role").stdout.strip()

    def call(bearer: str) -> int:
        with openai.AzureOpenAI(
            azure_endpoint=emulator.endpoint, azure_ad_token=bearer, api_version="2024-10-21", max_retries=0
        ) as client:
            try:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
            except openai.APIStatusError as exc:
                if exc.code == "PermissionDenied":
                    raise
                return exc.status_code
        return 200

    assert call(token) == 200
    with pytest.raises(openai.AuthenticationError) as denied:
        call(no_role)
    assert denied.value.code == "PermissionDenied"
    clock.advance(61)
    assert call(token) == 401


def test_token_errors_say_what_to_do(emulator: Emulator) -> None:
    refused = _cli("--endpoint", emulator.endpoint, "--key", "not-a-key")
    assert refused.exit_code == 4
    assert "--key" in refused.stderr
    with Emulator() as stopped:
        endpoint = stopped.endpoint
    nobody = _cli("--endpoint", endpoint)
    assert nobody.exit_code == 4
    assert "No emulator answers" in nobody.stderr
