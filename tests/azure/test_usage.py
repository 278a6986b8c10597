"""Usage: per-call records, aggregates per deployment / prompt / group, cached calls apart, cost."""

from __future__ import annotations

import threading

import pytest

from azmem.azure.usage import DEFAULT_PRICES, Price, PriceTable, Usage, UsageTracker


def _u(i: int, o: int, **kw: int) -> Usage:
    return Usage(input_tokens=i, output_tokens=o, total_tokens=i + o, **kw)


def test_aggregates_per_deployment_prompt_and_group() -> None:
    t = UsageTracker()
    t.record(
        deployment="chat-prod", model="gpt-4o", prompt_name="extract", group_id="u1", usage=_u(1000, 100)
    )
    t.record(deployment="chat-prod", model="gpt-4o", prompt_name="update", group_id="u1", usage=_u(500, 50))
    t.record(deployment="mini", model="gpt-4o-mini", prompt_name="extract", group_id="u2", usage=_u(2000, 10))
    s = t.summary()
    assert s["total"]["calls"] == 3
    assert s["total"]["input_tokens"] == 3500
    assert s["total"]["output_tokens"] == 160
    assert s["by_deployment"]["chat-prod"]["input_tokens"] == 1500
    assert s["by_deployment"]["mini"]["calls"] == 1
    assert s["by_prompt_name"]["extract"]["input_tokens"] == 3000
    assert s["by_group_id"]["u1"]["output_tokens"] == 150
    expected = (1500 * 2.50 + 150 * 10.00) / 1e6 + (2000 * 0.15 + 10 * 0.60) / 1e6
    assert t.cost == pytest.approx(expected)
    assert s["total"]["cost_usd"] == pytest.approx(expected)
    assert len(t.records) == 3


def test_cached_calls_are_counted_apart_and_free() -> None:
    t = UsageTracker()
    t.record(deployment="d", model="gpt-4o", usage=_u(100, 10))
    rec = t.record(deployment="d", model="gpt-4o", usage=_u(100, 10), cached=True)
    assert rec.cost == 0.0
    s = t.summary()["total"]
    assert s["calls"] == 1
    assert s["cached_calls"] == 1
    assert s["input_tokens"] == 100, "tokens served from cache were not spent"
    t.record(
        deployment="d",
        model="gpt-4o",
        usage=Usage(input_tokens=5, output_tokens=5, total_tokens=10, cached=True),
    )
    assert t.summary()["total"]["cached_calls"] == 2


def test_missing_prompt_and_group_are_grouped_as_none() -> None:
    t = UsageTracker()
    t.record(deployment="d", usage=_u(1, 1))
    assert t.summary()["by_prompt_name"]["(none)"]["calls"] == 1


def test_unknown_model_has_no_cost_rather_than_zero() -> None:
    t = UsageTracker()
    rec = t.record(deployment="my-custom", usage=_u(1000, 1000))
    assert rec.cost is None
    assert t.summary()["total"]["unpriced_calls"] == 1
    assert t.cost == 0.0


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("GPT-4o-Mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1", "gpt-4.1"),
        ("gpt-4.1-mini", "gpt-4.1-mini"),
        ("gpt-4.1-nano", "gpt-4.1-nano"),
        ("gpt-5", "gpt-5"),
        ("gpt-5-mini", "gpt-5-mini"),
        ("o1", "o1"),
        ("o3-mini", "o3-mini"),
        ("o4-mini", "o4-mini"),
        ("gpt-35-turbo", "gpt-35-turbo"),
        ("gpt-3.5-turbo", "gpt-35-turbo"),
        ("gpt-4", "gpt-4"),
        ("text-embedding-3-small", "text-embedding-3-small"),
        ("text-embedding-3-large", "text-embedding-3-large"),
        ("text-embedding-ada-002", "text-embedding-ada-002"),
    ],
)
def test_price_lookup_longest_prefix(model: str, expected: str) -> None:
    assert PriceTable().lookup(model) == DEFAULT_PRICES[expected]


def test_price_lookup_does_not_confuse_families() -> None:
    table = PriceTable()
    assert table.lookup("gpt-4.1") != table.lookup("gpt-4")
    assert table.lookup("o10") is None
    assert table.lookup(None) is None


def test_user_prices_override_and_extend() -> None:
    table = PriceTable({"gpt-4o": {"input": 1.0, "output": 2.0}, "my-ft-model": Price(input=3.0, output=4.0)})
    t = UsageTracker(table)
    t.record(deployment="x", model="gpt-4o", usage=_u(1_000_000, 1_000_000))
    t.record(deployment="y", model="my-ft-model", usage=_u(1_000_000, 0))
    assert t.cost == pytest.approx(3.0 + 3.0)
    assert PriceTable(defaults=False).lookup("gpt-4o") is None


def test_cached_input_tokens_use_the_discounted_rate() -> None:
    price = DEFAULT_PRICES["gpt-4o"]
    full = price.cost(_u(1_000_000, 0))
    half_cached = price.cost(_u(1_000_000, 0, cached_input_tokens=500_000))
    assert full == pytest.approx(2.50)
    assert half_cached == pytest.approx(0.5 * 2.50 + 0.5 * 1.25)


def test_thread_safe_totals() -> None:
    t = UsageTracker(keep_records=100)

    def work() -> None:
        for _ in range(500):
            t.record(deployment="d", model="gpt-4o-mini", prompt_name="p", usage=_u(3, 2))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    s = t.summary()
    assert s["total"]["calls"] == 4000
    assert s["total"]["input_tokens"] == 12000
    assert s["by_prompt_name"]["p"]["output_tokens"] == 8000
    assert len(t.records) == 100, "record history is bounded"
    t.reset()
    assert t.summary()["total"]["calls"] == 0


def test_usage_addition() -> None:
    total = _u(1, 2) + _u(3, 4, reasoning_tokens=1)
    assert (total.input_tokens, total.output_tokens, total.total_tokens, total.reasoning_tokens) == (
        4,
        6,
        10,
        1,
    )


def test_from_sdk_objects_and_dicts() -> None:
    from openai.types import CompletionUsage
    from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails

    sdk = CompletionUsage(
        prompt_tokens=100,
        completion_tokens=40,
        total_tokens=140,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=64),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=30),
    )
    u = Usage.from_sdk(sdk)
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == (100, 40, 140)
    assert u.cached_input_tokens == 64
    assert u.reasoning_tokens == 30
    emb = Usage.from_sdk({"prompt_tokens": 12, "total_tokens": 12})
    assert (emb.input_tokens, emb.output_tokens, emb.total_tokens) == (12, 0, 12)
    assert Usage.from_sdk(None, cached=True) == Usage(cached=True)
