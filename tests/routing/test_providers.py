"""Pool entries inherit the role's connection settings and override only what they name."""

from __future__ import annotations

from azmem.azure.routing import DeploymentSpec
from azmem.azure.routing.providers import DeploymentProviders, deployment_settings
from azmem.azure.settings import AzureOpenAISettings


def test_entry_overrides_the_role_and_inherits_the_rest() -> None:
    base = AzureOpenAISettings(
        endpoint="https://base.example.com",
        deployment="base-dep",
        model="gpt-35-turbo",
        api_key="base-key-123456",
        timeout=12.0,
        default_headers={"x-team": "memory"},
    )
    spec = DeploymentSpec.model_validate(
        {"name": "west", "endpoint": "https://west.example.com", "deployment": "gpt-4o", "tpm": 1000}
    )
    merged = deployment_settings(spec, base)
    assert (merged.endpoint, merged.deployment, merged.model) == ("https://west.example.com", "gpt-4o", None)
    assert merged.api_key is not None
    assert merged.api_key.get_secret_value() == "base-key-123456"
    assert (merged.timeout, merged.default_headers) == (12.0, {"x-team": "memory"})
    caps = merged.resolved_capabilities()
    assert caps.vision
    assert caps.json_schema  # from gpt-4o, not from the base deployment's gpt-35-turbo


def test_providers_are_built_once_per_azure_deployment_and_targets_follow_overrides() -> None:
    providers = DeploymentProviders(AzureOpenAISettings(api_key="k-123456789"))
    a = DeploymentSpec.model_validate(
        {"name": "a", "endpoint": "https://a.example.com", "deployment": "o3-mini", "json_schema": False}
    )
    same = DeploymentSpec.model_validate(
        {"name": "other-name", "endpoint": "https://a.example.com", "deployment": "o3-mini"}
    )
    assert providers.provider(a) is providers.provider(same)
    target = providers.target(a)
    assert (target.deployment, target.reasoning, target.json_schema) == ("o3-mini", True, False)
    providers.close()
