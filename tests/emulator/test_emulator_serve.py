"""The standalone server: config files and `python -m azmem.emulator`, as a user runs it."""

from __future__ import annotations

import gc
import json
import queue
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import openai
import pydantic
import pytest

from azmem.emulator import Emulator, EmulatorConfig, serve


def test_yaml_config(tmp_path: Path) -> None:
    path = tmp_path / "emu.yaml"
    path.write_text(
        "api_keys: [k1, k2]\n"
        "region: Sweden Central\n"
        "deployments:\n"
        "  - {name: chat, model: gpt-4o-mini, tpm: 30000, rpm: 60, latency: [0.05, 0.3]}\n"
        "  - {name: emb, model: text-embedding-3-large}\n"
        "  - {name: think, model: o4-mini}\n"
    )
    config = EmulatorConfig.load(path)
    chat, emb, think = config.build_deployments()
    assert config.api_keys == ["k1", "k2"]
    assert (chat.kind, chat.tpm, chat.rpm, chat.latency) == ("chat", 30000, 60, (0.05, 0.3))
    assert (emb.kind, emb.dimensions) == ("embeddings", 3072)
    assert think.reasoning is True


def test_json_config_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "emu.json"
    path.write_text(json.dumps({"deployments": [{"name": "x", "tpms": 5}]}))
    with pytest.raises(pydantic.ValidationError, match="tpms"):
        EmulatorConfig.load(path)


def test_empty_config_serves_default_deployments() -> None:
    names = [d.name for d in EmulatorConfig().build_deployments()]
    assert names == [
        "gpt-4o",
        "gpt-4o-mini",
        "o3-mini",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
    ]


def test_python_m_serves_and_prints_connection_details(tmp_path: Path) -> None:
    config = tmp_path / "emu.json"
    config.write_text(
        json.dumps({"api_keys": ["cli-key"], "deployments": [{"name": "my-chat", "model": "gpt-4o"}]})
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "azmem.emulator", "--port", "0", "--config", str(config)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        banner: list[str] = []
        endpoint = None
        while endpoint is None:
            line = lines.get(timeout=20)
            banner.append(line)
            if line.strip().startswith("endpoint"):
                endpoint = line.split()[-1]
        while not banner[-1].strip().startswith("export OPENAI_API_VERSION"):
            banner.append(lines.get(timeout=5))
        text = "".join(banner)
        assert "cli-key" in text
        assert "my-chat" in text
        assert f"export AZURE_OPENAI_ENDPOINT={endpoint}" in text
        with openai.AzureOpenAI(
            azure_endpoint=endpoint, api_key="cli-key", api_version="2024-10-21", max_retries=0
        ) as client:
            reply = client.chat.completions.create(
                model="my-chat", messages=[{"role": "user", "content": "hi"}]
            )
        assert reply.choices[0].message.content
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode is not None


def test_start_twice_returns_same_endpoint_and_stop_is_idempotent() -> None:
    emu = Emulator()
    try:
        assert emu.start() == emu.start()
    finally:
        emu.stop()
        emu.stop()


class _Stop(Exception):
    pass


def _stop(endpoint: str) -> None:
    raise _Stop(endpoint)


def _resource_warnings(run: Callable[[], object]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_serve_closes_its_socket_when_the_port_is_taken() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]

        def run() -> None:
            with pytest.raises(OSError, match="in use"):
                serve(port=port, banner=False)

        assert _resource_warnings(run) == []


def test_serve_closes_its_socket_when_ready_fails() -> None:
    def run() -> None:
        with pytest.raises(_Stop):
            serve(port=0, ready=_stop, banner=False)

    assert _resource_warnings(run) == []


@pytest.mark.parametrize("banner", [True, False])
def test_serve_banner_can_be_silenced(capsys: pytest.CaptureFixture[str], banner: bool) -> None:
    with pytest.raises(_Stop) as info:
        serve(port=0, ready=_stop, banner=banner)
    endpoint = str(info.value)
    err = capsys.readouterr().err
    if banner:
        assert "azmem Azure OpenAI emulator" in err
        assert f"export AZURE_OPENAI_ENDPOINT={endpoint}" in err
    else:
        assert err == ""
