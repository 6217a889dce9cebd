"""A scripted world for agent-mode tests: multi-digit products, a policy that calls a multiply tool (more often
once it reads the lesson), a reflector that learns the lesson from trajectories with tool calls."""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from debrief.learner.backend import ChatRequest, Message, ToolCall
from debrief.learner.datasets import Problem, generate_problems
from debrief.learner.tools import ToolResult, ToolSpec
from tests.learner.scripted import default_advantage, default_consolidation, default_summary, reflector

CALC_LESSON = "For multi-digit products, call the multiply tool instead of multiplying in your head, then report it."
USES_TOOL_WITH_LESSON = 0.9
USES_TOOL_WITHOUT_LESSON = 0.3

_QUESTION = re.compile(r"What is (\d+) \* (\d+)\?")
_NUMBER = re.compile(r"-?\d+")

MULTIPLY = ToolSpec(
    name="multiply",
    description="Multiply two integers exactly.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


def product(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(100, 999), rng.randint(100, 999)
    return f"What is {a} * {b}?", str(a * b)


def product_problems(count: int, seed: int = 0) -> list[Problem]:
    return generate_problems(product, count, seed=seed)


def _factors(request: ChatRequest) -> tuple[int, int]:
    for message in request.messages:
        match = _QUESTION.search(message.content)
        if match is not None and message.role == "user":
            return int(match[1]), int(match[2])
    raise AssertionError(f"no question in {request.messages!r}")


def _shows_lesson(request: ChatRequest) -> bool:
    return any(CALC_LESSON in message.content for message in request.messages if message.role != "tool")


def agent_policy(request: ChatRequest, choice: int) -> str | Message:
    """Calls multiply with probability 0.9 when the lesson is shown, else 0.3; answers from the tool's result."""
    results = [message for message in request.messages if message.role == "tool"]
    if results:
        value = _NUMBER.findall(results[-1].content)[-1]
        return f"The multiply tool returned {value}.\nAnswer: \\boxed{{{value}}}"
    a, b = _factors(request)
    rng = random.Random(zlib.crc32(f"{a}*{b}".encode()) * 7919 + (request.seed or 0) + choice)
    p = USES_TOOL_WITH_LESSON if _shows_lesson(request) else USES_TOOL_WITHOUT_LESSON
    if request.tools and rng.random() < p:
        arguments = json.dumps({"a": a, "b": b})
        call = ToolCall(call_id=f"call-{request.seed}-{choice}", name="multiply", arguments=arguments)
        return Message(role="assistant", content="Multi-digit product: I will use the tool.", tool_calls=(call,))
    guess = a * b + 10
    return f"In my head, {a} * {b} is {guess}.\nAnswer: \\boxed{{{guess}}}"


def _summary(request: ChatRequest) -> str:
    payload: dict[str, Any] = json.loads(default_summary(request))
    used = "Tool call: multiply(" in request.messages[-1].content
    payload["summary"] = ("Called the multiply tool. " if used else "Multiplied in its head. ") + payload["summary"]
    return json.dumps(payload)


def _advantage(request: ChatRequest) -> str:
    payload: dict[str, Any] = json.loads(default_advantage(request))
    shown = "\n".join(message.content for message in request.messages)
    learned = CALC_LESSON in request.messages[0].content
    payload["operations"] = (
        [{"op": "add", "text": CALC_LESSON}]
        if ("Called the multiply tool" in shown or "Tool call: multiply(" in shown) and not learned
        else []
    )
    return json.dumps(payload)


def _consolidation(request: ChatRequest) -> str:
    payload: dict[str, Any] = json.loads(default_consolidation(request))
    proposed = CALC_LESSON in request.messages[-1].content and CALC_LESSON not in request.messages[0].content
    payload["operations"] = [{"op": "add", "text": CALC_LESSON}] if proposed else []
    return json.dumps(payload)


def agent_reflector() -> Callable[[ChatRequest, int], str]:
    """The reflector of this world: proposes the lesson when a summary shows a tool call."""
    return reflector(summary=_summary, advantage=_advantage, consolidation=_consolidation)


class InMemoryCalculator:
    """The multiply tool as a Tools object in this process, recording every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def list_tools(self) -> Sequence[ToolSpec]:
        return [MULTIPLY]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        self.calls.append(arguments)
        a, b = arguments.get("a"), arguments.get("b")
        if not isinstance(a, int) or not isinstance(b, int):
            return ToolResult(text="a and b must be integers", is_error=True)
        return ToolResult(text=str(a * b))
