"""A real OpenTelemetry SDK meter provider with an in-memory reader, installed for azmem only.

OpenTelemetry refuses to replace a global provider once set, so each test hands its own
provider to :func:`azmem.azure.metrics.use_meter_provider` and takes it back afterwards:
no global state leaks between tests (the exporter test runs in a subprocess for the same reason).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint

from azmem.azure import metrics as azmem_metrics


@dataclass(frozen=True)
class Point:
    """One data point: its attributes and its value (a sum, a gauge value, or a histogram's sum/count)."""

    attributes: dict[str, Any]
    value: float
    count: int | None = None


class Metrics:
    """What the in-memory reader collected, by instrument name."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.reader = reader
        self.units: dict[str, str] = {}

    def collect(self) -> dict[str, list[Point]]:
        out: dict[str, list[Point]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                assert sm.scope.name == "azmem"
                for metric in sm.metrics:
                    self.units[metric.name] = metric.unit or ""
                    for dp in metric.data.data_points:
                        attrs = dict(dp.attributes or {})
                        if isinstance(dp, HistogramDataPoint):
                            out.setdefault(metric.name, []).append(Point(attrs, dp.sum, dp.count))
                        elif isinstance(dp, NumberDataPoint):
                            out.setdefault(metric.name, []).append(Point(attrs, dp.value))
        return out

    def points(self, name: str, **match: Any) -> list[Point]:
        """The points of ``name`` whose attributes include ``match`` (dots spelt ``__`` in the keys)."""
        wanted = {k.replace("__", "."): v for k, v in match.items()}
        return [
            p
            for p in self.collect().get(name, [])
            if all(p.attributes.get(k) == v for k, v in wanted.items())
        ]

    def total(self, name: str, **match: Any) -> float:
        return sum(p.value for p in self.points(name, **match))


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    # Cumulative temporality (the reader's default), so one collect sees everything so far.
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    azmem_metrics.use_meter_provider(provider)
    try:
        yield Metrics(reader)
    finally:
        azmem_metrics.use_meter_provider(None)
        provider.shutdown()
