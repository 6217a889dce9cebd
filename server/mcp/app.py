"""The MCP server: a factory whose lifespan owns the experience store."""

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
from mcp.server import MCPServer
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings

from debrief.server.backends.provider import ModelProvider
from debrief.server.embedding.embedder import Embedder
from debrief.server.learning.evaluations import EvaluationManager
from debrief.server.learning.outcomes import OutcomeBook
from debrief.server.learning.runs import BackendProvider, RunManager
from debrief.server.mcp.eval_tools import register_eval_tools
from debrief.server.mcp.hook_endpoint import serve_hook_endpoint
from debrief.server.mcp.info_tools import register_info_tools
from debrief.server.mcp.library_tools import register_library_tools
from debrief.server.mcp.outcome_tools import register_outcome_tools
from debrief.server.mcp.reflection_tools import register_reflection_tools
from debrief.server.mcp.run_tools import register_run_tools
from debrief.server.mcp.state import AppState
from debrief.server.mcp.surface import DebriefServer
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.version import package_version

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
Debrief is an experience memory that learns. Before a task, call retrieve_experiences with a description of
the task and apply the lessons that fit; after it, report how it went (record_outcome) so the library learns.
When record_outcome returns a reflection_task_id, you are asked to reflect: get_reflection_task, answer its
questions briefly, submit_reflection (or skip_reflection_task), then carry on with the user's work.
Experiences are one sentence each, grouped in namespaces (a domain or project), versioned, and can be rolled
back. Use the prompt 'use_experience_memory' for the full protocol."""


def create_server(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    http_auth: tuple[TokenVerifier, AuthSettings] | None = None,
    provider: BackendProvider | None = None,
    hook_endpoint: bool = False,
) -> MCPServer[AppState]:
    """Build the Debrief MCP server. The store opens when the server starts and closes when it stops.

    ``http_auth`` (see :func:`debrief.server.mcp.auth.http_auth`) makes the HTTP transport require bearer tokens.
    ``provider`` supplies chat backends for learning (default: the configured endpoint or the local model).
    ``hook_endpoint`` offers the loopback endpoint ``debrief hook`` commands ask (see ``hook_endpoint.py``).
    """

    @asynccontextmanager
    async def lifespan(_server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        if embedder is None:
            from debrief.server.embedding.embedder import make_embedder  # loads model weights only when serving

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
                evaluations = EvaluationManager(settings=settings, store=store, provider=backends, task_group=tasks)
                await evaluations.recover()
                try:
                    async with AsyncExitStack() as hooks:
                        if hook_endpoint:
                            await hooks.enter_async_context(
                                serve_hook_endpoint(settings=settings, store=store, outcomes=outcomes, task_group=tasks)
                            )
                        yield AppState(
                            settings=settings, store=store, runs=runs, outcomes=outcomes, evaluations=evaluations
                        )
                finally:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                        await store.settle()
                    tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                if owned is not None:
                    await owned.aclose()
                await store.aclose()

    server: MCPServer[AppState] = DebriefServer(
        "debrief",
        title="Debrief experience memory",
        instructions=INSTRUCTIONS,
        version=package_version(),
        lifespan=lifespan,
        token_verifier=http_auth[0] if http_auth is not None else None,
        auth=http_auth[1] if http_auth is not None else None,
    )
    register_library_tools(server, settings)
    register_run_tools(server)
    register_info_tools(server)
    register_eval_tools(server)
    register_outcome_tools(server, settings)
    register_reflection_tools(server, settings)
    return server
