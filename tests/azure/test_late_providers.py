"""OpenTelemetry providers installed after the client's first calls are used from then on.

The client decides per call whether any span or metric can be recorded, reading the API's
globals instead of asking ``get_tracer_provider()``/``get_meter_provider()`` (which look an
environment variable up on every call). Global providers can be set once per process, so the
check runs in a subprocess, against the session's emulator over HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from azmem.azure import AzureOpenAISettings, LLMClient

    llm = LLMClient(chat=AzureOpenAISettings(endpoint=sys.argv[1], deployment="gpt-4o", api_key="test-key"))
    llm.generate("before any provider")
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)
    llm.generate("after the tracer provider")
    spans = [s.name for s in exporter.get_finished_spans()]
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    llm.generate("after the meter provider")
    data = reader.get_metrics_data()
    names = sorted(
        m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    ) if data else []
    print(json.dumps({"spans": spans, "metrics": names}))
    """
)


def test_providers_set_after_the_first_call_are_used(emulator: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, emulator.endpoint],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["spans"] == ["chat gpt-4o"]  # the first call, before any provider, made none
    assert "gen_ai.client.token.usage" in out["metrics"]
    assert "gen_ai.client.operation.duration" in out["metrics"]
