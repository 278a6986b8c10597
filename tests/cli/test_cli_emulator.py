"""``azmem emulator``: the installed console script serves an endpoint the real openai SDK can use."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from azmem.cli.emulator import connection_info
from azmem.emulator import Deployment

from .conftest import Invoke
from .test_cli_demo import _console_script


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line, or fail with stderr if the server did not start in time."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"azmem emulator printed nothing in {timeout} s; stderr:\n{err}")
    return proc.stdout.readline()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[dict[str, Any], subprocess.Popen[str]]]:
    config = tmp_path / "emulator.yaml"
    config.write_text(
        "api_keys: [sub-key]\n"
        "deployments:\n"
        "  - {name: my-chat, model: gpt-4o-mini}\n"
        "  - {name: my-embed, model: text-embedding-3-small, dimensions: 256}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZMEM_"))}
    proc = subprocess.Popen(
        [_console_script(), "emulator", "--port", "0", "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        info = json.loads(_read_line(proc, timeout=30))
        yield info, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_served_emulator_answers_the_real_sdk(served: tuple[dict[str, Any], subprocess.Popen[str]]) -> None:
    info, proc = served
    assert info["api_key"] == "sub-key"
    assert info["env"]["AZURE_OPENAI_DEPLOYMENT"] == "my-chat"
    assert info["env"]["AZURE_OPENAI_EMBEDDING_DEPLOYMENT"] == "my-embed"
    client = openai.AzureOpenAI(
        azure_endpoint=info["endpoint"], api_key=info["api_key"], api_version="2024-10-21", max_retries=0
    )
    try:
        reply = client.chat.completions.create(
            model="my-chat", messages=[{"role": "user", "content": "Hello"}]
        )
        assert reply.choices[0].message.content
        vectors = client.embeddings.create(model="my-embed", input=["a", "b"])
        assert [len(d.embedding) for d in vectors.data] == [256, 256]
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    finally:
        client.close()

    proc.send_signal(signal.SIGTERM)  # stops cleanly, like Ctrl-C
    assert proc.wait(timeout=15) == 0
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr
    assert "azmem Azure OpenAI emulator" not in stderr, "--json: stdout's JSON line is the whole output"


def test_bad_emulator_config_is_an_input_error(cli: Invoke, tmp_path: Path) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text("api_key: [x]\n", encoding="utf-8")
    result = cli("emulator", "--config", str(config), with_store=False)
    assert result.exit_code == 4
    assert "api_key" in result.stderr
    assert "api_keys" in result.stderr  # the known keys, so the typo is obvious
    bad_deployment = tmp_path / "deployment.yaml"
    bad_deployment.write_text("deployments:\n  - {name: x, max_output_token: 5}\n", encoding="utf-8")
    typo = cli("emulator", "--config", str(bad_deployment), with_store=False)
    assert typo.exit_code == 4
    hint = " ".join(typo.stderr.split())  # rich may wrap the line
    for key in ("max_output_tokens", "json_schema", "vision", "context_window", "tpm", "latency"):
        assert key in hint, key
    missing = cli("emulator", "--config", str(tmp_path / "nope.yaml"), with_store=False)
    assert missing.exit_code == 4
    assert "does not exist" in missing.stderr


def test_connection_info_lists_what_clients_need() -> None:
    info = connection_info(
        "http://127.0.0.1:1234",
        ["k1", "k2"],
        [Deployment("gpt-4o"), Deployment("text-embedding-3-large")],
    )
    assert info["env"] == {
        "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:1234",
        "AZURE_OPENAI_API_KEY": "k1",
        "OPENAI_API_VERSION": "2024-10-21",
        "AZURE_OPENAI_DEPLOYMENT": "gpt-4o",
        "AZURE_OPENAI_EMBEDDING_DEPLOYMENT": "text-embedding-3-large",
    }
    assert info["deployments"][1] == {
        "name": "text-embedding-3-large",
        "kind": "embeddings",
        "model": "text-embedding-3-large",
        "dimensions": 3072,
    }


def test_a_busy_port_is_reported_with_a_fix(cli: Invoke) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = cli("emulator", "--port", str(port), with_store=False)
    assert result.exit_code == 4
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port 0" in result.stderr


def test_the_printed_exports_are_enough_for_a_bare_azure_openai_client(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azmem.emulator.config import default_deployments

    info = connection_info(emulator.endpoint, [emulator.api_key], default_deployments())
    assert info["env"]["OPENAI_API_VERSION"]
    for key, value in info["env"].items():
        monkeypatch.setenv(key, value)
    with openai.AzureOpenAI(max_retries=0) as client:  # everything from the environment
        reply = client.chat.completions.create(
            model=info["env"]["AZURE_OPENAI_DEPLOYMENT"], messages=[{"role": "user", "content": "Hi"}]
        )
    assert reply.choices[0].message.content


def test_stdout_holds_only_the_export_lines(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZMEM_", "OPENAI_"))}
    proc = subprocess.Popen(
        [_console_script(), "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = _read_line(proc, timeout=30)  # the others are then in the reader's buffer
        lines = [line.rstrip("\n") for line in [first] + [proc.stdout.readline() for _ in range(4)]]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert all(line.startswith("export ") for line in lines), lines
    names = [line.split()[1].split("=")[0] for line in lines]
    assert names == [
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_API_KEY",
        "OPENAI_API_VERSION",
        "AZURE_OPENAI_DEPLOYMENT",
        "AZURE_OPENAI_EMBEDDING_DEPLOYMENT",
    ]
    assert "To use it, paste the export lines" in err
    assert "Ctrl-C stops it." in err


def test_a_host_that_is_not_this_machines_says_to_fix_host(cli: Invoke) -> None:
    result = cli("emulator", "--host", "192.0.2.1", "--port", "0", with_store=False)
    assert result.exit_code == 4, result.stderr
    assert "--host must be an address of this machine" in result.stderr
