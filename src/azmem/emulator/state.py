"""The emulator's mutable state, shared between the test thread and the server thread.

Every method takes the one lock, so a test can script, inject faults or read the request log while
the server answers concurrent requests. Time for quota windows and token expiry comes from a
replaceable clock so tests can move it forward instead of sleeping.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .config import Deployment, Fault

WINDOW_SECONDS = 60.0
NOMINAL_TPM = 1_000_000
NOMINAL_RPM = 10_000

Reply = Any  # str | dict | Fault | list[list[float]] | Callable[[dict], Reply]
OutageMode = Literal["503", "drop"]


class Clock(Protocol):
    def __call__(self) -> float: ...


class ManualClock:
    """A clock that moves only when told to, for quota-window and token-expiry tests."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass
class RecordedRequest:
    """One request as the emulator received it, for asserting what a client sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    deployment: str | None = None
    status: int | None = None
    time: float = field(default_factory=time.time)


@dataclass
class QuotaDecision:
    allowed: bool
    limit: Literal["token", "call"] | None = None
    retry_after: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class _Window:
    """A sliding one-minute window of (time, tokens) admitted requests for one deployment."""

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()

    def prune(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - WINDOW_SECONDS:
            self.entries.popleft()

    def tokens(self) -> int:
        return sum(t for _, t in self.entries)

    def wait_for_tokens(self, now: float, needed: int, limit: int) -> float:
        """Seconds until enough old entries leave the window for `needed` more tokens to fit."""
        used = self.tokens()
        if needed > limit:
            return WINDOW_SECONDS
        for ts, tok in self.entries:
            used -= tok
            if used + needed <= limit:
                return max(ts + WINDOW_SECONDS - now, 0.0)
        return WINDOW_SECONDS


class EmulatorState:
    def __init__(
        self,
        deployments: list[Deployment],
        api_keys: tuple[str, ...] | list[str],
        *,
        auth_required: bool = True,
        region: str = "East US",
        clock: Clock | None = None,
    ) -> None:
        self._lock = threading.RLock()
        # Copies: tests may change a live Deployment (latency, tpm); reset() must undo that.
        self._initial = [dataclasses.replace(d) for d in deployments]
        self.deployments: dict[str, Deployment] = {d.name: dataclasses.replace(d) for d in deployments}
        self.api_keys: set[str] = set(api_keys)
        self.auth_required = auth_required
        self.region = region
        self.clock: Clock = clock or time.monotonic
        self._scripts: dict[str, deque[Reply]] = {}
        self._responders: dict[str, Callable[[dict[str, Any]], Reply]] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._windows: dict[str, _Window] = {}
        self._outages: dict[str, OutageMode] = {}
        self._tokens: dict[str, tuple[float, bool]] = {}
        self.requests: list[RecordedRequest] = []
        self.stopping = threading.Event()

    # -- deployments -------------------------------------------------------------------------------
    def add_deployment(self, deployment: Deployment) -> None:
        with self._lock:
            self.deployments[deployment.name] = deployment

    def get_deployment(self, name: str) -> Deployment | None:
        with self._lock:
            return self.deployments.get(name)

    # -- scripts -------------------------------------------------------------------------------------
    def script(self, deployment: str, replies: Any) -> None:
        with self._lock:
            if callable(replies) and not isinstance(replies, Fault):
                self._responders[deployment] = replies
            else:
                if isinstance(replies, str | dict | Fault):
                    replies = [replies]
                self._scripts.setdefault(deployment, deque()).extend(replies)

    def next_reply(self, deployment: str) -> tuple[bool, Reply]:
        """(found, reply): the next queued reply, else the deployment's responder, else nothing."""
        with self._lock:
            queue = self._scripts.get(deployment)
            if queue:
                return True, queue.popleft()
            responder = self._responders.get(deployment)
        if responder is not None:
            return True, responder
        return False, None

    def pending_replies(self, deployment: str) -> int:
        with self._lock:
            return len(self._scripts.get(deployment, ()))

    # -- faults --------------------------------------------------------------------------------------
    def add_fault(self, deployment: str, fault: Fault) -> None:
        with self._lock:
            # A copy: `times` counts down, and the caller may reuse the same Fault elsewhere.
            self._faults.setdefault(deployment, []).append(dataclasses.replace(fault))

    def clear_faults(self, deployment: str | None = None) -> None:
        with self._lock:
            if deployment is None:
                self._faults.clear()
            else:
                self._faults.pop(deployment, None)

    def take_fault(self, deployment: str) -> Fault | None:
        """The fault for this request, counting down `times` (faults fire in the order added)."""
        with self._lock:
            faults = self._faults.get(deployment)
            if not faults:
                return None
            fault = faults[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    faults.pop(0)
            return fault

    # -- outages -------------------------------------------------------------------------------------
    def set_outage(self, deployment: str, down: bool, mode: OutageMode = "503") -> None:
        with self._lock:
            if down:
                self._outages[deployment] = mode
            else:
                self._outages.pop(deployment, None)

    def outage(self, deployment: str) -> OutageMode | None:
        with self._lock:
            return self._outages.get(deployment)

    # -- quotas --------------------------------------------------------------------------------------
    def admit(self, dep: Deployment, tokens: int) -> QuotaDecision:
        """Check and, when allowed, record a request against the deployment's sliding window."""
        with self._lock:
            now = self.clock()
            window = self._windows.setdefault(dep.name, _Window())
            window.prune(now)
            rpm = dep.rpm if dep.rpm is not None else NOMINAL_RPM
            tpm = dep.tpm if dep.tpm is not None else NOMINAL_TPM
            used_requests = len(window.entries)
            used_tokens = window.tokens()
            if dep.rpm is not None and used_requests + 1 > rpm:
                wait = max(window.entries[0][0] + WINDOW_SECONDS - now, 0.0) if window.entries else 1.0
                return QuotaDecision(False, "call", wait, _limit_headers(rpm, tpm, 0, tpm - used_tokens))
            if dep.tpm is not None and used_tokens + tokens > tpm:
                wait = window.wait_for_tokens(now, tokens, tpm)
                return QuotaDecision(
                    False, "token", wait, _limit_headers(rpm, tpm, rpm - used_requests, tpm - used_tokens)
                )
            window.entries.append((now, tokens))
            return QuotaDecision(
                True, headers=_limit_headers(rpm, tpm, rpm - used_requests - 1, tpm - used_tokens - tokens)
            )

    def usage_in_window(self, deployment: str) -> tuple[int, int]:
        """(requests, tokens) currently counted in the deployment's window."""
        with self._lock:
            window = self._windows.get(deployment)
            if window is None:
                return 0, 0
            window.prune(self.clock())
            return len(window.entries), window.tokens()

    # -- tokens --------------------------------------------------------------------------------------
    def issue_token(self, ttl_seconds: float, *, authorized: bool = True) -> str:
        token = "emu-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = (self.clock() + ttl_seconds, authorized)
        return token

    def token_status(self, token: str) -> Literal["valid", "invalid", "forbidden"]:
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None or self.clock() >= entry[0]:
                return "invalid"
            return "valid" if entry[1] else "forbidden"

    # -- log -----------------------------------------------------------------------------------------
    def snapshot_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def reset(self) -> None:
        with self._lock:
            self.deployments = {d.name: dataclasses.replace(d) for d in self._initial}
            self._scripts.clear()
            self._responders.clear()
            self._faults.clear()
            self._windows.clear()
            self._outages.clear()
            self._tokens.clear()
            self.requests.clear()
            self.clock = time.monotonic


def _limit_headers(rpm: int, tpm: int, remaining_requests: int, remaining_tokens: int) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(rpm),
        "x-ratelimit-limit-tokens": str(tpm),
        "x-ratelimit-remaining-requests": str(max(remaining_requests, 0)),
        "x-ratelimit-remaining-tokens": str(max(remaining_tokens, 0)),
    }


def retry_seconds(wait: float) -> int:
    """Azure rounds its Retry-After up to whole seconds, never below one."""
    return max(math.ceil(wait), 1)
