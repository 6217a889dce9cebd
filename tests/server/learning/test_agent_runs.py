"""Agent-mode learning runs over MCP: only with the tool servers the server's operator configured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from debrief.learner import FunctionBackend
from debrief.server.embedding.embedder import Embedder
from debrief.server.settings import RunSettings
from tests.support.agent_world import CALC_LESSON, agent_policy, agent_reflector, product_problems
from tests.support.mcp_calls import call, call_error
from tests.support.runs import ScriptedProvider, connect, finish, settings_for, start

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


def agent_provider(provider: ScriptedProvider) -> ScriptedProvider:
    provider.policy = FunctionBackend(agent_policy, model="policy-model")
    provider.reflect = FunctionBackend(agent_reflector(), model="reflect-model")
    return provider


def product_payload(count: int) -> list[dict[str, str]]:
    return [
        {"question": p.question, "answer": p.answer or "", "problem_id": p.problem_id}
        for p in product_problems(count, seed=4)
    ]


async def test_agent_mode_is_refused_when_the_operator_configured_no_tools(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = settings_for(tmp_path)
    async with connect(settings, test_embedder, agent_provider(ScriptedProvider(settings))) as client:
        message = await call_error(
            client, "start_learning_run", namespace="math", problems=product_payload(4), verifier="exact", agent=True
        )
        listed = await call(client, "list_learning_runs")

    assert "DEBRIEF_AGENT_MCP_CONFIG" in message
    assert listed["runs"] == []


async def test_an_agent_run_started_over_mcp_uses_the_operators_tool_server_and_records_tool_use(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    log = tmp_path / "calls.log"
    servers = tmp_path / "mcp.json"
    calculator = {"command": sys.executable, "args": ["-m", "tests.support.calculator_server", "--log", str(log)]}
    servers.write_text(json.dumps({"mcpServers": {"calc": {**calculator, "cwd": str(ROOT)}}}))
    settings = settings_for(tmp_path, runs=RunSettings(agent_mcp_config=servers))
    provider = agent_provider(ScriptedProvider(settings))
    async with connect(settings, test_embedder, provider) as client:
        started = await start(client, problems=product_payload(8), epochs=2, batch_size=8, agent=True, max_turns=4)
        record = await finish(client, started["run_id"])
        library = await call(client, "list_experiences", namespace="math")

    assert record["status"] == "succeeded", record
    assert [item["text"] for item in library["items"]] == [CALC_LESSON]
    first, second = record["steps"]
    assert first["tool_calls_per_attempt"] < second["tool_calls_per_attempt"]
    assert first["mean_reward"] < second["mean_reward"]
    recorded = sum(sum(group["tool_calls"]) for step in record["steps"] for group in step["groups"])
    assert recorded == len(log.read_text().splitlines()) > 0
    assert all(request.tools and request.tools[0].name == "multiply" for request in provider.policy.calls)
