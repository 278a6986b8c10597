"""The client-side limiter: a sliding-window ledger, exact about when a request will fit."""

from __future__ import annotations

import multiprocessing
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azmem.azure.routing.limiter import Entry, Grant, MemoryLedger, SQLiteLedger, admission_delay


def test_admits_until_tpm_is_spent_then_says_when_the_oldest_entry_leaves() -> None:
    entries = [Entry(100.0, 400, 1), Entry(110.0, 500, 1)]
    assert admission_delay(entries, now=120.0, window=60.0, tokens=100, tpm=1000, rpm=None) == 0.0
    # 101 tokens do not fit until the first entry (t=100) leaves the window at t=160.
    assert admission_delay(entries, now=120.0, window=60.0, tokens=101, tpm=1000, rpm=None) == pytest.approx(
        40.0
    )
    # 600 tokens need both entries gone: t=170.
    assert admission_delay(entries, now=120.0, window=60.0, tokens=600, tpm=1000, rpm=None) == pytest.approx(
        50.0
    )


def test_rpm_counts_requests_independently_of_tokens() -> None:
    entries = [Entry(100.0, 1, 1), Entry(101.0, 1, 1)]
    assert admission_delay(entries, now=102.0, window=60.0, tokens=1, tpm=None, rpm=2) == pytest.approx(58.0)
    assert admission_delay(entries, now=102.0, window=60.0, tokens=1, tpm=None, rpm=3) == 0.0


def test_a_request_larger_than_the_quota_waits_for_an_empty_window_instead_of_forever() -> None:
    assert admission_delay([], now=0.0, window=60.0, tokens=5000, tpm=1000, rpm=None) == 0.0
    entries = [Entry(10.0, 10, 1)]
    assert admission_delay(entries, now=20.0, window=60.0, tokens=5000, tpm=1000, rpm=None) == pytest.approx(
        50.0
    )


def test_entries_outside_the_window_do_not_count() -> None:
    assert admission_delay([Entry(0.0, 1000, 1)], now=61.0, window=60.0, tokens=1000, tpm=1000, rpm=1) == 0.0


@pytest.fixture(params=["memory", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryLedger | SQLiteLedger:
    if request.param == "memory":
        return MemoryLedger(window=60.0, margin=0.0)
    return SQLiteLedger(tmp_path / "limiter.sqlite3", window=60.0, margin=0.0)


def test_acquire_settle_release(ledger: MemoryLedger | SQLiteLedger) -> None:
    g1 = ledger.acquire("k", 600, tpm=1000, rpm=10, now=0.0)
    assert isinstance(g1, Grant)
    assert ledger.acquire("k", 600, tpm=1000, rpm=10, now=1.0) == pytest.approx(59.0)
    # The service reported fewer tokens than reserved: the difference is available again.
    ledger.settle(g1, 300)
    assert isinstance(ledger.acquire("k", 600, tpm=1000, rpm=10, now=2.0), Grant)
    assert ledger.used("k", now=2.0) == (900, 2)
    # A request that never counted (429, connection refused) gives its reservation back.
    g3 = ledger.acquire("k", 100, tpm=1000, rpm=10, now=3.0)
    assert isinstance(g3, Grant)
    ledger.release(g3)
    assert ledger.used("k", now=3.0) == (900, 2)
    # Keys are independent deployments.
    assert isinstance(ledger.acquire("other", 1000, tpm=1000, rpm=10, now=3.0), Grant)
    # And the window slides.
    assert ledger.used("k", now=61.0) == (600, 1)


def test_external_usage_reported_by_the_service_is_charged(ledger: MemoryLedger | SQLiteLedger) -> None:
    ledger.record_external("k", 800, 0, now=0.0)
    assert ledger.acquire("k", 300, tpm=1000, rpm=None, now=1.0) == pytest.approx(59.0)


def test_margin_keeps_grants_longer_than_the_service_window() -> None:
    ledger = MemoryLedger(window=60.0, margin=2.0)
    assert isinstance(ledger.acquire("k", 1000, tpm=1000, rpm=None, now=0.0), Grant)
    assert ledger.acquire("k", 1, tpm=1000, rpm=None, now=60.5) == pytest.approx(1.5)


def _grab(path: str, n: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    ledger = SQLiteLedger(path, window=60.0, margin=0.0)
    got = sum(isinstance(ledger.acquire("shared", 10, tpm=1000, rpm=None, now=5.0), Grant) for _ in range(n))
    queue.put(got)


def test_sqlite_ledger_is_shared_by_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_grab, args=(path, 60, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    granted = sum(queue.get(timeout=5) for _ in procs)
    # 180 attempts of 10 tokens against 1000 TPM: exactly 100 admitted across the three processes.
    assert granted == 100
    assert SQLiteLedger(path, window=60.0, margin=0.0).used("shared", now=6.0) == (1000, 100)


def test_stale_future_entries_from_a_previous_boot_are_dropped(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.sqlite3", window=60.0, margin=0.0)
    assert isinstance(ledger.acquire("k", 1000, tpm=1000, rpm=None, now=10_000.0), Grant)
    # After a reboot the monotonic clock restarts near zero.
    assert isinstance(ledger.acquire("k", 1000, tpm=1000, rpm=None, now=5.0), Grant)


def test_used_many_reads_several_deployments_at_once(ledger: MemoryLedger | SQLiteLedger) -> None:
    ledger.acquire("a", 10, tpm=100, rpm=None, now=0.0)
    ledger.acquire("a", 5, tpm=100, rpm=None, now=1.0)
    ledger.acquire("b", 7, tpm=100, rpm=None, now=1.0)
    assert ledger.used_many(["a", "b", "c"], now=2.0) == {"a": (15, 2), "b": (7, 1), "c": (0, 0)}
    assert ledger.used_many(["a"], now=60.5) == {"a": (5, 1)}


@settings(max_examples=25, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["acquire", "settle", "release", "external", "tick"]),
            st.sampled_from(["a", "b"]),
            st.integers(min_value=1, max_value=400),
        ),
        max_size=40,
    )
)
def test_sqlite_running_totals_agree_with_the_memory_ledger(ops: list[tuple[str, str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        memory = MemoryLedger(window=60.0, margin=0.0)
        sqlite = SQLiteLedger(Path(tmp) / "l.db", window=60.0, margin=0.0)
        grants: list[tuple[Grant, Grant]] = []
        now = 0.0
        for op, key, n in ops:
            if op == "tick":
                now += n / 10
            elif op == "acquire":
                pair = (
                    memory.acquire(key, n, tpm=1000, rpm=8, now=now),
                    sqlite.acquire(key, n, tpm=1000, rpm=8, now=now),
                )
                assert isinstance(pair[0], Grant) == isinstance(pair[1], Grant)
                if isinstance(pair[0], Grant) and isinstance(pair[1], Grant):
                    grants.append((pair[0], pair[1]))
                else:
                    assert pair[0] == pytest.approx(pair[1])
            elif op == "external":
                memory.record_external(key, n, 1, now=now)
                sqlite.record_external(key, n, 1, now=now)
            elif grants:
                g_mem, g_sql = grants.pop(n % len(grants))
                if op == "settle":
                    memory.settle(g_mem, n)
                    sqlite.settle(g_sql, n)
                else:
                    memory.release(g_mem)
                    sqlite.release(g_sql)
            assert memory.used_many(["a", "b"], now=now) == sqlite.used_many(["a", "b"], now=now)
        sqlite.close()
