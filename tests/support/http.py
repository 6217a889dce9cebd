"""Serving an MCP server, or any ASGI app, over HTTP on loopback inside a test."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import uvicorn
from mcp.server import MCPServer
from starlette.types import ASGIApp


@asynccontextmanager
async def serving(build: Callable[[int], MCPServer]) -> AsyncIterator[str]:
    """Serve ``build(port)`` over Streamable HTTP on a loopback socket that is listening before this yields."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port: int = listener.getsockname()[1]
    app = build(port).streamable_http_app(host="127.0.0.1")
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="none"))
    async with anyio.create_task_group() as group:
        group.start_soon(uv.serve, [listener])
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            uv.should_exit = True


@asynccontextmanager
async def serving_app(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` on a loopback socket that is listening before this yields its root URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off", ws="none", http="h11")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [listener])
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            server.should_exit = True
    listener.close()
