"""`azmem doctor` rows for pools, against the emulator: each failure named for what it is."""

from __future__ import annotations

from typing import Any

from routing_helpers import emu_pool, emu_router

from azmem.azure.routing.doctor import check_deployments


def test_doctor_checks_each_deployment_once_and_names_what_is_wrong(emulator: Any) -> None:
    pool = emu_pool(emulator, "good", "bad-key", "missing", "busy")
    pool[1]["api_key"] = "not-the-key-123"
    pool[2]["deployment"] = "nope"
    embed = emu_pool(emulator, "vectors", model="text-embedding-3-small")
    router = emu_router({"chat": pool, "chat-copy": [dict(pool[0])], "embedding": embed})
    from azmem.emulator import Fault

    emulator.fault("busy", Fault.rate_limit(retry_after=3, times=1))
    rows = {(r["model"], r["name"]): r for r in check_deployments(router)}
    assert rows[("chat", "good")]["check"] == "ok"
    assert rows[("chat-copy", "good")]["check"] == "ok"
    assert rows[("chat", "bad-key")]["check"] == "auth_failed"
    assert rows[("chat", "bad-key")]["auth_ok"] is False
    assert rows[("chat", "missing")]["check"] == "not_found"
    assert "nope" in rows[("chat", "missing")]["suggestion"]
    assert rows[("chat", "busy")]["check"] == "throttled"
    assert rows[("chat", "busy")]["reachable"] is True
    assert rows[("embedding", "vectors")]["check"] == "ok"
    assert rows[("chat", "good")]["capabilities"]["vision"] is True
    assert "cooldown_remaining" in rows[("chat", "good")]
    # The shared deployment was pinged once, the embedding one with an embeddings request.
    assert len(emulator.requests_for("good")) == 1
    assert emulator.requests_for("vectors")[0].path.endswith("/embeddings")


def test_doctor_reports_an_unreachable_endpoint() -> None:
    router = emu_router(
        {
            "chat": [
                {"name": "gone", "endpoint": "http://127.0.0.1:9", "deployment": "d", "api_key": "k-12345678"}
            ]
        }
    )
    (row,) = check_deployments(router)
    assert (row["check"], row["reachable"]) == ("unreachable", False)
