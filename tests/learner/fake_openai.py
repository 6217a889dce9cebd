"""A small OpenAI-compatible chat server for adapter tests, served by uvicorn on a loopback port."""

from __future__ import annotations

import json
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

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        number = len(self.bodies)
        if number <= self.hang_first:
            await self.release.wait()
        if number <= len(self.fail_first):
            status = self.fail_first[number - 1]
            return JSONResponse(
                {"error": {"message": f"scripted {status}"}}, status_code=status, headers={"retry-after": "0"}
            )
        response_format = body.get("response_format") or {}
        if self.refuse_json_schema and response_format.get("type") == "json_schema":
            return JSONResponse({"error": {"message": "json_schema is not supported"}}, status_code=500)
        count = int(body.get("n") or 1) if self.honours_n else 1
        prompt = sum(len(message.get("content") or "") // 4 + 1 for message in body["messages"])
        replies = [self.reply(body, choice) for choice in range(count)]
        messages = [item if isinstance(item, dict) else {"role": "assistant", "content": item} for item in replies]
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
