"""The MCP server: a factory whose lifespan owns the experience store."""

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from mcp.server import MCPServer
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver.exceptions import ToolError

from server.embedder import Embedder
from server.errors import DebriefError
from server.settings import Settings
from server.store import ExperienceStore

if TYPE_CHECKING:
    from server.outcomes import OutcomeBook
    from server.runs import BackendProvider, RunManager

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
Debrief is an experience memory that learns. Before a task, call retrieve_experiences with a description of
the task and apply the lessons that fit; after it, report how it went (record_outcome) so the library learns.
Experiences are one sentence each, grouped in namespaces (a domain or project), versioned, and can be rolled
back. Use the prompt 'use_experience_memory' for the full protocol."""


@dataclass(frozen=True, kw_only=True)
class AppState:
    """What every request handler can reach: settings and the open store."""

    settings: Settings
    store: ExperienceStore
    runs: "RunManager"
    outcomes: "OutcomeBook"


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn domain errors into ToolError so their message reaches the client."""
    try:
        yield
    except DebriefError as error:
        raise ToolError(str(error)) from error


def create_server(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    http_auth: tuple[TokenVerifier, AuthSettings] | None = None,
    provider: "BackendProvider | None" = None,
) -> MCPServer[AppState]:
    """Build the Debrief MCP server. The store opens when the server starts and closes when it stops.

    ``http_auth`` (see :func:`server.auth.http_auth`) makes the HTTP transport require bearer tokens.
    ``provider`` supplies chat backends for learning (default: the configured endpoint or the local model).
    """
    from server.library_tools import register_library_tools  # noqa: PLC0415 - keeps the import graph one-way
    from server.model_provider import ModelProvider  # noqa: PLC0415
    from server.outcome_tools import register_outcome_tools  # noqa: PLC0415
    from server.outcomes import OutcomeBook  # noqa: PLC0415
    from server.run_tools import register_run_tools  # noqa: PLC0415
    from server.runs import RunManager  # noqa: PLC0415

    @asynccontextmanager
    async def lifespan(_server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        if embedder is None:
            from server.embedder import make_embedder  # noqa: PLC0415 - loads model weights only when serving

            chosen = make_embedder(settings)
        else:
            chosen = embedder
        store = await ExperienceStore.open(settings, chosen)
        owned = ModelProvider(settings) if provider is None else None
        try:
            async with anyio.create_task_group() as tasks:
                store.count_in_background(tasks)
                backends = provider or owned
                assert backends is not None
                runs = RunManager(settings=settings, store=store, provider=backends, task_group=tasks)
                outcomes = OutcomeBook(
                    settings=settings, store=store, embedder=chosen, provider=backends, task_group=tasks
                )
                await runs.recover()
                try:
                    yield AppState(settings=settings, store=store, runs=runs, outcomes=outcomes)
                finally:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                        await store.settle()
                    tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                if owned is not None:
                    await owned.aclose()
                await store.aclose()

    server: MCPServer[AppState] = MCPServer(
        "debrief",
        title="Debrief experience memory",
        instructions=INSTRUCTIONS,
        version=_version(),
        lifespan=lifespan,
        token_verifier=http_auth[0] if http_auth is not None else None,
        auth=http_auth[1] if http_auth is not None else None,
    )
    register_library_tools(server, settings)
    register_run_tools(server)
    register_outcome_tools(server, settings)
    return server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("debrief-mcp")
    except PackageNotFoundError:
        return "0"
