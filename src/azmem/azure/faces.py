"""How each LLM client performs I/O: the only thing the blocking and the async client do differently.

Everything else (flows, streams, closing) is written once as coroutines over a :class:`Face`'s
operations. The async client awaits them; the blocking client runs them with
:func:`~azmem.azure.flow.run_blocking`, its operations wrapping blocking calls that finish
before they return, like httpx's ``Client``/``AsyncClient`` over one transport interface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from azmem.azure.flow import Flow, Send, awaiting, drive, drive_async
from azmem.azure.provider import AzureProvider
from azmem.azure.routing.flow import Current, RoutedChat

__all__ = ["ASYNC", "BLOCKING", "END", "Face"]

END = object()
"""What a face's ``next_chunk`` answers once the stream is done."""


@dataclass(frozen=True, slots=True)
class Face:
    """How one client performs each kind of I/O."""

    sdk: Callable[[AzureProvider], Any]
    routed: Callable[[RoutedChat, Current], Callable[[Send], Any]]
    drive: Callable[[Flow[Any], Callable[[Send], Any]], Awaitable[Any]]
    next_chunk: Callable[[Any], Awaitable[Any]]
    close_stream: Callable[[Any], Awaitable[object]]
    close: Callable[[AzureProvider | RoutedChat], Awaitable[object]]


BLOCKING = Face(
    sdk=AzureProvider.sync_client,
    routed=RoutedChat.perform_sync,
    drive=awaiting(drive),
    next_chunk=awaiting(lambda sdk_stream: next(sdk_stream, END)),
    close_stream=awaiting(lambda sdk_stream: sdk_stream.close()),
    close=awaiting(lambda owned: owned.close()),
)
ASYNC = Face(
    sdk=AzureProvider.async_client,
    routed=RoutedChat.perform_async,
    drive=drive_async,
    next_chunk=lambda sdk_stream: anext(sdk_stream, END),
    close_stream=lambda sdk_stream: sdk_stream.close(),
    close=lambda owned: owned.aclose(),
)
