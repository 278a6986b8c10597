"""Fault injection as clients meet it: 429 variants, 5xx, 408, latency, timeouts, drops, bad bodies,
content filters, outages."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest
from emulator_helpers import MESSAGES, azure
from pydantic import BaseModel

from azmem.emulator import Emulator, Fault


def _chat(client: openai.AzureOpenAI, model: str = "gpt-4o") -> Any:
    return client.chat.completions.create(model=model, messages=MESSAGES)


@pytest.mark.parametrize(
    ("fault", "expected_headers"),
    [
        (Fault.rate_limit(retry_after=6), {"retry-after": "6"}),
        (Fault.rate_limit(retry_after_ms=250), {"retry-after-ms": "250"}),
        (
            Fault.rate_limit(retry_after=2, retry_after_ms=1500),
            {"retry-after": "2", "retry-after-ms": "1500"},
        ),
        (Fault.rate_limit(), {}),
        (Fault.quota_wall(), {"retry-after": "86400"}),
    ],
)
def test_429_retry_header_variants(
    emulator: Emulator, fault: Fault, expected_headers: dict[str, str]
) -> None:
    emulator.fault("gpt-4o", fault)
    with azure(emulator) as client, pytest.raises(openai.RateLimitError) as info:
        _chat(client)
    headers = info.value.response.headers
    present = {k: headers[k] for k in ("retry-after", "retry-after-ms") if k in headers}
    assert present == expected_headers
    body: Any = info.value.body
    assert body["code"] == "429"
    assert body["message"].startswith(
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 "
        "have exceeded token rate limit of your current OpenAI S0 pricing tier."
    )
    if fault.retry_after == 86400:
        assert "Please retry after 86400 seconds." in body["message"]


def test_rpm_wording_and_embeddings_operation(emulator: Emulator) -> None:
    emulator.fault("text-embedding-3-small", Fault.rate_limit(retry_after=1, kind="requests"))
    with azure(emulator) as client, pytest.raises(openai.RateLimitError) as info:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert "Embeddings_Create Operation" in str(info.value.body)
    assert "exceeded call rate limit" in str(info.value.body)
    assert "Please retry after 1 second." in str(info.value.body)


def test_sdk_honours_retry_after_ms_from_the_emulator(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.rate_limit(retry_after_ms=50, times=2))
    with azure(emulator, max_retries=2) as client:
        assert _chat(client).choices
    assert [r.status for r in emulator.requests] == [429, 429, 200]


@pytest.mark.parametrize(
    ("status", "code"), [(500, None), (502, "BadGateway"), (503, "ServiceUnavailable"), (408, "Timeout")]
)
def test_server_error_statuses(emulator: Emulator, status: int, code: str | None) -> None:
    emulator.fault("gpt-4o", Fault.server_error(status, times=1))
    with azure(emulator) as client:
        with pytest.raises(openai.APIStatusError) as info:
            _chat(client)
        assert _chat(client).choices
    assert info.value.status_code == status
    assert info.value.code == code
    if status >= 500:
        assert isinstance(info.value, openai.InternalServerError)
    assert info.value.response.headers["apim-request-id"]


def test_custom_error_fault(emulator: Emulator) -> None:
    emulator.fault(
        "gpt-4o", Fault(status=403, code="Forbidden", message="Public access is disabled.", times=1)
    )
    with azure(emulator) as client, pytest.raises(openai.PermissionDeniedError) as info:
        _chat(client)
    assert info.value.body == {"code": "Forbidden", "message": "Public access is disabled."}


def test_times_counts_down_and_faults_queue_in_order(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.server_error(500, times=2))
    emulator.fault("gpt-4o", Fault.rate_limit(retry_after=1, times=1))
    statuses = []
    with azure(emulator) as client:
        for _ in range(4):
            try:
                _chat(client)
                statuses.append(200)
            except openai.APIStatusError as exc:
                statuses.append(exc.status_code)
    assert statuses == [500, 500, 429, 200]


def test_faults_are_per_deployment(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.server_error(500))
    with azure(emulator) as client:
        assert _chat(client, "gpt-4o-mini").choices
        with pytest.raises(openai.InternalServerError):
            _chat(client)


def test_latency_fault_and_deployment_latency(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.slow(0.2, times=1))
    with azure(emulator) as client:
        start = time.monotonic()
        _chat(client)
        slow = time.monotonic() - start
        start = time.monotonic()
        _chat(client)
        fast = time.monotonic() - start
        emulator.deployment("gpt-4o-mini").latency = (0.1, 0.15)
        start = time.monotonic()
        _chat(client, "gpt-4o-mini")
        ranged = time.monotonic() - start
    assert slow >= 0.2 > fast
    assert ranged >= 0.1


def test_timeout_fault_makes_the_client_time_out_and_server_stays_healthy(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.timeout(10, times=1))
    with azure(emulator, timeout=0.3) as client:
        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            _chat(client)
        assert time.monotonic() - start < 2
        assert _chat(client).choices


def test_dropped_connection_is_api_connection_error(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.drop(times=1))
    with azure(emulator) as client:
        with pytest.raises(openai.APIConnectionError) as info:
            _chat(client)
        assert not isinstance(info.value, openai.APITimeoutError)
        assert _chat(client).choices
    assert [r.status for r in emulator.requests] == [0, 200]


def test_malformed_body_breaks_json_decoding(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.malformed(times=1))
    with azure(emulator) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
        assert raw.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            raw.parse()


def test_prompt_filter_400(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.prompt_filter({"hate": "high"}, jailbreak=True, times=1))
    with azure(emulator) as client, pytest.raises(openai.BadRequestError) as info:
        _chat(client)
    body: Any = info.value.body
    assert info.value.code == "content_filter"
    assert body["param"] == "prompt"
    assert body["status"] == 400
    inner = body["innererror"]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    assert inner["content_filter_result"]["hate"] == {"filtered": True, "severity": "high"}
    assert inner["content_filter_result"]["jailbreak"] == {"filtered": True, "detected": True}
    assert inner["content_filter_result"]["violence"] == {"filtered": False, "severity": "safe"}


def test_output_filter_200_with_filtered_choice(emulator: Emulator) -> None:
    class Answer(BaseModel):
        text: str

    emulator.fault("gpt-4o", Fault.output_filter({"violence": "medium"}, times=2))
    with azure(emulator) as client:
        reply = _chat(client)
        with pytest.raises(openai.ContentFilterFinishReasonError):
            client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Answer)
    choice = reply.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.model_extra["content_filter_results"]["violence"] == {
        "filtered": True,
        "severity": "medium",
    }


def test_outage_switch_503_then_back(emulator: Emulator) -> None:
    emulator.set_outage("gpt-4o", True)
    with azure(emulator) as client:
        with pytest.raises(openai.InternalServerError) as info:
            _chat(client)
        assert _chat(client, "gpt-4o-mini").choices
        emulator.set_outage("gpt-4o", False)
        assert _chat(client).choices
    assert info.value.status_code == 503


def test_outage_drop_mode(emulator: Emulator) -> None:
    emulator.set_outage("gpt-4o", True, mode="drop")
    with azure(emulator) as client, pytest.raises(openai.APIConnectionError):
        _chat(client)


def test_stop_and_start_refuses_then_serves_on_the_same_endpoint(emulator_factory: Any) -> None:
    emu = emulator_factory()
    endpoint = emu.endpoint
    with azure(emu) as client:
        emu.stop()
        with pytest.raises(openai.APIConnectionError):
            _chat(client)
        assert emu.start() == endpoint
        assert _chat(client).choices


def test_persistent_hang_does_not_block_stop(emulator_factory: Any) -> None:
    emu = emulator_factory()
    emu.fault("gpt-4o", Fault.timeout(30))
    with azure(emu, timeout=0.2) as client, pytest.raises(openai.APITimeoutError):
        _chat(client)
    start = time.monotonic()
    emu.stop()
    assert time.monotonic() - start < 3
