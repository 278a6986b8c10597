"""The PostgreSQL ledger: several processes (app instances) share one TPM budget for real."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from azmem.azure.routing.limiter import Grant
from azmem.azure.routing.pg_ledger import PostgresLedger
from azmem.azure.routing.router import Router
from azmem.errors import StoreUnavailableError

WORKER = Path(__file__).with_name("pg_ledger_worker.py")


def test_instances_share_one_budget(pg_url: str) -> None:
    tokens, tpm, window, margin, seconds = 100, 1000, 2.0, 0.3, 3.5
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                pg_url,
                "gpt-4o@east",
                str(seconds),
                str(tokens),
                str(tpm),
                str(window),
                str(margin),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    grants: list[float] = []
    per_process = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        times = json.loads(out)
        per_process.append(len(times))
        grants.extend(times)
    grants.sort()
    budget = tpm // tokens
    # Every window-long stretch holds at most the budget, whichever instance was admitted.
    worst = max(sum(1 for t in grants if start <= t < start + window) for start in grants)
    assert worst <= budget
    # ...and the budget was really used (the instances were not simply starved).
    assert len(grants) >= budget
    assert sum(1 for n in per_process if n > 0) >= 2  # shared, not one instance alone


def test_settle_release_and_external_usage(pg_url: str) -> None:
    ledger = PostgresLedger(pg_url, window=60.0, margin=0.0)
    now = time.monotonic()
    grant = ledger.acquire("d", 300, tpm=1000, rpm=10, now=now)
    assert isinstance(grant, Grant)
    ledger.settle(grant, 500)
    assert ledger.used("d", now=now) == (500, 1)
    ledger.record_external("d", 400, 2, now=now)
    assert ledger.used_many(["d", "other"], now=now) == {"d": (900, 3), "other": (0, 0)}
    delay = ledger.acquire("d", 200, tpm=1000, rpm=10, now=now)
    assert isinstance(delay, float)
    assert 0 < delay <= 60.0
    view = ledger.view("d", now=now, limit=1)
    assert (view.used_tokens, view.used_requests) == (900, 3)
    assert len(view.oldest) == 1
    assert abs(view.oldest[0].t - now) < 5.0  # handed back on the caller's clock
    ledger.release(grant)
    assert ledger.used("d", now=now) == (400, 2)
    ledger.close()


def test_a_lost_database_is_a_typed_error_and_recovers(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    ledger = PostgresLedger(pg_url, window=60.0, margin=0.0)
    assert isinstance(ledger.acquire("k", 1, tpm=100, rpm=None, now=time.monotonic()), Grant)
    pg_server.kill()
    try:
        with pytest.raises(StoreUnavailableError) as err:
            ledger.acquire("k", 1, tpm=100, rpm=None, now=time.monotonic())
        assert f":{pg_server.port}" in err.value.message
        assert pg_server.superuser_password not in str(err.value)
    finally:
        pg_server.restart()
    assert ledger.used("k", now=time.monotonic()) == (1, 1)
    ledger.close()


def test_router_uses_the_store_database_for_its_limiter(pg_url: str) -> None:
    from azmem.azure.settings import AzmemSettings

    routing = {
        "pools": {"gpt-4o": {"deployments": [{"name": "a", "endpoint": "http://127.0.0.1:9", "tpm": 1000}]}},
        "limiter": {"backend": "postgres"},
    }
    settings = AzmemSettings.load({"store": {"url": pg_url}, "routing": routing})
    router = Router.from_settings(settings)
    assert router is not None
    assert isinstance(router.ledger, PostgresLedger)
    assert router.ledger.url == pg_url
    router.ledger.close()  # the shared router outlives the test; its database does not
