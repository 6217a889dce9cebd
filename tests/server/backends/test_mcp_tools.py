from __future__ import annotations

import json
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import uvicorn

from debrief.learner import Backends, FunctionBackend, InMemoryLibrary, RunConfig, make_verifier, run_learning
from debrief.server.backends.mcp_tools import McpServerEntry, McpTools, load_mcp_servers
from debrief.server.errors import InvalidInput
from tests.support.agent_world import CALC_LESSON, agent_policy, agent_reflector, product_problems
from tests.support.calculator_server import build

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


def calculator(*flags: str) -> McpServerEntry:
    return McpServerEntry(command=sys.executable, args=["-m", "tests.support.calculator_server", *flags], cwd=str(ROOT))


def calls_logged(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


async def test_a_stdio_servers_tools_are_offered_and_calls_arrive_and_return(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    with anyio.fail_after(60):
        async with McpTools({"calc": calculator("--log", str(log))}) as tools:
            specs = await tools.list_tools()
            result = await tools.call("multiply", {"a": 123, "b": 456})
            invalid = await tools.call("multiply", {"a": "many"})

    assert [spec.name for spec in specs] == ["multiply"]
    assert specs[0].parameters["required"] == ["a", "b"]
    assert (result.text, result.is_error) == ("56088", False)
    assert invalid.is_error
    assert [line[1:] for line in calls_logged(log)] == [["multiply", "123", "456"]]
    assert tools.problems == []
    assert tools.running == []


async def test_a_server_that_dies_is_restarted_reported_and_the_call_goes_through(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    with anyio.fail_after(60):
        async with McpTools({"calc": calculator("--crash-after", "2", "--log", str(log))}) as tools:
            first = await tools.call("multiply", {"a": 2, "b": 3})
            second = await tools.call("multiply", {"a": 4, "b": 5})

    assert (first.text, second.text) == ("6", "20")
    assert not second.is_error
    pids = [line[0] for line in calls_logged(log)]
    assert len(pids) == 3 and pids[0] == pids[1] != pids[2]
    assert any("restarting" in problem for problem in tools.problems)


async def test_a_server_that_cannot_start_is_reported_and_the_others_go_on(tmp_path: Path) -> None:
    servers = {"broken": McpServerEntry(command=str(tmp_path / "no-such-program")), "calc": calculator()}
    with anyio.fail_after(60):
        async with McpTools(servers, max_restarts=0) as tools:
            names = [spec.name for spec in await tools.list_tools()]
            result = await tools.call("multiply", {"a": 7, "b": 6})

    assert names == ["multiply"] and result.text == "42"
    assert any("'broken' failed to start" in problem for problem in tools.problems)
    assert any("'broken' is left out" in problem for problem in tools.problems)


async def test_a_server_that_exits_at_once_is_reported_not_hung_on() -> None:
    crashing = McpServerEntry(command=sys.executable, args=["-c", "import sys; sys.exit(1)"])
    with anyio.fail_after(30):
        async with McpTools({"crashing": crashing}, start_timeout=10) as tools:
            assert await tools.list_tools() == []
            result = await tools.call("multiply", {"a": 1, "b": 1})

    assert result.is_error
    assert any("'crashing'" in problem for problem in tools.problems)


async def test_a_hanging_tool_call_is_cut_off_at_the_call_timeout_and_reported() -> None:
    with anyio.fail_after(60):
        async with McpTools({"slow": calculator("--hang")}, call_timeout=0.5) as tools:
            result = await tools.call("multiply", {"a": 1, "b": 2})

    assert result.is_error and "did not answer within 0.5 s" in result.text
    assert any("'slow' did not answer 'multiply'" in problem for problem in tools.problems)


@asynccontextmanager
async def http_calculator() -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # connections queue before uvicorn accepts them: no wait for start-up needed
    port = sock.getsockname()[1]
    app = build().streamable_http_app()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", ws="none", http="h11"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            server.should_exit = True
    sock.close()


async def test_a_streamable_http_server_is_used_by_url_with_headers() -> None:
    with anyio.fail_after(60):
        async with http_calculator() as url:
            entry = McpServerEntry(url=url, headers={"X-Test": "yes"})
            async with McpTools({"calc": entry}) as tools:
                result = await tools.call("multiply", {"a": 12, "b": 12})

    assert (result.text, result.is_error) == ("144", False)


async def test_two_servers_with_the_same_tool_name_are_told_apart_by_server_name() -> None:
    with anyio.fail_after(60):
        async with McpTools({"one": calculator(), "two": calculator()}) as tools:
            names = sorted(spec.name for spec in await tools.list_tools())
            result = await tools.call("two_multiply", {"a": 3, "b": 3})

    assert names == ["one_multiply", "two_multiply"] and result.text == "9"


def test_an_mcp_servers_file_is_read_and_a_wrong_one_says_what_to_fix(tmp_path: Path) -> None:
    good = tmp_path / "mcp.json"
    good.write_text(
        json.dumps({"mcpServers": {"calc": {"command": "python", "args": ["-m", "x"]}, "web": {"url": "http://h/mcp"}}})
    )
    servers = load_mcp_servers(good)
    assert servers["calc"].args == ["-m", "x"] and servers["web"].url == "http://h/mcp"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mcpServers": {"calc": {"args": ["x"]}}}))
    with pytest.raises(InvalidInput, match="give either 'command'"):
        load_mcp_servers(bad)
    with pytest.raises(InvalidInput, match="cannot read"):
        load_mcp_servers(tmp_path / "missing.json")


async def test_an_agent_run_over_a_stdio_calculator_learns_the_lesson_and_counts_the_calls(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    reflect = FunctionBackend(agent_reflector(), model="reflect-model")
    library = InMemoryLibrary()
    config = RunConfig(run_id="agent-mcp", epochs=2, batch_size=8, seed=5, agent=True, max_turns=4)
    with anyio.fail_after(120):
        async with McpTools({"calc": calculator("--log", str(log))}) as tools:
            report = await run_learning(
                config,
                backends=Backends(policy=FunctionBackend(agent_policy), reflect=reflect, tools=tools),
                library=library,
                problems=product_problems(8, seed=2),
                verifier=make_verifier("exact"),
            )

    assert [entry.text for entry in await library.entries()] == [CALC_LESSON]
    first, second = report.steps
    assert first.mean_reward is not None and second.mean_reward is not None
    assert first.mean_reward < second.mean_reward
    counted = sum(sum(group.tool_calls or []) for step in report.steps for group in step.groups)
    assert counted == len(calls_logged(log)) > 0
    # Whole trajectories reach reflection: the summaries, or the advantage stage when it reads attempts directly.
    reflected = [call.messages[-1].content for call in reflect.calls if call.stage in ("summary", "advantage")]
    assert any("Tool call: multiply(" in text and "result of tool multiply" in text for text in reflected)


async def test_a_server_that_never_answers_the_handshake_is_reported_at_the_start_timeout() -> None:
    silent = McpServerEntry(command=sys.executable, args=["-c", "import time; time.sleep(120)"])
    with anyio.fail_after(60):
        async with McpTools({"silent": silent}, start_timeout=2) as tools:
            names = [spec.name for spec in await tools.list_tools()]
            result = await tools.call("multiply", {"a": 1, "b": 2})

    assert names == [] and result.is_error
    assert any("'silent' did not start within 2 s" in problem for problem in tools.problems)
