"""A key the service echoes back never survives on the SDK exception kept as ``__cause__``, nor in logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from azmem.azure.llm import LLMClient
from azmem.azure.settings import AzmemSettings
from azmem.emulator import Fault
from azmem.errors import AzmemError

KEY = "s3cret-echoed-key-0123456789"


def _llm(emu: Any) -> LLMClient:
    chat = {"endpoint": emu.endpoint, "deployment": "gpt-4o", "api_key": KEY}
    retry = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.02}
    return LLMClient(AzmemSettings.load(chat=chat, retry=retry))


@pytest.mark.parametrize("status", [400, 500])
def test_the_sdk_exception_on_cause_is_redacted(
    emulator_factory: Any, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    emu = emulator_factory(api_keys=[KEY])
    emu.fault("gpt-4o", Fault(status=status, code="BadThing", message=f"Key {KEY} was rejected by policy"))
    caplog.set_level(logging.DEBUG)
    llm = _llm(emu)
    try:
        with pytest.raises(AzmemError) as info:
            llm.generate("hi")
    finally:
        llm.close()
    err = info.value
    cause: Any = err.__cause__
    assert cause is not None
    shown = [str(err), repr(err.details), str(cause), repr(cause.args), repr(getattr(cause, "body", None))]
    response = getattr(cause, "response", None)
    if response is not None:
        shown += [response.text, repr(dict(response.request.headers))]
    request = getattr(cause, "request", None)
    if request is not None:
        shown.append(repr(dict(request.headers)))
    shown += [r.getMessage() for r in caplog.records]
    shown += [repr(getattr(r, "azmem", "")) for r in caplog.records]
    assert not [s for s in shown if KEY in s]
    assert "rejected by policy" in str(err)
