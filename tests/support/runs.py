"""Learning runs over MCP in tests: a scripted model provider, problems, and starting and finishing runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from debrief.learner import Backends, FunctionBackend
from debrief.learner.backend import ChatRequest
from debrief.server.backends.provider import ModelProvider
from debrief.server.embedding.embedder import Embedder
from debrief.server.mcp.app import create_server
from debrief.server.settings import Settings
from tests.learner.scripted import addition_problems, policy, reflector
from tests.support.mcp_calls import call

PolicyFn = Callable[[ChatRequest, int], str | Awaitable[str]]


class ScriptedProvider(ModelProvider):
    """The real provider (allow-list, prices) with the model replaced by scripted functions."""

    def __init__(self, settings: Settings, policy_fn: PolicyFn = policy) -> None:
        super().__init__(settings)
        self.policy = FunctionBackend(policy_fn, model="policy-model")
        self.reflect = FunctionBackend(reflector(), model="reflect-model")

    async def backends(self, model: str | None = None) -> tuple[Backends, Any]:
        return Backends(policy=self.policy, reflect=self.reflect, judge=self.reflect), None


class Gate:
    """Lets the first ``free`` policy requests through, then holds the rest until opened."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.calls = 0
        self.reached = anyio.Event()
        self.opened = anyio.Event()

    async def __call__(self, request: ChatRequest, choice: int) -> str:
        if choice == 0:
            self.calls += 1
        if self.calls > self.free:
            self.reached.set()
            await self.opened.wait()
        return policy(request, choice)


def problems(count: int) -> list[dict[str, str]]:
    return [
        {"question": p.question, "answer": p.answer or "", "problem_id": p.problem_id} for p in addition_problems(count)
    ]


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", chroma_mode="in-process", **overrides)


@asynccontextmanager
async def connect(settings: Settings, embedder: Embedder, provider: ModelProvider) -> AsyncIterator[Client]:
    async with Client(create_server(settings, embedder=embedder, provider=provider)) as client:
        yield client


async def start(client: Client, **arguments: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"namespace": "math", "problems": problems(8), "verifier": "exact", "batch_size": 4}
    defaults.update(arguments)
    return await call(client, "start_learning_run", **defaults)


async def finish(client: Client, run_id: str) -> dict[str, Any]:
    with anyio.fail_after(60):
        while True:
            record = await call(client, "wait_learning_run", run_id=run_id, timeout_seconds=20)
            if record["status"] not in ("queued", "running"):
                return record
