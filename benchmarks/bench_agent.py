"""Agent mode: what the loop adds per turn over the model's own latency, and what tools cost.

Measures, on this machine:
- loop overhead per turn: an agent attempt against the local fake OpenAI-compatible server (real HTTP, real
  OpenAIBackend), tool calls answered in memory; overhead = wall time - time inside the backend, per turn;
  the same with the model as an in-process function (no HTTP at all);
- MCP tool server start (spawn + handshake + tools/list) and call round trip, stdio calculator;
- the built-in code tool's round trip (subprocess with limits).

    .venv/bin/python benchmarks/bench_agent.py            # about 30 s on 2 cores
    .venv/bin/python benchmarks/bench_agent.py --attempts 20 --turns 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from debrief.learner import Backends, FunctionBackend  # noqa: E402
from debrief.learner.accounting import PriceTable  # noqa: E402
from debrief.learner.agent import AgentSettings, run_attempt  # noqa: E402
from debrief.learner.backend import ChatBackend, ChatReply, ChatRequest, Message, ToolCall  # noqa: E402
from debrief.learner.calls import Caller  # noqa: E402
from debrief.learner.code_tool import CODE_TOOL_NAME, CodeTool  # noqa: E402
from debrief.learner.openai_backend import OpenAIBackend  # noqa: E402
from debrief.server.backends.mcp_tools import McpServerEntry, McpTools  # noqa: E402
from tests.learner.fake_openai import FakeOpenAI, serve  # noqa: E402
from tests.support.agent_world import InMemoryCalculator  # noqa: E402


@dataclass
class Timed:
    """A backend wrapper that adds up the time spent inside the backend."""

    inner: ChatBackend
    seconds: float = 0.0
    calls: int = 0
    each: list[float] = field(default_factory=list)

    async def complete(self, request: ChatRequest) -> ChatReply:
        started = time.perf_counter()
        try:
            return await self.inner.complete(request)
        finally:
            spent = time.perf_counter() - started
            self.seconds += spent
            self.calls += 1
            self.each.append(spent)


def turns_of(messages: list[Any]) -> int:
    return sum(1 for message in messages if message["role"] == "tool")


def make_http_reply(turns: int) -> Any:
    def reply(body: dict[str, Any], choice: int) -> str | dict[str, Any]:
        done = turns_of(body["messages"])
        if done + 1 >= turns:
            return "Answer: \\boxed{6}"
        call = {"id": f"c{done}", "type": "function", "function": {"name": "multiply", "arguments": '{"a":2,"b":3}'}}
        return {"role": "assistant", "content": "Let me multiply. " * 20, "tool_calls": [call]}

    return reply


def make_function_reply(turns: int) -> Any:
    def reply(request: ChatRequest, choice: int) -> str | Message:
        done = sum(1 for message in request.messages if message.role == "tool")
        if done + 1 >= turns:
            return "Answer: \\boxed{6}"
        call = ToolCall(call_id=f"c{done}", name="multiply", arguments='{"a":2,"b":3}')
        return Message(role="assistant", content="Let me multiply. " * 20, tool_calls=(call,))

    return reply


def question() -> ChatRequest:
    return ChatRequest(
        role="policy",
        stage="rollout",
        temperature=0.7,
        seed=1,
        messages=(
            Message(role="system", content="Solve the problem. " * 30),
            Message(role="user", content="What is 2 * 3?"),
        ),
    )


async def loop_overhead(backend: ChatBackend, attempts: int, turns: int) -> dict[str, float]:
    timed = Timed(backend)
    caller = Caller(Backends(policy=timed), concurrency=1, prices=PriceTable())
    tools = InMemoryCalculator()
    started = time.perf_counter()
    total_turns = 0
    for _ in range(attempts):
        trajectory, _ = await run_attempt(caller, tools, question(), AgentSettings(max_turns=turns + 5))
        assert trajectory.stop == "answered", trajectory.stop
        total_turns += len(trajectory.turns)
    wall = time.perf_counter() - started
    return {
        "turns": total_turns,
        "model_ms_per_turn": 1000 * timed.seconds / total_turns,
        "overhead_ms_per_turn": 1000 * (wall - timed.seconds) / total_turns,
    }


async def mcp_costs(calls: int) -> dict[str, float]:
    entry = McpServerEntry(command=sys.executable, args=["-m", "tests.support.calculator_server"], cwd=str(ROOT))
    started = time.perf_counter()
    async with McpTools({"calc": entry}) as tools:
        start_seconds = time.perf_counter() - started
        await tools.call("multiply", {"a": 1, "b": 1})
        each = []
        for index in range(calls):
            begun = time.perf_counter()
            result = await tools.call("multiply", {"a": index, "b": 3})
            each.append(time.perf_counter() - begun)
            assert result.text == str(3 * index), result
    return {"start_s": start_seconds, "call_ms_p50": 1000 * statistics.median(each)}


async def code_tool_cost(calls: int) -> dict[str, float | str]:
    tool = CodeTool()
    isolation = tool.isolation
    each = []
    for index in range(calls):
        begun = time.perf_counter()
        result = await tool.call(CODE_TOOL_NAME, {"code": f"print({index} * 7)"})
        each.append(time.perf_counter() - begun)
        assert result.text == f"stdout:\n{index * 7}", result
    return {"call_ms_p50": 1000 * statistics.median(each), "isolation": isolation}


async def main(attempts: int, turns: int) -> None:
    fake = FakeOpenAI(reply=make_http_reply(turns))
    async with serve(fake) as base_url, OpenAIBackend(model="fake", base_url=base_url) as backend:
        await loop_overhead(backend, 2, turns)  # warm up connections and imports
        http = await loop_overhead(backend, attempts, turns)
    function = await loop_overhead(FunctionBackend(make_function_reply(turns)), attempts, turns)
    mcp = await mcp_costs(50)
    code = await code_tool_cost(10)
    print(
        f"agent loop, fake HTTP model: {http['turns']:.0f} turns, model {http['model_ms_per_turn']:.2f} ms/turn, "
        f"loop overhead {http['overhead_ms_per_turn']:.3f} ms/turn (goal <= 5)"
    )
    print(
        f"agent loop, in-process model: {function['turns']:.0f} turns, loop overhead "
        f"{function['overhead_ms_per_turn']:.3f} ms/turn"
    )
    print(f"MCP stdio calculator: start {mcp['start_s']:.2f} s, call p50 {mcp['call_ms_p50']:.2f} ms")
    print(f"code tool ({code['isolation']}): call p50 {code['call_ms_p50']:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=10, help="agent attempts per measurement")
    parser.add_argument("--turns", type=int, default=10, help="model replies per attempt")
    options = parser.parse_args()
    anyio.run(main, options.attempts, options.turns)
