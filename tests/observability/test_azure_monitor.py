"""The Azure Monitor distribution, for real: its exporter posts to a local capture server.

The connection string names ``IngestionEndpoint=http://127.0.0.1:PORT/`` (a server this test
starts); the work runs in a subprocess (global OpenTelemetry providers cannot be reset) against
the emulator, and the test reads the envelopes that arrived: span names, metric names, and no
API key, no instrumentation key outside the envelope header, no memory text.

Nothing may leave the machine: statsbeat, the control plane and SDK stats are switched off by
their variables, live metrics are off by azmem's default, the resource detectors are limited to
the environment's, and every HTTP client is pointed at a proxy on loopback that records any
request for a non-loopback host (the test asserts it got none).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from azmem.azure.monitor import (
    CONNECTION_STRING_ENV,
    host_has_opentelemetry,
    resolve_connection_string,
    setup_azure_monitor,
)
from azmem.azure.settings import AzmemSettings
from azmem.emulator import Emulator, Fault

pytest.importorskip("azure.monitor.opentelemetry")

IKEY = "0b5e1c2d-4f6a-4b8c-9d0e-1f2a3b4c5d6e"
TEXT = "Zephyrine stores the vault code under the violet teapot"
QUERY = "where does Zephyrine hide the quokka"
USER = "user-qx7"
WORKER = Path(__file__).with_name("monitor_worker.py")


class Capture:
    """An HTTP server on a loopback port that keeps every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def _keep(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                capture.requests.append((self.command, self.path, body))

            def do_POST(self) -> None:
                self._keep()
                items = len(capture.envelopes_in(capture.requests[-1][2]))
                reply = json.dumps({"itemsReceived": items, "itemsAccepted": items, "errors": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self) -> None:  # a proxy sees GET http://host/... and CONNECT host:443
                self._keep()
                self.send_error(502)

            do_CONNECT = do_GET

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def envelopes_in(body: bytes) -> list[dict[str, Any]]:
        text = body.decode("utf-8").strip()
        if not text:
            return []
        if text.startswith("["):
            parsed: list[dict[str, Any]] = json.loads(text)
            return parsed
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        return [e for method, _, body in self.requests if method == "POST" for e in self.envelopes_in(body)]

    @property
    def bodies(self) -> str:
        return "\n".join(body.decode("utf-8", "replace") for _, _, body in self.requests)


@pytest.fixture
def capture() -> Iterator[Capture]:
    c = Capture()
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()


@pytest.fixture
def proxy() -> Iterator[Capture]:
    """Where any request for a non-loopback host would go: it must get none."""
    c = Capture()
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()


@pytest.fixture
def emulator(emulator_factory: Any) -> Emulator:
    """A fresh emulator for these subprocess tests: the session's one carries deployments' state
    from earlier tests, which changed what the worker's memory.add called (no embedding request)."""
    emu: Emulator = emulator_factory()
    return emu


def child_env(tmp_path: Path, proxy: Capture, **extra: str) -> dict[str, str]:
    ours = ("OTEL_", "APPLICATIONINSIGHTS_", "AZMEM_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(
        {
            "AZMEM_HOME": str(tmp_path / "home"),
            # Microsoft's own telemetry about the SDK, and its remote configuration: off.
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
            "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
            # The Azure VM detector asks the instance metadata service: environment detector only.
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
            "OTEL_SERVICE_NAME": "azmem-test",
            # The distro's default sampler keeps ~5 traces a second and may drop any span of a
            # quick burst of calls: these tests check what is exported, so they keep every span.
            "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
            "OTEL_TRACES_SAMPLER_ARG": "1.0",
            "HTTP_PROXY": proxy.url,
            "HTTPS_PROXY": proxy.url,
            "http_proxy": proxy.url,
            "https_proxy": proxy.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **extra,
        }
    )
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def connection(capture: Capture) -> str:
    return f"InstrumentationKey={IKEY};IngestionEndpoint={capture.url}/"


def spans(capture: Capture) -> list[str]:
    return [
        e["data"]["baseData"]["name"]
        for e in capture.envelopes
        if e.get("data", {}).get("baseType") in ("RemoteDependencyData", "RequestData")
    ]


def metric_names(capture: Capture) -> set[str]:
    return {
        m["name"]
        for e in capture.envelopes
        if e.get("data", {}).get("baseType") == "MetricData"
        for m in e["data"]["baseData"]["metrics"]
    }


def metric_properties(capture: Capture, name: str) -> list[dict[str, Any]]:
    return [
        e["data"]["baseData"].get("properties") or {}
        for e in capture.envelopes
        if e.get("data", {}).get("baseType") == "MetricData"
        and any(m["name"] == name for m in e["data"]["baseData"]["metrics"])
    ]


def assert_nothing_secret(capture: Capture, *, api_key: str) -> None:
    """No API key, no connection string, no memory text anywhere; the iKey only as each envelope's header."""
    assert capture.envelopes
    bodies = capture.bodies
    assert api_key not in bodies
    assert "IngestionEndpoint" not in bodies
    for word in ("Zephyrine", "vault code", "violet teapot", "quokka"):
        assert word not in bodies, word
    for e in capture.envelopes:
        assert e["iKey"] == IKEY
        assert IKEY not in json.dumps({k: v for k, v in e.items() if k != "iKey"})
        # The scope reaches Azure Monitor only as the usage group (cost per group), never elsewhere.
        base = dict(e["data"]["baseData"])
        base["properties"] = {
            k: v for k, v in (base.get("properties") or {}).items() if k != "azmem.group_id"
        }
        assert USER not in json.dumps({**e, "data": {**e["data"], "baseData": base}})


def test_spans_metrics_and_logs_reach_the_ingestion_endpoint(
    emulator: Emulator, capture: Capture, proxy: Capture, tmp_path: Path
) -> None:
    env = child_env(tmp_path, proxy, APPLICATIONINSIGHTS_CONNECTION_STRING=connection(capture))
    # On a loaded machine the exporter's batch can miss its export deadline and be kept for a later
    # retry that a short-lived process never makes; one more fresh run tells that from a real loss.
    for attempt in range(2):
        capture.requests.clear()
        emulator.fault("gpt-4o", Fault.rate_limit(retry_after_ms=5, times=1))  # one 429: a retry, a warning
        args = {
            "endpoint": emulator.endpoint,
            "api_key": emulator.api_key,
            "store": str(tmp_path / f"memory-{attempt}.db"),
            "text": TEXT,
            "query": QUERY,
            "user": USER,
        }
        assert run([str(WORKER), json.dumps(args)], env, tmp_path).stdout.strip() == "ok"
        if {"chat gpt-4o", "embeddings text-embedding-3-small"} <= set(spans(capture)):
            break

    assert {path for method, path, _ in capture.requests} <= {"/v2.1/track"}
    names = spans(capture)
    assert "chat gpt-4o" in names
    assert "embeddings text-embedding-3-small" in names
    found = metric_names(capture)
    assert {
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "azmem.client.retries",
        "azmem.client.throttles",
        "azmem.client.cost",
        "azmem.memory.operation.duration",
        "azmem.memory.operation.results",
        "azmem.memory.store.size",
    } <= found
    tokens = metric_properties(capture, "gen_ai.client.token.usage")
    assert {p.get("gen_ai.token.type") for p in tokens} == {"input", "output"}
    assert {p.get("gen_ai.request.model") for p in tokens} == {"gpt-4o", "text-embedding-3-small"}
    assert {p.get("server.address") for p in tokens} == {"127.0.0.1"}
    logs = [
        e["data"]["baseData"]["message"] for e in capture.envelopes if e["data"]["baseType"] == "MessageData"
    ]
    assert any("RateLimitError" in line and "retrying" in line for line in logs), logs
    roles = {e.get("tags", {}).get("ai.cloud.role") for e in capture.envelopes}
    assert roles == {"azmem-test"}
    assert_nothing_secret(capture, api_key=emulator.api_key)
    assert proxy.requests == []  # nothing tried to reach a host beyond this machine


def test_the_cli_sets_it_up_from_the_config_file_and_flushes_at_exit(
    emulator: Emulator, capture: Capture, proxy: Capture, tmp_path: Path
) -> None:
    config = tmp_path / "azmem.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "endpoint": emulator.endpoint,
                "api_key": emulator.api_key,
                "embedding": "text-embedding-3-small",
                "store": {"path": str(tmp_path / "cli.db")},
                "telemetry": {"azure_monitor": connection(capture)},
            }
        ),
        encoding="utf-8",
    )
    env = child_env(tmp_path, proxy)
    cli = "import sys; from azmem.cli import main; sys.argv[0] = 'azmem'; main()"
    run(["-c", cli, "add", TEXT, "--user", USER, "--config", str(config)], env, tmp_path)
    assert "embeddings text-embedding-3-small" in spans(capture)
    assert {"gen_ai.client.token.usage", "azmem.memory.operation.duration"} <= metric_names(capture)
    assert_nothing_secret(capture, api_key=emulator.api_key)
    assert proxy.requests == []


def test_nothing_is_set_up_without_a_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONNECTION_STRING_ENV, raising=False)
    assert setup_azure_monitor(AzmemSettings.load({})) is None
    assert not host_has_opentelemetry()


def test_the_environment_wins_over_the_config_file_and_the_key_stays_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(CONNECTION_STRING_ENV, raising=False)
    from_file = f"InstrumentationKey={IKEY};IngestionEndpoint=http://127.0.0.1:9/"
    settings = AzmemSettings.load({"telemetry": {"azure_monitor": from_file}})
    assert resolve_connection_string(settings) == from_file
    assert IKEY not in repr(settings)
    assert IKEY not in settings.model_dump_json()
    monkeypatch.setenv(CONNECTION_STRING_ENV, "InstrumentationKey=from-env")
    assert resolve_connection_string(settings) == "InstrumentationKey=from-env"


def test_a_host_applications_opentelemetry_is_left_alone(
    capture: Capture, proxy: Capture, tmp_path: Path
) -> None:
    script = (
        "from opentelemetry import metrics, trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "trace.set_tracer_provider(TracerProvider())\n"
        "from azmem.azure.monitor import host_has_opentelemetry, setup_azure_monitor\n"
        "assert host_has_opentelemetry()\n"
        "assert setup_azure_monitor() is None\n"
        "assert type(metrics.get_meter_provider()).__name__ == '_ProxyMeterProvider'\n"
        "print('left alone')\n"
    )
    env = child_env(tmp_path, proxy, APPLICATIONINSIGHTS_CONNECTION_STRING=connection(capture))
    assert run(["-c", script], env, tmp_path).stdout.strip() == "left alone"
    assert capture.requests == []
