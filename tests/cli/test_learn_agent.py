"""`debrief learn --agent` as a user runs it: a subprocess, a fake OpenAI-compatible endpoint that calls tools, and a
real stdio MCP calculator server named in an mcpServers file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.learner.fake_openai import FakeOpenAI, serve
from tests.support.agent_world import CALC_LESSON

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def agent_fake(body: dict[str, Any], choice: int) -> str | dict[str, Any]:
    """Reflection proposes the lesson; the policy calls multiply on even seeds and guesses wrong on odd ones."""
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name") or ""
    messages = body["messages"]
    last = messages[-1].get("content") or ""
    if schema == "AttemptSummary":
        used = "Tool call: multiply(" in last
        return json.dumps({"summary": "Called the multiply tool." if used else "Multiplied in its head."})
    if schema == "GroupAdvantage":
        return json.dumps({"analysis": "The tool was right.", "operations": [{"op": "add", "text": CALC_LESSON}]})
    if schema == "ConsolidationPlan":
        return json.dumps({"reasoning": "Keep the proposals.", "operations": []})
    if messages[-1]["role"] == "tool":
        value = re.findall(r"-?\d+", last)[-1]
        return f"The tool says {value}.\nAnswer: \\boxed{{{value}}}"
    question = next(message["content"] for message in messages if message["role"] == "user")
    match = re.search(r"What is (\d+) \* (\d+)\?", question)
    if match is None:  # the endpoint check before the run
        return "OK"
    a, b = int(match[1]), int(match[2])
    if int(body.get("seed") or 0) % 2 == 0 and body.get("tools"):
        arguments = json.dumps({"a": a, "b": b})
        call = {"id": f"call-{choice}", "type": "function", "function": {"name": "multiply", "arguments": arguments}}
        return {"role": "assistant", "content": "", "tool_calls": [call]}
    return f"Answer: \\boxed{{{a * b + 10}}}"


async def test_debrief_learn_agent_uses_the_configured_mcp_server_and_shows_tool_use(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    config = tmp_path / "mcp.json"
    server = {"command": sys.executable, "args": ["-m", "tests.support.calculator_server", "--log", str(log)]}
    config.write_text(json.dumps({"mcpServers": {"calc": {**server, "cwd": str(ROOT)}}}))
    fake = FakeOpenAI(reply=agent_fake)
    env = {
        **os.environ,
        "DEBRIEF_DATA_DIR": str(tmp_path / "data"),
        "DEBRIEF_CHROMA_MODE": "in-process",
        "OPENAI_API_KEY": "test-key",
    }
    async with serve(fake) as base_url:
        command = [
            *(sys.executable, "-m", "server", "learn", "--agent", "--mcp-config", str(config), "--code-tool"),
            *("--max-turns", "4", "--generator", "tests.support.agent_world:product", "--count", "4"),
            *("--verifier", "exact", "--namespace", "tools", "--epochs", "1", "--batch-size", "4"),
            *("--group-size", "2", "--base-url", base_url, "--model", "fake-model"),
        ]
        with anyio.fail_after(240):
            done = await anyio.run_process(command, env=env, check=False, cwd=ROOT)
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "tools/att" in stdout and "turns/att" in stdout and "tool errs" in stdout
    assert re.search(r"│\s+0\.50 │\s+1\.50 │\s+0 │", stdout)  # half the attempts called the tool once
    rollouts = [body for body in fake.bodies if body.get("tools")]
    assert {tool["function"]["name"] for tool in rollouts[0]["tools"]} == {"multiply", "run_python"}
    tool_messages = [message for body in rollouts for message in body["messages"] if message["role"] == "tool"]
    assert tool_messages and all("result of tool multiply" in message["content"] for message in tool_messages)
    assert len(log.read_text().splitlines()) == 4  # one call per even-seeded attempt: 4 problems x 1
    listed = subprocess.run(
        [sys.executable, "-m", "server", "experiences", "list", "-n", "tools"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    assert CALC_LESSON[:40] in listed.stdout

    # debrief eval --agent: both arms' attempts are tool-using loops with the same tools.
    fake.bodies.clear()
    async with serve(fake) as base_url:
        command = [
            *(sys.executable, "-m", "server", "eval", "--agent", "--mcp-config", str(config), "--max-turns", "4"),
            *("--generator", "tests.support.agent_world:product", "--count", "3", "--samples", "2"),
            *("--verifier", "exact", "--namespace", "tools", "--json", "--base-url", base_url, "--model", "fake-model"),
        ]
        with anyio.fail_after(240):
            evaluated = await anyio.run_process(command, env=env, check=False, cwd=ROOT)
    assert evaluated.returncode == 0, evaluated.stderr.decode()
    report = json.loads(evaluated.stdout)
    assert report["namespace"] == "tools"
    assert any(message["role"] == "tool" for body in fake.bodies for message in body["messages"])
    assert len(log.read_text().splitlines()) > 4  # the eval's attempts called the calculator too


async def test_agent_flags_without_agent_are_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {**os.environ, "DEBRIEF_DATA_DIR": str(tmp_path / "data")}
    command = [
        *(sys.executable, "-m", "server", "learn", "--mcp-config", str(tmp_path / "mcp.json")),
        *("--generator", "tests.support.agent_world:product", "--namespace", "tools"),
    ]
    with anyio.fail_after(60):
        done = await anyio.run_process(command, env=env, check=False, cwd=ROOT)
    assert done.returncode != 0
    assert "add --agent" in done.stderr.decode()
    assert not (tmp_path / "data").exists()
