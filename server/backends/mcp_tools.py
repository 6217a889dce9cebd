"""Tools from MCP servers for agent-mode rollouts: the learner's ``Tools`` over ``mcp.Client``.

The servers come from the standard ``{"mcpServers": {NAME: {"command", "args", "env"} | {"url", "headers"}}}``
file desktop clients use. Each server is run by a supervisor task for the whole run and shared by every rollout;
one that dies is restarted (a bounded number of times), one that fails to start or keeps dying is reported in
``problems`` and its tools drop out while the others go on. Every start and every call is bounded in time.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import httpx2
from anyio.abc import TaskGroup
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from mcp_types import CONNECTION_CLOSED
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from debrief.learner.code_tool import CodeTool
from debrief.learner.tools import CombinedTools, ToolResult, Tools, ToolSpec, valid_tool_name
from debrief.server.errors import InvalidInput

logger = logging.getLogger(__name__)


class McpServerEntry(BaseModel):
    """One server of an ``mcpServers`` file: a command to spawn (stdio) or a URL (Streamable HTTP)."""

    model_config = ConfigDict(extra="ignore")

    command: str | None = Field(default=None, description="Program that serves MCP over stdio.")
    args: list[str] = Field(default_factory=list, description="Its arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for it.")
    cwd: str | None = Field(default=None, description="Its working directory.")
    url: str | None = Field(default=None, description="Streamable HTTP endpoint of a running server.")
    headers: dict[str, str] = Field(default_factory=dict, description="HTTP headers sent to it (e.g. auth).")

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' (stdio) or 'url' (Streamable HTTP), not both or neither")
        return self


class McpServersFile(BaseModel):
    """The ``mcpServers`` file desktop clients keep."""

    mcp_servers: dict[str, McpServerEntry] = Field(alias="mcpServers", description="Servers by name.")


def load_mcp_servers(path: Path) -> dict[str, McpServerEntry]:
    """Read an ``mcpServers`` file. Raises :class:`InvalidInput` saying what to fix."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"cannot read the MCP servers file {str(path)!r}: {error.strerror}") from error
    try:
        return McpServersFile.model_validate_json(raw).mcp_servers
    except ValidationError as error:
        raise InvalidInput(
            f"{str(path)!r} is not an mcpServers file ({error.error_count()} problem(s), first: "
            f"{error.errors()[0]['msg']} at {'.'.join(str(part) for part in error.errors()[0]['loc'])!r}); expected "
            '{"mcpServers": {"NAME": {"command": ..., "args": [...], "env": {...}} or {"url": ..., "headers": {...}}}}'
        ) from error


@dataclass
class _Server:
    name: str
    entry: McpServerEntry
    client: Client | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    generation: int = 0
    starts: int = 0
    failed: str | None = None
    up: anyio.Event = field(default_factory=anyio.Event)
    down: anyio.Event = field(default_factory=anyio.Event)


def _result_text(result: CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content omitted]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts) if parts else "(no content)"


class McpTools:
    """The tools of the configured MCP servers, as one :class:`~debrief.learner.tools.Tools`.

    Use as ``async with McpTools(servers) as tools``: entering starts every server (each within
    ``start_timeout``), leaving stops them. Tool names are the servers' own; a name two servers share is
    offered as ``server_tool`` for each.
    """

    def __init__(
        self,
        servers: Mapping[str, McpServerEntry],
        *,
        start_timeout: float = 30.0,
        call_timeout: float = 60.0,
        max_restarts: int = 3,
    ) -> None:
        self._servers = {name: _Server(name=name, entry=entry) for name, entry in servers.items()}
        self.start_timeout = start_timeout
        self.call_timeout = call_timeout
        self.max_restarts = max_restarts
        self.problems: list[str] = []
        """What went wrong with which server (failed to start, died, restarted, timed out), in order."""
        self._routes: dict[str, tuple[_Server, str]] = {}
        self._group: TaskGroup | None = None
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        group = await self._stack.enter_async_context(anyio.create_task_group())
        self._group = group
        for server in self._servers.values():
            group.start_soon(self._supervise, server)
        with anyio.fail_after(self.start_timeout + 5):
            for server in self._servers.values():
                await server.up.wait()
        self._route()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._group is not None:
            self._group.cancel_scope.cancel()
        await self._stack.__aexit__(exc_type, exc, traceback)

    @property
    def running(self) -> list[str]:
        """Names of the servers that are up now."""
        return [server.name for server in self._servers.values() if server.client is not None]

    def _report(self, message: str) -> None:
        self.problems.append(message)
        logger.warning("%s", message)

    async def _transport(self, entry: McpServerEntry, stack: AsyncExitStack) -> Any:
        if entry.command is not None:
            return StdioServerParameters(command=entry.command, args=entry.args, env=entry.env or None, cwd=entry.cwd)
        assert entry.url is not None
        if not entry.headers:
            return entry.url
        # The transport does not close an HTTP client it is given; the stack does, after the session.
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=entry.headers, timeout=httpx2.Timeout(self.call_timeout))
        )
        return streamable_http_client(entry.url, http_client=http)

    async def _supervise(self, server: _Server) -> None:
        # The top of a task: any failure of a server (spawn, handshake, transport) is reported, never raised.
        while True:
            server.starts += 1
            server.down = anyio.Event()
            started = False
            with anyio.CancelScope(deadline=anyio.current_time() + self.start_timeout) as scope:
                try:
                    async with AsyncExitStack() as stack:
                        client = Client(await self._transport(server.entry, stack))
                        await stack.enter_async_context(client)
                        listing = await client.list_tools()
                        scope.deadline = math.inf
                        server.tools = [
                            ToolSpec(name=tool.name, description=tool.description or "", parameters=tool.input_schema)
                            for tool in listing.tools
                        ]
                        server.client, started = client, True
                        server.generation += 1
                        server.up.set()
                        await server.down.wait()
                except Exception as error:  # noqa: BLE001 - see above
                    what = "died" if started else "failed to start"
                    self._report(f"MCP server {server.name!r} {what}: {_describe(error)}")
                finally:
                    if server.client is not None:
                        server.client, server.up = None, anyio.Event()
            if scope.cancelled_caught:
                self._report(f"MCP server {server.name!r} did not start within {self.start_timeout:g} s")
            if server.generation == 0 or server.starts > self.max_restarts:
                break
            logger.info("restarting MCP server %r (start %d)", server.name, server.starts + 1)
        server.failed = f"MCP server {server.name!r} is left out after {server.starts} start(s)"
        self._report(server.failed)
        server.up.set()

    def _route(self) -> None:
        owners: dict[str, list[_Server]] = {}
        for server in self._servers.values():
            for spec in server.tools:
                owners.setdefault(spec.name, []).append(server)
        self._routes = {}
        for server in self._servers.values():
            for spec in server.tools:
                name = spec.name if len(owners[spec.name]) == 1 else f"{server.name}_{spec.name}"
                if valid_tool_name(name):
                    self._routes[name] = (server, spec.name)
                else:
                    self._report(f"tool {name!r} of MCP server {server.name!r} has a name models cannot call; skipped")

    async def list_tools(self) -> Sequence[ToolSpec]:
        """The tools of the servers that are up or may come back."""
        specs: list[ToolSpec] = []
        for name, (server, tool) in self._routes.items():
            if server.failed is None:
                spec = next(spec for spec in server.tools if spec.name == tool)
                specs.append(ToolSpec(name=name, description=spec.description, parameters=spec.parameters))
        return specs

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Call a tool; a dead server is restarted and the call sent once more. Never raises, never hangs."""
        route = self._routes.get(name)
        if route is None:
            return ToolResult(text=f"unknown tool {name!r}", is_error=True)
        server, tool = route
        for _ in range(2):
            with anyio.move_on_after(self.start_timeout):
                while server.client is None and server.failed is None:
                    await server.up.wait()
            client, generation = server.client, server.generation
            if server.failed is not None or client is None:
                return ToolResult(text=f"{server.failed or f'MCP server {server.name!r} is not up'}", is_error=True)
            try:
                with anyio.fail_after(self.call_timeout):
                    result = await client.call_tool(tool, arguments)
            except TimeoutError:
                self._report(f"MCP server {server.name!r} did not answer {tool!r} within {self.call_timeout:g} s")
                return ToolResult(text=f"{tool!r} did not answer within {self.call_timeout:g} s", is_error=True)
            except MCPError as error:
                if error.code != CONNECTION_CLOSED:
                    return ToolResult(text=f"{tool!r} failed: {error.message}", is_error=True)
                self._restart(server, generation)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as error:
                self._report(f"MCP server {server.name!r} connection broke during {tool!r}: {_describe(error)}")
                self._restart(server, generation)
            else:
                return ToolResult(text=_result_text(result), is_error=result.is_error)
        return ToolResult(
            text=f"MCP server {server.name!r} died during {tool!r} and again after a restart", is_error=True
        )

    def _restart(self, server: _Server, generation: int) -> None:
        if server.generation == generation and server.client is not None:
            self._report(f"MCP server {server.name!r} closed its connection; restarting it")
            server.client, server.up = None, anyio.Event()
            server.down.set()


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


@asynccontextmanager
async def agent_tools(
    servers: Mapping[str, McpServerEntry] | None,
    *,
    code_tool: bool,
    start_timeout: float = 30.0,
    call_timeout: float = 60.0,
    on_problem: Callable[[str], None] | None = None,
) -> AsyncIterator[Tools | None]:
    """The tools of one agent-mode run: the MCP servers (started now, stopped after) and the code tool, if asked.

    Yields ``None`` when neither is asked for. Servers that fail to start are passed to ``on_problem``; the run
    goes on with the rest.
    """
    parts: list[Tools] = []
    if code_tool:
        parts.append(CodeTool())
    async with AsyncExitStack() as stack:
        if servers:
            mcp = await stack.enter_async_context(
                McpTools(servers, start_timeout=start_timeout, call_timeout=call_timeout)
            )
            for problem in mcp.problems:
                if on_problem is not None:
                    on_problem(problem)
            parts.append(mcp)
        yield None if not parts else parts[0] if len(parts) == 1 else CombinedTools(*parts)
