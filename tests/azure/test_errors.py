"""Every row of docs/errors.md: a real SDK exception, from a real HTTP answer, mapped to our class."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import openai
import pytest
from azure_stub_server import Reply, StubServer, completion, error_body, stub_server
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from azmem import errors as E
from azmem.azure.errors import RequestContext, map_sdk_error
from azmem.azure.headers import parse_retry_after
from azmem.azure.provider import AzureProvider
from azmem.azure.retry import RetryPolicy, call_with_retry
from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
from azmem.azure.tracing import llm_span
from azmem.emulator import Deployment, Emulator, Fault
from azmem.errors import redact

KEY = "sk-azmem-LEAKCHECK-0123456789abcdef"
DEPLOYMENT = "gpt-4o-prod"
DEBUG_HEADERS = {"apim-request-id": "apim-123", "x-request-id": "xreq-456", "x-ms-region": "Sweden Central"}


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with stub_server() as server:
        yield server


def _provider(stub: StubServer, **kw: Any) -> AzureProvider:
    settings = AzureOpenAISettings(
        endpoint=stub.endpoint, deployment=DEPLOYMENT, api_key=KEY, timeout=kw.pop("timeout", 5.0), **kw
    )
    return AzureProvider(settings)


def _call(provider: AzureProvider, **kwargs: Any) -> Any:
    return provider.sync_client().chat.completions.create(
        model=provider.model_arg(), messages=[{"role": "user", "content": "hi"}], **kwargs
    )


def _mapped(stub: StubServer, reply: Reply, **provider_kw: Any) -> E.AzmemError:
    stub.queue(reply)
    provider = _provider(stub, **provider_kw)
    with pytest.raises(openai.OpenAIError) as info:
        _call(provider)
    err = map_sdk_error(info.value, provider.context("chat", attempt=2))
    provider.close()
    return err


CONTENT_FILTER_400 = error_body(
    "content_filter",
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
    param="prompt",
    status=400,
    innererror={
        "code": "ResponsibleAIPolicyViolation",
        "content_filter_result": {
            "hate": {"filtered": True, "severity": "high"},
            "self_harm": {"filtered": False, "severity": "safe"},
            "sexual": {"filtered": False, "severity": "safe"},
            "violence": {"filtered": True, "severity": "medium"},
            "jailbreak": {"filtered": False, "detected": False},
        },
    },
)

ROWS: list[tuple[str, int, dict[str, Any], type[E.AzmemError], bool]] = [
    ("content filter", 400, CONTENT_FILTER_400, E.ContentFilterError, False),
    (
        "context length",
        400,
        error_body(
            "context_length_exceeded",
            "This model's maximum context length is 128000 tokens. However, your messages resulted in "
            "130000 tokens. Please reduce the length of the messages.",
            type="invalid_request_error",
            param="messages",
        ),
        E.ContextLengthError,
        False,
    ),
    (
        "json_schema on old api-version",
        400,
        error_body(
            "BadRequest",
            "response_format value as json_schema is enabled only for api versions "
            "2024-08-01-preview and later",
        ),
        E.JsonSchemaUnsupportedError,
        False,
    ),
    (
        "json word missing",
        400,
        error_body(
            "invalid_request_error",
            "'messages' must contain the word 'json' in some form, to use 'response_format' "
            "of type 'json_object'.",
        ),
        E.InvalidRequestError,
        False,
    ),
    (
        "bad key",
        401,
        error_body(
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
            "valid key for an active subscription and use a correct regional API endpoint for your resource.",
        ),
        E.AuthenticationError,
        False,
    ),
    (
        "forbidden",
        403,
        error_body("403", "Traffic is not from an approved private endpoint."),
        E.PermissionDeniedError,
        False,
    ),
    (
        "deployment not found",
        404,
        error_body(
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment within the "
            "last 5 minutes, please wait a moment and try again.",
        ),
        E.DeploymentNotFoundError,
        False,
    ),
    ("resource not found", 404, error_body("404", "Resource not found"), E.DeploymentNotFoundError, False),
    ("service timeout", 408, error_body("Timeout", "The operation was timeout."), E.TimeoutError, True),
    ("conflict", 409, error_body("409", "Conflict."), E.ConflictError, True),
    ("too large", 413, error_body("413", "Request entity too large."), E.InvalidRequestError, False),
    ("unprocessable", 422, error_body("422", "Unprocessable."), E.InvalidRequestError, False),
    (
        "rate limit",
        429,
        error_body(
            "429",
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have "
            "exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds.",
        ),
        E.RateLimitError,
        True,
    ),
    (
        "quota",
        429,
        error_body("insufficient_quota", "You exceeded your current quota."),
        E.QuotaExceededError,
        False,
    ),
    (
        "server error",
        500,
        error_body("InternalServerError", "The server had an error."),
        E.ServiceError,
        True,
    ),
    ("bad gateway", 502, error_body("502", "Bad gateway."), E.ServiceError, True),
    ("unavailable", 503, error_body("503", "Service unavailable."), E.ServiceError, True),
]


@pytest.mark.parametrize(("name", "status", "body", "cls", "retryable"), ROWS, ids=[r[0] for r in ROWS])
def test_status_rows_map_to_classes(
    stub: StubServer, name: str, status: int, body: dict[str, Any], cls: type[E.AzmemError], retryable: bool
) -> None:
    err = _mapped(stub, Reply(status=status, body=body, headers=DEBUG_HEADERS))
    assert type(err) is cls
    assert err.retryable is retryable
    assert err.status_code == status
    assert err.suggestion, "every mapped error carries an actionable suggestion"
    assert err.debug_info["apim-request-id"] == "apim-123"
    assert err.debug_info["x-request-id"] == "xreq-456"
    assert err.debug_info["x-ms-region"] == "Sweden Central"
    assert err.debug_info["attempt"] == 2
    assert err.debug_info["deployment"] == DEPLOYMENT
    assert err.error_code == body["error"]["code"]


def test_deployment_not_found_names_deployment_and_endpoint(stub: StubServer) -> None:
    err = _mapped(stub, Reply(status=404, body=error_body("DeploymentNotFound", "does not exist")))
    assert err.suggestion is not None
    assert DEPLOYMENT in err.suggestion
    assert stub.endpoint in err.suggestion
    assert "5 minutes" in err.suggestion


def test_content_filter_carries_categories_and_severities(stub: StubServer) -> None:
    err = _mapped(stub, Reply(status=400, body=CONTENT_FILTER_400))
    assert isinstance(err, E.ContentFilterError)
    assert err.source == "prompt"
    assert err.filtered_categories == ["hate", "violence"]
    assert err.severities["hate"] == "high"
    assert err.severities["violence"] == "medium"
    assert err.categories["jailbreak"] == {"filtered": False, "detected": False}
    assert "hate=high" in err.message


def test_output_content_filter_from_parse(stub: StubServer) -> None:
    class Answer(BaseModel):
        text: str

    results = {
        "hate": {"filtered": False, "severity": "safe"},
        "violence": {"filtered": True, "severity": "high"},
    }
    stub.queue(Reply(body=completion("", finish_reason="content_filter", content_filter_results=results)))
    provider = _provider(stub)
    with pytest.raises(openai.ContentFilterFinishReasonError) as info:
        provider.sync_client().chat.completions.parse(
            model=provider.model_arg(), messages=[{"role": "user", "content": "x"}], response_format=Answer
        )
    err = map_sdk_error(info.value, provider.context("chat"))
    assert isinstance(err, E.ContentFilterError)
    assert err.source == "output"
    assert err.filtered_categories == ["violence"]
    provider.close()


def test_length_finish_reason_from_parse(stub: StubServer) -> None:
    class Answer(BaseModel):
        text: str

    stub.queue(Reply(body=completion('{"te', finish_reason="length")))
    provider = _provider(stub)
    with pytest.raises(openai.LengthFinishReasonError) as info:
        provider.sync_client().chat.completions.parse(
            model=provider.model_arg(), messages=[{"role": "user", "content": "x"}], response_format=Answer
        )
    err = map_sdk_error(info.value, provider.context("chat"))
    assert isinstance(err, E.OutputTruncatedError)
    assert "max_tokens" in (err.suggestion or "")
    provider.close()


def test_client_timeout_maps_to_timeout_error(stub: StubServer) -> None:
    err = _mapped(stub, Reply(body=completion(), delay=1.0), timeout=0.2)
    assert type(err) is E.TimeoutError
    assert isinstance(err, E.NetworkError)
    assert err.retryable


def test_dropped_connection_maps_to_network_error(stub: StubServer) -> None:
    err = _mapped(stub, Reply(drop=True))
    assert type(err) is E.NetworkError
    assert err.retryable


def test_refused_connection_maps_to_network_error() -> None:
    with stub_server() as server:
        endpoint = server.endpoint
    provider = AzureProvider(AzureOpenAISettings(endpoint=endpoint, deployment=DEPLOYMENT, api_key=KEY))
    with pytest.raises(openai.APIConnectionError) as info:
        _call(provider)
    err = map_sdk_error(info.value, provider.context("chat"))
    assert type(err) is E.NetworkError
    assert endpoint in err.message
    provider.close()


def test_azmem_error_passes_through_with_attempt_updated() -> None:
    original = E.RateLimitError("slow down", retry_after=1.0)
    ctx = RequestContext("chat", "d", "https://x.openai.azure.com", "2024-10-21", attempt=3)
    assert map_sdk_error(original, ctx) is original
    assert original.debug_info["attempt"] == 3


def test_missing_credentials_is_configuration_error() -> None:
    ctx = RequestContext("chat", "d", "https://x.openai.azure.com", None)
    err = map_sdk_error(openai.OpenAIError("Missing credentials. Please pass one of `api_key`"), ctx)
    assert isinstance(err, E.ConfigurationError)


def test_credential_failure_maps_to_authentication_error() -> None:
    from azure.core.exceptions import ClientAuthenticationError

    err = map_sdk_error(
        ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token"),
        RequestContext("chat", "d", "https://x.openai.azure.com", None, auth="entra"),
    )
    assert isinstance(err, E.AuthenticationError)
    assert "az login" in (err.suggestion or "")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "6"}, 6.0),
        ({"retry-after-ms": "250", "retry-after": "6"}, 0.25),
        ({"retry-after-ms": "-1", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "0"}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "0"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    future = format_datetime(now + timedelta(seconds=30), usegmt=True)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": future}, now=now.timestamp()) == pytest.approx(30.0)
    assert parse_retry_after({"retry-after": past}, now=now.timestamp()) is None


def test_rate_limit_reads_retry_after_from_real_response(stub: StubServer) -> None:
    err = _mapped(stub, Reply(status=429, body=error_body("429", "slow"), headers={"retry-after-ms": "750"}))
    assert isinstance(err, E.RateLimitError)
    assert err.retry_after == pytest.approx(0.75)


def test_errors_pickle_round_trip() -> None:
    err = E.ContentFilterError.from_results({"hate": {"filtered": True, "severity": "high"}}, source="prompt")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is E.ContentFilterError
    assert back.categories == err.categories
    assert str(back) == str(err)


def test_hierarchy_is_catchable_by_root_and_value_error() -> None:
    assert issubclass(E.InvalidInputError, ValueError)
    for cls in (
        E.StoreError,
        E.MemoryNotFoundError,
        E.EmbedderMismatchError,
        E.StructuredOutputError,
        E.RefusalError,
        E.EmptyResponseError,
        E.QuotaExceededError,
    ):
        assert issubclass(cls, E.AzmemError)
    assert E.RefusalError("no", refusal="I can't").refusal == "I can't"


def test_redact_patterns() -> None:
    assert "abcdef123456" not in redact("Authorization: Bearer abcdef123456")
    assert "zzz999zzz999" not in redact("https://x/?api-key=zzz999zzz999&x=1")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    assert jwt not in redact(f"token was {jwt}")
    assert redact("max_tokens: 50 and input_tokens=3") == "max_tokens: 50 and input_tokens=3"


# --------------------------------------------------------------------------- the leak test


TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJjb2duaXRpdmUifQ.c2lnbmF0dXJlLWxlYWstY2hlY2s"


def _traced_call(tracer: Any, provider: AzureProvider) -> None:
    with llm_span(tracer, "chat", {"gen_ai.request.model": DEPLOYMENT, "api_key": KEY}) as span:
        span.set_attribute("azmem.note", f"key={KEY}")
        call_with_retry(
            lambda _attempt: _call(provider),
            policy=RetryPolicy(max_attempts=2),
            ctx=provider.context("chat"),
            span=span,
        )


def test_key_and_token_never_leak(stub: StubServer, caplog: pytest.LogCaptureFixture) -> None:
    """Put a recognisable key and token through settings, errors, logs and spans; find neither."""
    caplog.set_level(logging.DEBUG)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracer_provider.get_tracer("leak")

    # The worst case: the service echoes the credentials it received in its error message.
    def echo(seen: Any) -> Reply:
        creds = f"api-key {seen.headers.get('api-key')} authorization {seen.headers.get('authorization')}"
        return Reply(status=401, body=error_body("401", f"Access denied for {creds}"), headers=DEBUG_HEADERS)

    texts: list[str] = []
    settings = AzmemSettings.load(chat={"endpoint": stub.endpoint, "deployment": DEPLOYMENT, "api_key": KEY})
    texts += [repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json()]

    key_provider = AzureProvider(settings.role("chat"))
    entra = AzureOpenAISettings(endpoint=stub.endpoint, deployment=DEPLOYMENT, credential=lambda: TOKEN)
    entra_provider = AzureProvider(entra)
    texts += [repr(entra), str(entra.model_dump()), repr(key_provider), repr(entra_provider)]
    for provider in (key_provider, entra_provider):
        stub.queue(echo, echo)
        with pytest.raises(E.AuthenticationError) as info:
            _traced_call(tracer, provider)
        err = info.value
        texts += [str(err), repr(err), str(err.to_dict()), str(err.__cause__ or "")]
        provider.close()
    assert any(s.headers.get("api-key") == KEY for s in stub.seen), "the key was really sent"
    sent_auth = [s.headers.get("authorization") or "" for s in stub.seen]
    assert any(TOKEN in a for a in sent_auth), "the token was really sent"

    texts += [r.getMessage() for r in caplog.records] + [str(r.__dict__) for r in caplog.records]
    for span_data in exporter.get_finished_spans():
        texts.append(str(dict(span_data.attributes or {})))
        texts += [str(dict(ev.attributes or {})) for ev in span_data.events]
        texts.append(str(span_data.status.description))
    blob = "\n".join(texts)
    assert "Access denied" in blob, "the echoed message did reach the checked texts"
    assert KEY not in blob
    assert TOKEN not in blob


# --------------------------------------------------------------------------- through the emulator
# The same mapping, against the emulator's Azure-shaped answers (bodies and headers written
# from the service's documentation, independently of azmem).


def _emu_provider(emulator: Emulator, deployment: str = "gpt-4o", **kw: Any) -> AzureProvider:
    settings = AzureOpenAISettings(
        endpoint=emulator.endpoint,
        deployment=deployment,
        api_key=kw.pop("api_key", emulator.api_key),
        timeout=kw.pop("timeout", 5.0),
        **kw,
    )
    return AzureProvider(settings)


def _emu_error(provider: AzureProvider, **create: Any) -> E.AzmemError:
    create.setdefault("messages", [{"role": "user", "content": "hello"}])
    with pytest.raises(openai.OpenAIError) as info:
        provider.sync_client().chat.completions.create(model=provider.model_arg(), **create)
    provider.close()
    return map_sdk_error(info.value, provider.context("chat"))


def test_emulator_unknown_deployment(emulator: Emulator) -> None:
    err = _emu_error(_emu_provider(emulator, deployment="no-such-deployment"))
    assert isinstance(err, E.DeploymentNotFoundError)
    assert err.error_code == "DeploymentNotFound"
    assert "no-such-deployment" in (err.suggestion or "")
    assert emulator.endpoint in (err.suggestion or "")
    assert err.debug_info.get("apim-request-id")
    assert err.debug_info.get("x-ms-region")


def test_emulator_wrong_key(emulator: Emulator) -> None:
    err = _emu_error(_emu_provider(emulator, api_key="wrong-key-000"))
    assert isinstance(err, E.AuthenticationError)
    assert "API key" in (err.suggestion or "")


def test_emulator_expired_entra_token(emulator: Emulator) -> None:
    clock = emulator.use_manual_clock()
    token = emulator.issue_token(ttl_seconds=60)
    clock.advance(120)
    provider = _emu_provider(emulator, api_key=None, credential=lambda: token)
    err = _emu_error(provider)
    assert isinstance(err, E.AuthenticationError)
    assert "token provider" in (err.suggestion or "")
    assert token not in str(err)


def test_emulator_prompt_filter(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.prompt_filter({"hate": "high", "violence": "medium"}, times=1))
    err = _emu_error(_emu_provider(emulator))
    assert isinstance(err, E.ContentFilterError)
    assert set(err.filtered_categories) >= {"hate", "violence"}
    assert err.severities["hate"] == "high"


def test_emulator_context_length(emulator: Emulator) -> None:
    emulator.add_deployment(Deployment("tiny", model="gpt-4o", context_window=64))
    err = _emu_error(
        _emu_provider(emulator, deployment="tiny"), messages=[{"role": "user", "content": "word " * 400}]
    )
    assert isinstance(err, E.ContextLengthError)


def test_emulator_json_schema_on_old_api_version(emulator: Emulator) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "A",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "required": ["a"],
                "additionalProperties": False,
            },
        },
    }
    err = _emu_error(_emu_provider(emulator, api_version="2024-06-01"), response_format=schema)
    assert isinstance(err, E.JsonSchemaUnsupportedError)
    assert "2024-08-01-preview" in (err.suggestion or "")


@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        (Fault.rate_limit(retry_after_ms=1500, times=1), E.RateLimitError),
        (Fault.server_error(503, times=1), E.ServiceError),
        (Fault(status=408, times=1), E.TimeoutError),
        (Fault.drop(times=1), E.NetworkError),
    ],
    ids=["429", "503", "408", "drop"],
)
def test_emulator_transient_faults(emulator: Emulator, fault: Fault, cls: type[E.AzmemError]) -> None:
    emulator.fault("gpt-4o", fault)
    err = _emu_error(_emu_provider(emulator))
    assert type(err) is cls
    assert err.retryable
    if cls is E.RateLimitError:
        assert err.retry_after == pytest.approx(1.5)


def test_emulator_quota_wall_through_the_retry_driver(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.quota_wall())
    provider = _emu_provider(emulator)
    sleeps: list[float] = []
    with pytest.raises(E.QuotaExceededError) as info:
        call_with_retry(
            lambda _n: provider.sync_client().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            ),
            policy=RetryPolicy(),
            ctx=provider.context("chat"),
            sleep=sleeps.append,
        )
    assert info.value.retry_after == pytest.approx(86400)
    assert sleeps == []
    assert len(emulator.requests_for("gpt-4o")) == 1
    provider.close()


@given(ms=st.one_of(st.none(), st.text(max_size=12)), seconds=st.one_of(st.none(), st.text(max_size=40)))
def test_parse_retry_after_never_raises_and_is_positive(ms: str | None, seconds: str | None) -> None:
    headers = {k: v for k, v in (("retry-after-ms", ms), ("retry-after", seconds)) if v is not None}
    value = parse_retry_after(headers)
    assert value is None or value > 0


@given(
    secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=8, max_size=40),
    prefix=st.text(),
)
def test_registered_secrets_never_survive_redaction(secret: str, prefix: str) -> None:
    E.register_secret(secret)
    try:
        assert secret not in redact(f"{prefix}{secret}{prefix}")
    finally:
        E._known_secrets.discard(secret)  # the registry is process-wide: leave no random words in it
