"""Start/stop, routes, auth and the basic error bodies, through the real openai SDK."""

from __future__ import annotations

import threading

import openai
import pytest

from azmem.emulator import Deployment, Emulator, Fault

MESSAGES = [{"role": "user", "content": "Hello there"}]


def azure(emu: Emulator, **kw: object) -> openai.AzureOpenAI:
    args: dict[str, object] = {**emu.client_kwargs(), **kw}
    return openai.AzureOpenAI(**args)  # type: ignore[arg-type]


def test_context_manager_serves_and_stops_without_leaking_threads() -> None:
    before = {t.name for t in threading.enumerate()}
    with Emulator(deployments=[Deployment("gpt-4o")]) as emu:
        assert emu.endpoint.startswith("http://127.0.0.1:")
        assert emu.running
        with azure(emu) as client:
            reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        assert reply.choices[0].message.content
    assert not emu.running
    assert {t.name for t in threading.enumerate()} - before == set()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.endpoint


def test_dated_chat_route_and_usage(emulator: Emulator) -> None:
    with azure(emulator) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        reply = raw.parse()
    assert emulator.last_request.path == "/openai/deployments/gpt-4o/chat/completions"
    assert emulator.last_request.query == {"api-version": "2024-10-21"}
    assert emulator.last_request.headers["api-key"] == "test-key"
    assert reply.object == "chat.completion"
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0
    assert raw.headers["apim-request-id"] == raw.headers["x-request-id"]
    assert raw.headers["x-ms-region"] == "East US"
    assert int(raw.headers["x-ratelimit-remaining-requests"]) >= 0


def test_v1_chat_embeddings_and_models_with_bearer_key(emulator: Emulator) -> None:
    with openai.OpenAI(base_url=emulator.v1_base_url, api_key="test-key", max_retries=0) as client:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        vectors = client.embeddings.create(model="text-embedding-3-small", input="hello")
        models = client.models.list()
    assert reply.model == "gpt-4o-mini"
    assert len(vectors.data[0].embedding) == 1536
    assert {"gpt-4o", "text-embedding-3-small"} <= {m.id for m in models.data}
    chat_request = emulator.requests[0]
    assert chat_request.path == "/openai/v1/chat/completions"
    assert chat_request.headers["authorization"] == "Bearer test-key"
    assert chat_request.deployment == "gpt-4o-mini"


def test_unknown_deployment_is_azures_404(emulator: Emulator) -> None:
    with azure(emulator) as client, pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-5-typo", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.code == "DeploymentNotFound"
    assert info.value.body == {
        "code": "DeploymentNotFound",
        "message": "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again.",
    }


def test_bad_key_is_401_with_azures_message(emulator: Emulator) -> None:
    with azure(emulator, api_key="wrong") as client, pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.code == "401"
    assert isinstance(info.value.body, dict)
    assert info.value.body["message"].startswith("Access denied due to invalid subscription key")


def test_scripted_replies_in_order_then_generated(emulator: Emulator) -> None:
    emulator.script("gpt-4o", ["first", {"content": "second", "finish_reason": "length"}])
    with azure(emulator) as client:
        texts = [
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
            for _ in range(3)
        ]
    assert [t.choices[0].message.content for t in texts[:2]] == ["first", "second"]
    assert texts[1].choices[0].finish_reason == "length"
    assert (
        texts[2].choices[0].message.content
        == 'This is an emulated reply from gpt-4o. You said: "Hello there"'
    )


def test_429_fault_with_both_retry_headers(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.rate_limit(retry_after=6, retry_after_ms=5500, times=1))
    with azure(emulator) as client:
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        ok = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.response.headers["retry-after"] == "6"
    assert info.value.response.headers["retry-after-ms"] == "5500"
    assert info.value.code == "429"
    assert "Please retry after 6 seconds" in str(info.value.body)
    assert ok.choices[0].message.content


def test_500_fault_is_persistent_until_cleared(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault(status=500))
    with azure(emulator) as client:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        emulator.clear_faults("gpt-4o")
        assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]


def test_reset_between_tests_starts_clean(emulator: Emulator) -> None:
    assert emulator.requests == []
    assert emulator.pending_replies("gpt-4o") == 0


def test_reset_undoes_changes_to_live_deployments(emulator: Emulator) -> None:
    emulator.deployment("gpt-4o").tpm = 5
    emulator.reset()
    assert emulator.deployment("gpt-4o").tpm is None


def test_emulator_never_imports_the_client_layer() -> None:
    import subprocess
    import sys

    code = (
        "import sys, azmem.emulator, azmem.emulator.server, azmem.emulator.app\n"
        "print(sorted(m for m in sys.modules if m.startswith('azmem.azure')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_requests_to_unknown_routes_are_answered_404_and_recorded(emulator: Emulator) -> None:
    """A wrong base URL (here AzureOpenAI given the v1 base URL) shows up in the log with its path."""
    client = openai.AzureOpenAI(
        base_url=emulator.v1_base_url, api_key=emulator.api_key, api_version="2024-10-21", max_retries=0
    )
    with client, pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.code == "404"
    (sent,) = emulator.requests
    assert sent.status == 404
    assert sent.path.startswith("/openai/v1/")
    assert sent.path != "/openai/v1/chat/completions"
    assert sent.json["messages"] == MESSAGES
    assert sent.headers["api-key"] == emulator.api_key
