"""A small OpenAI-compatible chat server for adapter tests, served by uvicorn on a loopback port."""

from __future__ import annotations

import hashlib
import json
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Reply = Callable[[dict[str, Any], int], str | dict[str, Any]]
"""Text for one choice, or (agent-mode tests) a whole assistant message such as one carrying ``tool_calls``."""


@dataclass
class FakeOpenAI:
    """Answers /v1/chat/completions. The knobs say how it misbehaves; ``bodies`` records every request."""

    reply: Reply = lambda body, choice: f"choice {choice}"
    honours_n: bool = True
    refuse_json_schema: bool = False
    fail_first: list[int] = field(default_factory=list)
    hang_first: int = 0
    cached_tokens: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    release: anyio.Event = field(default_factory=anyio.Event)
    # seeded faults, each at most ``faults_per_request`` times for the same request body, so retries get through
    fail_rate: float = 0.0
    fail_statuses: tuple[int, ...] = (500, 502, 503)
    hang_rate: float = 0.0
    truncate_rate: float = 0.0
    faults_per_request: int = 2
    max_in_flight: int | None = None
    """Above this many requests in flight, answer 429 with ``retry_after``."""
    retry_after: str = "0"
    latency: float = 0.0
    seed: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    _faulted: dict[str, int] = field(default_factory=dict)
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def _fault(self, kind: str, rate: float, key: str) -> bool:
        if rate <= 0 or self._faulted.get(key, 0) >= self.faults_per_request or self._rng.random() >= rate:
            return False
        self._faulted[key] = self._faulted.get(key, 0) + 1
        self.faults[kind] = self.faults.get(kind, 0) + 1
        return True

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.latency:
                await anyio.sleep(self.latency)  # the fake server's own latency, so that requests overlap
            return await self._answer(body, len(self.bodies))
        finally:
            self.in_flight -= 1

    async def _answer(self, body: dict[str, Any], number: int) -> Response:
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if self.max_in_flight is not None and self.in_flight > self.max_in_flight:
            self.faults["429"] = self.faults.get("429", 0) + 1
            return JSONResponse(
                {"error": {"message": "rate limited: too many requests in flight"}},
                status_code=429,
                headers={"retry-after": self.retry_after},
            )
        if number <= self.hang_first or self._fault("hang", self.hang_rate, key):
            await self.release.wait()
        if number <= len(self.fail_first):
            status = self.fail_first[number - 1]
            return JSONResponse(
                {"error": {"message": f"scripted {status}"}}, status_code=status, headers={"retry-after": "0"}
            )
        if self._fault("5xx", self.fail_rate, key):
            status = self._rng.choice(self.fail_statuses)
            return JSONResponse({"error": {"message": "upstream error"}}, status_code=status)
        response_format = body.get("response_format") or {}
        if self.refuse_json_schema and response_format.get("type") == "json_schema":
            return JSONResponse({"error": {"message": "json_schema is not supported"}}, status_code=500)
        count = int(body.get("n") or 1) if self.honours_n else 1
        prompt = sum(len(message.get("content") or "") // 4 + 1 for message in body["messages"])
        replies = [self.reply(body, choice) for choice in range(count)]
        messages = [item if isinstance(item, dict) else {"role": "assistant", "content": item} for item in replies]
        if response_format and self._fault("truncated", self.truncate_rate, key):
            messages = [{**message, "content": str(message.get("content") or "")[:20]} for message in messages]
        texts = [str(message.get("content") or "") for message in messages]
        return JSONResponse(
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": index,
                        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                        "message": message,
                    }
                    for index, message in enumerate(messages)
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": sum(len(text) // 4 + 1 for text in texts),
                    "total_tokens": 0,
                    "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
                },
            }
        )


@asynccontextmanager
async def serve(fake: FakeOpenAI) -> AsyncIterator[str]:
    """Serve ``fake`` on a free loopback port; yield its base URL."""
    app = Starlette(routes=[Route("/v1/chat/completions", fake.chat, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue before uvicorn accepts them, so no wait for start-up is needed
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off", ws="none", http="h11")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        try:
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            fake.release.set()
            server.should_exit = True
    sock.close()


def json_reply(payload: dict[str, Any]) -> Reply:
    return lambda body, choice: json.dumps(payload)
