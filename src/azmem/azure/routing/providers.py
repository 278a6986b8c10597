"""One :class:`AzureProvider` per deployment of the router's pools, built on first use.

A pool entry names only what differs per deployment (endpoint, deployment, key, region...);
everything it leaves out (auth mode, token scope, timeouts, proxy, headers, api_version) is
inherited from the role's settings, so a pool of five regions does not repeat the proxy five
times, and the settings layer's env/file precedence still applies to the shared parts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from azmem.azure.chat import Target
from azmem.azure.flow import Send, performer
from azmem.azure.provider import AzureProvider
from azmem.azure.routing.pool import DeploymentSpec
from azmem.azure.settings import AzureOpenAISettings

__all__ = ["DeploymentProviders", "deployment_settings"]


def deployment_settings(spec: DeploymentSpec, base: AzureOpenAISettings | None) -> AzureOpenAISettings:
    """The role's settings overridden by the pool entry's connection keys."""
    own = AzureOpenAISettings.model_validate(spec.settings)
    if base is None:
        return own
    update: dict[str, Any] = {k: getattr(own, k) for k in own.model_fields_set}
    if "deployment" in update and "model" not in update:
        update["model"] = None  # the base role's model name belongs to the base deployment
    return base.model_copy(update=update)


class DeploymentProviders:
    """Providers and flow targets per deployment, keyed like the limiter (endpoint + deployment)."""

    def __init__(
        self,
        base: AzureOpenAISettings | None = None,
        *,
        overrides: Mapping[str, AzureProvider] | None = None,
    ) -> None:
        self.base = base
        self._providers: dict[str, AzureProvider] = dict(overrides or {})
        self._own: set[str] = set()
        self._targets: dict[str, Target] = {}
        self._performers: dict[tuple[str, bool], Callable[[Send], Any]] = {}
        self._lock = threading.Lock()

    def provider(self, spec: DeploymentSpec) -> AzureProvider:
        key = spec.limiter_key
        found = self._providers.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._providers.get(key)
            if found is None:
                found = AzureProvider(deployment_settings(spec, self.base))
                self._providers[key] = found
                self._own.add(key)
            return found

    def target(self, spec: DeploymentSpec) -> Target:
        key = spec.limiter_key
        target = self._targets.get(key)
        if target is None:
            provider = self.provider(spec)
            caps = provider.capabilities
            if spec.json_schema is not None or spec.reasoning is not None:
                own = {k: getattr(spec, k) for k in ("json_schema", "reasoning")}
                caps = caps.model_copy(update={k: v for k, v in own.items() if v is not None})
            target = self._targets[key] = Target.of(provider, caps)
        return target

    def performer(self, spec: DeploymentSpec, *, asynchronous: bool) -> Callable[[Send], Any]:
        """How to send a step to this deployment (its sync or async SDK client), built once."""
        key = (spec.limiter_key, asynchronous)
        send = self._performers.get(key)
        if send is None:
            provider = self.provider(spec)
            sdk = provider.async_client() if asynchronous else provider.sync_client()
            send = self._performers[key] = performer(sdk)
        return send

    def close(self) -> None:
        for key in list(self._own):
            self._providers[key].close()

    async def aclose(self) -> None:
        for key in list(self._own):
            await self._providers[key].aclose()
