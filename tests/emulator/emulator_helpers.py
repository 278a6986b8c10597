"""Shared helpers for the emulator tests: SDK clients and raw HTTP against a running emulator."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import openai

from azmem.emulator import Emulator

MESSAGES: list[Any] = [{"role": "user", "content": "Hello there"}]


def azure(emu: Emulator, **kw: Any) -> openai.AzureOpenAI:
    """An AzureOpenAI client on the emulator, SDK retries off (each test sees each answer)."""
    return openai.AzureOpenAI(**{**emu.client_kwargs(), **kw})


def v1(emu: Emulator, **kw: Any) -> openai.OpenAI:
    args: dict[str, Any] = {"base_url": emu.v1_base_url, "api_key": emu.api_key, "max_retries": 0}
    args.update(kw)
    return openai.OpenAI(**args)


def raw(
    emu: Emulator,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    method: str | None = None,
    data: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request without the SDK, for what the SDK cannot send (no api-version, bad JSON)."""
    payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    sent = {"content-type": "application/json", "api-key": emu.api_key}
    sent.update(headers or {})
    request = urllib.request.Request(emu.endpoint + path, data=payload, headers=sent, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
