"""Token usage per call, aggregated per deployment, prompt and group, with an estimated cost.

Prices are USD per 1M tokens, looked up by the underlying model name (Azure deployment
names are free text, so the settings' ``model`` field is what makes cost work). The
defaults are list prices at the time of writing; pass your own :class:`PriceTable` for
your agreement or region. Cached calls are counted separately and cost nothing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from azmem.azure.metrics import record_cost

__all__ = [
    "DEFAULT_PRICES",
    "Price",
    "PriceTable",
    "Usage",
    "UsageRecord",
    "UsageTracker",
    "process_tracker",
    "usage_lines",
    "usage_status",
]


class Usage(BaseModel):
    """Tokens of one call."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached: bool = False
    cached_input_tokens: int = 0
    """Prompt tokens the service served from its own prompt cache (billed at a discount)."""
    reasoning_tokens: int = 0

    @classmethod
    def from_sdk(cls, usage: Any, *, cached: bool = False) -> Usage:
        """From the SDK's ``CompletionUsage`` / embeddings usage (or its dict), details included.

        Missing usage (some streams, some errors) is all zeros rather than an exception.
        """
        if usage is None:
            return cls(cached=cached)
        get = usage.get if isinstance(usage, Mapping) else lambda k, d=None: getattr(usage, k, d)
        prompt = int(get("prompt_tokens", 0) or 0)
        completion = int(get("completion_tokens", 0) or 0)
        total = int(get("total_tokens", 0) or 0) or prompt + completion

        def detail(field_name: str, key: str) -> int:
            details = get(field_name)
            if details is None:
                return 0
            value = details.get(key) if isinstance(details, Mapping) else getattr(details, key, None)
            return int(value or 0)

        return cls(
            input_tokens=prompt,
            output_tokens=completion,
            total_tokens=total,
            cached=cached,
            cached_input_tokens=detail("prompt_tokens_details", "cached_tokens"),
            reasoning_tokens=detail("completion_tokens_details", "reasoning_tokens"),
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


class Price(BaseModel):
    """USD per 1M tokens."""

    model_config = ConfigDict(frozen=True)

    input: float = Field(ge=0)
    output: float = Field(default=0.0, ge=0)
    cached_input: float | None = Field(default=None, ge=0)

    def cost(self, usage: Usage) -> float:
        cached_in = min(usage.cached_input_tokens, usage.input_tokens)
        fresh_in = usage.input_tokens - cached_in
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return (fresh_in * self.input + cached_in * cached_rate + usage.output_tokens * self.output) / 1e6


# Longest prefix wins, so "gpt-4o-mini" beats "gpt-4o" and "gpt-4.1-nano" beats "gpt-4.1".
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(input=2.50, output=10.00, cached_input=1.25),
    "gpt-4o-mini": Price(input=0.15, output=0.60, cached_input=0.075),
    "gpt-4.1": Price(input=2.00, output=8.00, cached_input=0.50),
    "gpt-4.1-mini": Price(input=0.40, output=1.60, cached_input=0.10),
    "gpt-4.1-nano": Price(input=0.10, output=0.40, cached_input=0.025),
    "gpt-5": Price(input=1.25, output=10.00, cached_input=0.125),
    "gpt-5-mini": Price(input=0.25, output=2.00, cached_input=0.025),
    "gpt-5-nano": Price(input=0.05, output=0.40, cached_input=0.005),
    "gpt-5-chat": Price(input=1.25, output=10.00, cached_input=0.125),
    "o1": Price(input=15.00, output=60.00, cached_input=7.50),
    "o1-mini": Price(input=1.10, output=4.40, cached_input=0.55),
    "o3": Price(input=2.00, output=8.00, cached_input=0.50),
    "o3-mini": Price(input=1.10, output=4.40, cached_input=0.55),
    "o4-mini": Price(input=1.10, output=4.40, cached_input=0.275),
    "gpt-4": Price(input=30.00, output=60.00),
    "gpt-4-turbo": Price(input=10.00, output=30.00),
    "gpt-35-turbo": Price(input=0.50, output=1.50),
    "text-embedding-3-small": Price(input=0.02),
    "text-embedding-3-large": Price(input=0.13),
    "text-embedding-ada-002": Price(input=0.10),
}


class PriceTable:
    """Model name -> price; user entries override and extend the defaults."""

    def __init__(
        self, prices: Mapping[str, Price | Mapping[str, float]] | None = None, *, defaults: bool = True
    ) -> None:
        self._prices: dict[str, Price] = dict(DEFAULT_PRICES) if defaults else {}
        for name, price in (prices or {}).items():
            self._prices[name.lower()] = price if isinstance(price, Price) else Price(**price)

    def lookup(self, model: str | None) -> Price | None:
        """The price of the longest known name that ``model`` starts with.

        Version suffixes (``gpt-4o-2024-08-06``) and Azure's ``gpt-35`` spelling both match.
        """
        if not model:
            return None
        name = model.lower().replace("gpt-3.5", "gpt-35")
        best: str | None = None
        for known in self._prices:
            if (name == known or re.match(re.escape(known) + r"(?![a-z0-9.])", name)) and (
                best is None or len(known) > len(best)
            ):
                best = known
        return self._prices[best] if best else None

    def cost(self, model: str | None, usage: Usage) -> float | None:
        """USD, or None when the model has no known price (unknown is not free)."""
        if usage.cached:
            return 0.0
        price = self.lookup(model)
        return None if price is None else price.cost(usage)


@dataclass(frozen=True)
class UsageRecord:
    deployment: str
    model: str | None
    prompt_name: str | None
    group_id: str | None
    usage: Usage
    cached: bool
    cost: float | None
    at: float = field(default_factory=time.time)


@dataclass
class _Bucket:
    calls: int = 0
    cached_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int = 0
    cost: float = 0.0
    unpriced_calls: int = 0

    def add(self, rec: UsageRecord) -> None:
        if rec.cached:
            self.cached_calls += 1
            return
        self.calls += 1
        self.input_tokens += rec.usage.input_tokens
        self.output_tokens += rec.usage.output_tokens
        self.total_tokens += rec.usage.total_tokens
        self.cached_input_tokens += rec.usage.cached_input_tokens
        if rec.cost is None:
            self.unpriced_calls += 1
        else:
            self.cost += rec.cost

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cached_calls": self.cached_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cost_usd": round(self.cost, 8),
            "unpriced_calls": self.unpriced_calls,
        }


class UsageTracker:
    """Thread-safe running totals; share one across clients to see a whole run.

    Tokens of calls answered from azmem's cache are not added to the token totals (they
    were not spent); they are counted in ``cached_calls``.
    """

    def __init__(self, prices: PriceTable | None = None, *, keep_records: int = 10_000) -> None:
        self.prices = prices or PriceTable()
        self._lock = threading.Lock()
        self._records: list[UsageRecord] = []
        self._keep = keep_records
        self._total = _Bucket()
        self._by: dict[str, dict[str, _Bucket]] = {"deployment": {}, "prompt_name": {}, "group_id": {}}

    def priced(
        self,
        *,
        deployment: str,
        usage: Usage,
        model: str | None = None,
        prompt_name: str | None = None,
        group_id: str | None = None,
        cached: bool | None = None,
    ) -> UsageRecord:
        """The record :meth:`record` would add, priced from this tracker's table, without adding it."""
        is_cached = usage.cached if cached is None else cached
        return UsageRecord(
            deployment=deployment,
            model=model,
            prompt_name=prompt_name,
            group_id=group_id,
            usage=usage,
            cached=is_cached,
            cost=0.0 if is_cached else self.prices.cost(model or deployment, usage),
        )

    def record(
        self,
        *,
        deployment: str,
        usage: Usage,
        model: str | None = None,
        prompt_name: str | None = None,
        group_id: str | None = None,
        cached: bool | None = None,
    ) -> UsageRecord:
        """Add one call. ``cached`` defaults to ``usage.cached``; the cost also goes to the metrics."""
        rec = self.priced(
            deployment=deployment,
            usage=usage,
            model=model,
            prompt_name=prompt_name,
            group_id=group_id,
            cached=cached,
        )
        with self._lock:
            self._records.append(rec)
            if len(self._records) > self._keep:
                del self._records[: len(self._records) - self._keep]
            self._total.add(rec)
            dims = (("deployment", deployment), ("prompt_name", prompt_name), ("group_id", group_id))
            for dim, key in dims:
                self._by[dim].setdefault(key if key is not None else "(none)", _Bucket()).add(rec)
        if rec.cost:  # the metric shows what summary() shows: cached and unpriced calls add nothing
            record_cost(
                deployment=deployment, model=model, group_id=group_id, prompt_name=prompt_name, cost=rec.cost
            )
        return rec

    @property
    def records(self) -> list[UsageRecord]:
        with self._lock:
            return list(self._records)

    @property
    def cost(self) -> float:
        """Estimated USD so far (calls with unknown prices excluded; see ``summary()``)."""
        with self._lock:
            return self._total.cost

    def summary(self) -> dict[str, Any]:
        """Totals, and the same figures per deployment, prompt_name and group_id."""
        with self._lock:
            return {
                "total": self._total.as_dict(),
                **{
                    f"by_{dim}": {k: b.as_dict() for k, b in sorted(buckets.items())}
                    for dim, buckets in self._by.items()
                },
            }

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._total = _Bucket()
            self._by = {"deployment": {}, "prompt_name": {}, "group_id": {}}


_process: UsageTracker | None = None
_process_lock = threading.Lock()


def process_tracker() -> UsageTracker:
    """One tracker for the whole process, like the shared router: pass it as ``usage=`` to the
    clients whose calls a status should add up (a server's); ``azmem status`` shows it.

    Opt-in, never a hidden default: a tracker shared behind a caller's back would mix the
    totals of unrelated clients (and of unrelated tests).
    """
    global _process
    with _process_lock:
        if _process is None:
            _process = UsageTracker()
        return _process


def usage_status(tracker: UsageTracker | None = None) -> dict[str, Any] | None:
    """The usage figures a status shows (the process's tracker by default); None before any call.

    The CLI's ``azmem status`` and a server's status route both call this, so they show the
    same figures: :meth:`UsageTracker.summary`.
    """
    summary = (tracker if tracker is not None else process_tracker()).summary()
    total = summary["total"]
    return summary if total["calls"] or total["cached_calls"] else None


def usage_lines(summary: Mapping[str, Any]) -> list[str]:
    """``usage_status()`` as text: the total, then one line per deployment and per group."""

    def line(label: str, b: Mapping[str, Any]) -> str:
        unpriced = f" (+{b['unpriced_calls']} unpriced)" if b["unpriced_calls"] else ""
        cost = f"${b['cost_usd']:.6f}{unpriced}"
        return (
            f"{label}: {b['calls']} calls ({b['cached_calls']} cached), "
            f"{b['input_tokens']} in / {b['output_tokens']} out tokens, {cost}"
        )

    lines = [line("usage", summary["total"])]
    for dim, label in (("by_deployment", "deployment"), ("by_group_id", "group")):
        lines.extend(line(f"  {label} {key}", b) for key, b in summary.get(dim, {}).items())
    return lines
