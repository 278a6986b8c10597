"""Pools in code, files and env; one deployment needs no pool syntax; typos are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from azmem.azure.routing import Router, RoutingConfig
from azmem.azure.routing.router import default_capabilities_for
from azmem.errors import ConfigurationError

POOLS = {
    "chat": {
        "strategy": "least_outstanding",
        "deployments": [
            {
                "name": "east",
                "endpoint": "https://a.openai.azure.com",
                "deployment": "gpt-4o",
                "region": "eastus",
                "tpm": 60000,
                "rpm": 360,
                "weight": 2,
                "api_key": "k1",
            },
            {
                "endpoint": "https://b.openai.azure.com",
                "deployment": "gpt-4o",
                "region": "westus",
                "priority": 1,
                "api_mode": "v1",
                "auth": "entra",
            },
        ],
    },
    "chat-small": {"endpoint": "https://a.openai.azure.com", "deployment": "gpt-4o-mini"},
}


def test_pool_in_code_keeps_routing_and_connection_apart() -> None:
    cfg = RoutingConfig.load({"pools": POOLS})
    east, west = cfg.pools["chat"].deployments
    assert cfg.pools["chat"].strategy == "least_outstanding"
    assert (east.name, east.region, east.tpm, east.rpm, east.weight) == ("east", "eastus", 60000, 360, 2)
    assert east.settings == {
        "endpoint": "https://a.openai.azure.com",
        "deployment": "gpt-4o",
        "api_key": "k1",
    }
    assert west.name == "westus/gpt-4o"  # a readable default name
    assert west.priority == 1
    assert west.settings["api_mode"] == "v1"
    small = cfg.pools["chat-small"]
    assert len(small.deployments) == 1
    assert small.strategy == "quota_aware"
    assert east.limiter_key == "https://a.openai.azure.com|gpt-4o"


def test_pool_from_yaml_toml_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yaml_file = tmp_path / "azmem.yaml"
    yaml_file.write_text(
        "routing:\n  pools:\n    chat:\n      deployments:\n"
        "        - {name: a, endpoint: 'https://a.example.com', deployment: d, tpm: 1000}\n"
        "        - {name: b, endpoint: 'https://b.example.com', deployment: d}\n"
    )
    assert [d.name for d in RoutingConfig.load(yaml_file).pools["chat"].deployments] == ["a", "b"]
    toml_file = tmp_path / "azmem.toml"
    toml_file.write_text('[pools.chat]\nendpoint = "https://a.example.com"\ndeployment = "d"\nrpm = 5\n')
    assert RoutingConfig.load(toml_file).pools["chat"].deployments[0].rpm == 5
    monkeypatch.setenv("AZMEM_ROUTING", json.dumps({"pools": POOLS, "max_attempts": 7}))
    assert RoutingConfig.load().max_attempts == 7
    monkeypatch.setenv("AZMEM_ROUTING", str(yaml_file))
    assert list(RoutingConfig.load().pools) == ["chat"]


def test_unknown_keys_are_named_with_the_closest_valid_one() -> None:
    with pytest.raises(
        ConfigurationError, match=r"unknown key 'pools\.chat\.strategi'.*did you mean 'strategy'"
    ):
        RoutingConfig.load({"pools": {"chat": {"strategi": "latency", "deployments": [{"deployment": "x"}]}}})
    with pytest.raises(ConfigurationError, match="max_attempts"):
        RoutingConfig.load({"max_attempt": 3})


def test_connection_typos_are_caught_when_the_router_is_built() -> None:
    cfg = RoutingConfig.load({"pools": {"chat": {"endpoint": "https://a.example.com", "deploymnet": "x"}}})
    with pytest.raises(ConfigurationError, match="did you mean 'deployment'"):
        Router(cfg, ledger=False)


def test_fallbacks_must_name_configured_pools() -> None:
    with pytest.raises(ConfigurationError, match=r"'chat-smal'.*did you mean 'chat-small'"):
        RoutingConfig.load({"pools": POOLS, "fallbacks": {"general": {"chat": ["chat-smal"]}}})


def test_duplicate_names_in_a_pool_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="repeated: a"):
        RoutingConfig.load(
            {"pools": {"chat": [{"name": "a", "deployment": "x"}, {"name": "a", "deployment": "y"}]}}
        )


def test_capabilities_come_from_the_model_name_with_pool_overrides() -> None:
    cfg = RoutingConfig.load(
        {
            "pools": {
                "p": [
                    {
                        "name": "mini",
                        "endpoint": "https://a.example.com",
                        "deployment": "my-dep",
                        "model": "gpt-4o-mini",
                    },
                    {
                        "name": "old",
                        "endpoint": "https://a.example.com",
                        "deployment": "gpt-35-turbo",
                        "context_window": 4096,
                    },
                    {
                        "name": "cap",
                        "endpoint": "https://a.example.com",
                        "deployment": "gpt-4o",
                        "capabilities": {"vision": False},
                    },
                ]
            }
        }
    )
    mini, old, cap = (default_capabilities_for(d) for d in cfg.pools["p"].deployments)
    assert mini.vision
    assert mini.json_schema
    assert not old.json_schema
    assert old.context_window == 4096
    assert not cap.vision


def test_the_shared_limiter_file_exists_only_when_some_deployment_has_a_quota(tmp_path: Path) -> None:
    plain = {"chat": {"endpoint": "https://a.example.com", "deployment": "d"}}
    assert Router({"pools": plain, "limiter": {"path": str(tmp_path / "a.db")}}).ledger is None
    assert not (tmp_path / "a.db").exists()
    limited = {"chat": {"endpoint": "https://a.example.com", "deployment": "d", "tpm": 1000}}
    router = Router({"pools": limited, "limiter": {"path": str(tmp_path / "b.db")}})
    assert router.ledger is not None
    assert (tmp_path / "b.db").exists()


def test_shared_router_is_one_per_configuration() -> None:
    a = {"pools": {"chat": {"endpoint": "https://a.example.com", "deployment": "d"}}}
    b = {"pools": {"chat": {"endpoint": "https://b.example.com", "deployment": "d"}}}
    assert Router.shared(a) is Router.shared(dict(a))
    assert Router.shared(a) is not Router.shared(b)
