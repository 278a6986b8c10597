"""Auth forms, Entra-style tokens that expire, and api-version handling, like the service."""

from __future__ import annotations

import json

import openai
import pytest
from emulator_helpers import MESSAGES, azure, raw, v1

from azmem.emulator import Deployment, Emulator

TOKEN_BODY = {
    "statusCode": 401,
    "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired.",
}


def test_api_key_header_and_bearer_key_both_accepted(emulator: Emulator) -> None:
    with azure(emulator) as dated, v1(emulator) as plain:
        dated.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        plain.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    first, second = emulator.requests
    assert first.headers["api-key"] == "test-key"
    assert "authorization" not in first.headers
    assert second.headers["authorization"] == "Bearer test-key"


def test_issued_token_works_until_it_expires(emulator: Emulator) -> None:
    clock = emulator.use_manual_clock()
    token = emulator.issue_token(ttl_seconds=60)
    with openai.AzureOpenAI(
        azure_endpoint=emulator.endpoint,
        azure_ad_token_provider=lambda: token,
        api_version="2024-10-21",
        max_retries=0,
    ) as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert emulator.last_request.headers["authorization"] == f"Bearer {token}"
        clock.advance(61)
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.body == TOKEN_BODY
    assert info.value.code is None


def test_token_without_role_is_permission_denied(emulator: Emulator) -> None:
    token = emulator.issue_token(ttl_seconds=60, authorized=False)
    with (
        openai.AzureOpenAI(
            azure_endpoint=emulator.endpoint,
            azure_ad_token_provider=lambda: token,
            api_version="2024-10-21",
            max_retries=0,
        ) as client,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.code == "PermissionDenied"
    assert info.value.body == {
        "code": "PermissionDenied",
        "message": "Principal does not have access to API/Operation.",
    }


def test_token_provider_refresh_is_called_every_attempt(emulator: Emulator) -> None:
    clock = emulator.use_manual_clock()
    calls: list[str] = []

    def provider() -> str:
        calls.append(emulator.issue_token(ttl_seconds=10))
        return calls[-1]

    with openai.AzureOpenAI(
        azure_endpoint=emulator.endpoint,
        azure_ad_token_provider=provider,
        api_version="2024-10-21",
        max_retries=0,
    ) as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        clock.advance(30)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(set(calls)) == 2


def test_unknown_bearer_token_gets_the_entra_message(emulator: Emulator) -> None:
    with v1(emulator, api_key="not-a-key") as client, pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.body == TOKEN_BODY


def test_missing_credentials_is_401_missing_key(emulator: Emulator) -> None:
    status, headers, body = raw(
        emulator,
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        {"messages": MESSAGES},
        headers={"api-key": ""},
    )
    assert status == 401
    status, headers, body = raw(
        emulator,
        "/openai/v1/chat/completions",
        {"model": "gpt-4o", "messages": MESSAGES},
        headers={"api-key": "x"},
    )
    assert status == 401
    assert json.loads(body)["error"]["message"].startswith("Access denied due to invalid subscription key")
    assert headers["apim-request-id"]


def test_auth_can_be_turned_off(emulator_factory: object) -> None:
    emu = emulator_factory(deployments=[Deployment("gpt-4o")], auth_required=False)  # type: ignore[operator]
    with azure(emu, api_key="anything") as client:
        assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices


def test_missing_or_malformed_api_version_is_resource_not_found(emulator: Emulator) -> None:
    for query in ("", "?api-version=latest", "?api-version=2024-13"):
        status, _, body = raw(
            emulator, f"/openai/deployments/gpt-4o/chat/completions{query}", {"messages": MESSAGES}
        )
        assert status == 404, query
        assert json.loads(body) == {"error": {"code": "404", "message": "Resource not found"}}


def test_wrong_v1_url_from_azure_client_is_resource_not_found(emulator: Emulator) -> None:
    # The documented mistake: AzureOpenAI(base_url=".../openai/v1/") builds a deployments URL under v1.
    with (
        openai.AzureOpenAI(
            base_url=emulator.v1_base_url, api_key="test-key", api_version="2024-10-21", max_retries=0
        ) as client,
        pytest.raises(openai.NotFoundError) as info,
    ):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.body == {"code": "404", "message": "Resource not found"}


def test_invalid_json_body_is_400(emulator: Emulator) -> None:
    status, _, body = raw(
        emulator, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", data=b"{not json"
    )
    assert status == 400
    assert "could not parse the JSON body" in json.loads(body)["error"]["message"]


def test_v1_without_model_is_400(emulator: Emulator) -> None:
    status, _, body = raw(emulator, "/openai/v1/chat/completions", {"messages": MESSAGES})
    assert status == 400
    assert json.loads(body)["error"]["param"] == "model"


def test_azure_deployment_argument_and_client_request_id(emulator: Emulator) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=emulator.endpoint,
        azure_deployment="gpt-4o-mini",
        api_key="test-key",
        api_version="2024-10-21",
        max_retries=0,
    ) as client:
        raw_reply = client.chat.completions.with_raw_response.create(
            model="ignored", messages=MESSAGES, extra_headers={"x-ms-client-request-id": "abc-123"}
        )
    assert emulator.last_request.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert raw_reply.headers["x-ms-client-request-id"] == "abc-123"


def test_dated_models_list(emulator: Emulator) -> None:
    with azure(emulator) as client:
        names = {m.id for m in client.models.list()}
    assert "o3-mini" in names
