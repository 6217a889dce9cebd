"""The real entry points as a user runs them: `debrief serve` over stdio and Streamable HTTP, and
`debrief experiences` — all on the default (shared) Chroma mode, several processes on one data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from debrief.server.cli.demo_session import server_parameters
from tests.clients.running import free_port, http_server

pytestmark = pytest.mark.anyio

LESSON = "When a word problem mixes units, convert every quantity to one unit before doing any arithmetic."
OTHER = "When debugging a flaky test, first make the failure reproducible with a fixed random seed."


async def tool(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


async def test_two_stdio_servers_on_one_data_dir_share_one_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with anyio.fail_after(180):
        async with (
            Client(server_parameters(data), mode="legacy") as desktop,
            Client(server_parameters(data)) as editor,
        ):
            added = await tool(desktop, "add_experience", text=LESSON, namespace="math")
            await tool(editor, "add_experience", text=OTHER, namespace="code")
            found = await tool(editor, "retrieve_experiences", task="mixing meters and centimeters", namespace="math")
            assert found["experiences"][0]["experience_id"] == added["experience"]["experience_id"]
            listed = await tool(desktop, "list_namespaces")
            assert {item["namespace"] for item in listed["namespaces"]} == {"math", "code"}
            history = await tool(desktop, "library_history", namespace="code")
            assert [change["kind"] for change in history["changes"]] == ["add"]
    host = json.loads((data / "chroma-host.json").read_text()) if (data / "chroma-host.json").exists() else None
    assert host is None, "the last server out stops the shared Chroma host"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_streamable_http_serves_the_tools(tmp_path: Path, mode: str) -> None:
    port = free_port()
    env = {**os.environ, "DEBRIEF_DATA_DIR": str(tmp_path / "data")}
    env.pop("DEBRIEF_HTTP_TOKENS", None)
    argv = [sys.executable, "-m", "debrief.server", "serve", "--http", "--host", "127.0.0.1", "--port", str(port)]
    with anyio.fail_after(180):
        async with http_server(argv, env), Client(f"http://127.0.0.1:{port}/mcp", mode=mode) as client:
            await tool(client, "add_experience", text=LESSON, namespace="math")
            found = await tool(client, "retrieve_experiences", task="units in a word problem", namespace="math", k=1)
            assert [item["text"] for item in found["experiences"]] == [LESSON]
            prompt = await client.get_prompt("use_experience_memory", {"namespace": "math"})
            assert prompt.messages


def test_serving_http_beyond_loopback_without_tokens_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "DEBRIEF_DATA_DIR": str(tmp_path / "data")}
    env.pop("DEBRIEF_HTTP_TOKENS", None)
    done = subprocess.run(
        [sys.executable, "-m", "debrief.server", "serve", "--http", "--host", "0.0.0.0", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "DEBRIEF_HTTP_TOKENS" in done.stderr
    assert done.stdout == ""


def test_experiences_import_list_and_text_export_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "DEBRIEF_DATA_DIR": str(tmp_path / "data")}
    export = {
        "namespace": "math",
        "version": 2,
        "exported_at": "2026-01-01T00:00:00Z",
        "experiences": [
            {"experience_id": "math:0123456789ab", "text": LESSON},
            {"experience_id": "math:0123456789ac", "text": OTHER},
        ],
    }
    source = tmp_path / "library.json"
    source.write_text(json.dumps(export))

    def debrief(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "debrief.server", "experiences", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    imported = debrief("import", str(source))
    assert "version 1" in imported.stderr
    listed = debrief("list", "-n", "math")
    assert sorted(line.split("\t")[1] for line in listed.stdout.splitlines()) == sorted([LESSON, OTHER])
    text = debrief("export", "-n", "math", "--format", "text")
    assert text.stdout.startswith("# Debrief experiences: math")
    assert f"- [math:0123456789ab] {LESSON}" in text.stdout
    round_trip = json.loads(debrief("export", "-n", "math").stdout)
    assert {item["experience_id"] for item in round_trip["experiences"]} == {"math:0123456789ab", "math:0123456789ac"}
    again = debrief("import", str(source))
    assert "nothing to import" in again.stderr
