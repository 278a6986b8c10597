"""Azure Monitor (Application Insights) for azmem's spans, metrics and logs, in one call.

``pip install 'azmem[azure-monitor]'`` brings Microsoft's ``azure-monitor-opentelemetry``
distribution; :func:`setup_azure_monitor` calls its ``configure_azure_monitor`` when a
connection string is configured (``APPLICATIONINSIGHTS_CONNECTION_STRING``, else the
settings' ``telemetry.azure_monitor``). The CLI calls it once at start, a server calls it
before it builds its app; a library user calls it, or configures OpenTelemetry their own way.

It never takes over a host application's OpenTelemetry: when a tracer, meter or logger
provider is already installed, azmem's spans and metrics already flow there (they go
through ``opentelemetry-api``), and replacing the host's pipeline would be rude at best.

Defaults differ from the distribution's in two ways, both about what leaves the process:
logs are collected from the ``azmem`` logger only (not the root logger, which carries
every library's messages), and live metrics are off (a second, always-open connection to
Microsoft) unless ``telemetry.live_metrics`` turns them on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace

from azmem import __version__
from azmem.errors import ConfigurationError, register_secret

if TYPE_CHECKING:
    from azmem.azure.settings import AzmemSettings

__all__ = [
    "CONNECTION_STRING_ENV",
    "MonitorHandle",
    "host_has_opentelemetry",
    "resolve_connection_string",
    "setup_azure_monitor",
    "setup_for_cli",
]

CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"

log = logging.getLogger("azmem.azure.monitor")

_handle: MonitorHandle | None = None
_lock = threading.Lock()


class MonitorHandle:
    """The providers azmem installed: flush them (a CLI about to exit, a test) or shut them down.

    The SDK providers also shut down by themselves at interpreter exit, which flushes what
    is left; these are for when waiting for that is not good enough.
    """

    def _providers(self) -> list[Any]:
        from opentelemetry._logs import get_logger_provider

        return [trace.get_tracer_provider(), metrics.get_meter_provider(), get_logger_provider()]

    def force_flush(self, timeout_millis: int = 30_000) -> None:
        """Export everything recorded so far (spans, a metrics collection, logs) now."""
        for provider in self._providers():
            flush = getattr(provider, "force_flush", None)
            if callable(flush):
                flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop the exporters; OpenTelemetry allows no second set-up in this process."""
        for provider in self._providers():
            stop = getattr(provider, "shutdown", None)
            if callable(stop):
                stop()


def host_has_opentelemetry() -> bool:
    """Whether a tracer, meter or logger provider other than the API's stand-ins is installed."""
    from opentelemetry._logs import NoOpLoggerProvider, get_logger_provider

    stand_ins: tuple[type, ...] = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    if not isinstance(trace.get_tracer_provider(), stand_ins):
        return True
    meter_provider = metrics.get_meter_provider()
    if not isinstance(meter_provider, metrics.NoOpMeterProvider) and type(meter_provider).__name__ != (
        "_ProxyMeterProvider"
    ):
        return True
    logger_provider = get_logger_provider()
    return not isinstance(logger_provider, NoOpLoggerProvider) and type(logger_provider).__name__ != (
        "ProxyLoggerProvider"
    )


def resolve_connection_string(settings: AzmemSettings | None = None) -> str | None:
    """The connection string to use: the environment's, else the settings' ``telemetry.azure_monitor``."""
    env = os.environ.get(CONNECTION_STRING_ENV, "").strip()
    if env:
        return env
    secret = settings.telemetry.azure_monitor if settings is not None else None
    value = secret.get_secret_value().strip() if secret is not None else ""
    return value or None


def _register(connection: str) -> None:
    """Keep the connection string, and its InstrumentationKey, out of every message azmem writes."""
    register_secret(connection)
    for part in connection.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "instrumentationkey" and value.strip():
            register_secret(value.strip())


def _resource() -> Any:
    """service.name ``azmem`` and our version, unless the environment names the service itself."""
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, str] = {"service.version": __version__}
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not named:
        attributes["service.name"] = "azmem"
    return Resource.create(attributes)


def setup_azure_monitor(
    settings: AzmemSettings | None = None, *, connection_string: str | None = None, **options: Any
) -> MonitorHandle | None:
    """Send azmem's spans, metrics and logs to Application Insights; None when it did nothing.

    Nothing happens without a connection string, or when the host application has set up
    OpenTelemetry itself. A second call returns the first call's handle. ``options`` go to
    ``configure_azure_monitor`` as they are (``instrumentation_options``, ``sampling_ratio``,
    ``disable_offline_storage``, ...) and win over azmem's defaults.

    Raises :class:`ConfigurationError` when a connection string is set but the
    ``azure-monitor`` extra is not installed.
    """
    global _handle
    with _lock:
        if _handle is not None:
            return _handle
        connection = connection_string or resolve_connection_string(settings)
        if not connection:
            return None
        if host_has_opentelemetry():
            log.info("OpenTelemetry is already set up by the application; azmem leaves it as it is")
            return None
        try:
            from azure.monitor.opentelemetry import configure_azure_monitor
        except ImportError as exc:
            raise ConfigurationError(
                "An Application Insights connection string is set, but azure-monitor-opentelemetry "
                "is not installed.",
                error_code="missing_extra",
                suggestion="pip install 'azmem[azure-monitor]', or unset "
                f"{CONNECTION_STRING_ENV} / telemetry.azure_monitor.",
            ) from exc
        _register(connection)
        live = bool(settings.telemetry.live_metrics) if settings is not None else False
        kwargs: dict[str, Any] = {
            "connection_string": connection,
            "logger_name": "azmem",
            "enable_live_metrics": live,
            "resource": _resource(),
            **options,
        }
        configure_azure_monitor(**kwargs)
        _handle = MonitorHandle()
        log.debug("Azure Monitor set up for spans, metrics and logs")
        return _handle


def _config_in_args(args: Sequence[str]) -> Path | None:
    """``--config FILE`` / ``--config=FILE`` / ``-c FILE`` given after the command name."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("--config", "-c") and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    return None


def setup_for_cli(config: Path | None, args: Sequence[str] = ()) -> MonitorHandle | None:
    """The CLI's set-up, once per process: never fails a command.

    The settings are read only when a connection string could come from them (a config
    file or ``AZMEM_TELEMETRY__*``); a config that does not load is left to the command,
    which reports it properly.
    """
    config = config or _config_in_args(args)
    try:
        settings = None
        if config is not None or any(
            os.environ.get(name) for name in ("AZMEM_CONFIG", "AZMEM_TELEMETRY__AZURE_MONITOR")
        ):
            from azmem.azure.settings import AzmemSettings

            try:
                settings = AzmemSettings.load(config)
            except ConfigurationError:
                settings = None
        return setup_azure_monitor(settings)
    except Exception as exc:
        log.warning("Azure Monitor is not set up: %s", exc)
        return None
