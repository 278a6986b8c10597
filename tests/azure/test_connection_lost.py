"""Issue 11 §3: a connection the server closed mid-request, or a stream cut mid-way, is not
"Could not connect to <endpoint>": the error says what happened.

The SDK raises ``APIConnectionError`` for all three; what differs is the httpx exception under
it (``ConnectError`` vs ``RemoteProtocolError``) and where it was raised (the SDK's stream
reader). Driven over real HTTP against the emulator: ``Fault.drop`` (closed before any
answer), ``Fault.stream_drop`` (closed after a few chunks), and a stopped emulator (refused).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llm_helpers import Factory, chat_requests, factories

from azmem import errors as E
from azmem.azure.retry import RetryPolicy
from azmem.emulator import Emulator, Fault

ONE_ATTEMPT = RetryPolicy(max_attempts=1)


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


def test_a_connection_closed_before_the_answer_is_a_lost_connection(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault.drop(times=1))
    with pytest.raises(E.NetworkError) as info:
        make_llm("gpt-4o", retry=ONE_ATTEMPT).generate("hi")
    err = info.value
    assert "Could not connect" not in err.message
    assert "closed the connection" in err.message
    assert "before answering" in err.message
    assert err.error_code == "connection_lost"
    assert err.retryable
    assert "endpoint URL" not in (err.suggestion or "")


def test_a_dropped_connection_is_retried_and_then_succeeds(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault.drop(times=1))
    result = make_llm("gpt-4o").generate("hi")
    assert result.text
    assert len(chat_requests(make_llm.emu)) == 2


def test_a_stream_cut_mid_way_says_mid_stream(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault.stream_drop(times=1))
    with pytest.raises(E.NetworkError) as info:
        make_llm("gpt-4o", retry=ONE_ATTEMPT).stream("tell me a long story about the sea")
    err = info.value
    assert "Could not connect" not in err.message
    assert "mid-stream" in err.message
    assert err.error_code == "stream_interrupted"
    assert "stream" in (err.suggestion or "")


def test_a_refused_connection_still_says_could_not_connect(
    emulator_factory: Callable[..., Emulator],
) -> None:
    from azmem.azure.llm import LLMClient
    from azmem.azure.settings import AzureOpenAISettings

    emu = emulator_factory()
    endpoint = emu.endpoint
    emu.stop()
    llm = LLMClient(
        chat=AzureOpenAISettings(endpoint=endpoint, deployment="gpt-4o", api_key="test-key"),
        retry=ONE_ATTEMPT,
    )
    try:
        with pytest.raises(E.NetworkError) as info:
            llm.generate("hi")
    finally:
        llm.close()
    assert info.value.message.startswith(f"Could not connect to {endpoint}")
    assert info.value.error_code == "connect_failed"
