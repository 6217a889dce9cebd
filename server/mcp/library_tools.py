"""MCP tools, resource and prompt for reading and curating the experience library."""

from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from debrief.learner.library import Provenance
from debrief.server.mcp.access import authorize, experience_namespace, visible
from debrief.server.mcp.annotations import ADDITIVE, READ_ONLY, RETRIEVAL, REWRITING
from debrief.server.mcp.guidance import library_text, prompt_block, protocol_text
from debrief.server.mcp.state import AppState, tool_errors
from debrief.server.mcp.tool_models import HistoryPage, ImportResult, NamespaceList, RetrieveResult
from debrief.server.settings import Settings
from debrief.server.store.experience_store import AddResult, ChangeResult, ExperiencePage
from debrief.server.store.models import Change, LibraryExport, Namespace

ExperienceId = Annotated[
    str,
    Field(
        min_length=3, max_length=100, description="Experience id as returned by other tools, e.g. 'math:3f9a2c1b7d4e'."
    ),
]


def _state(ctx: Context[AppState]) -> AppState:
    return ctx.request_context.lifespan_context


def _check_bytes(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value.encode()) > limit:
        raise ToolError(f"{name} is {len(value.encode())} bytes; the limit is {limit} bytes: shorten it")


def register_library_tools(server: MCPServer[AppState], settings: Settings) -> None:  # noqa: C901 - counts its nested tools
    """Register the library tools, the library resource and the protocol prompt on ``server``."""
    limits = settings.limits
    Task = Annotated[
        str,
        Field(
            min_length=1,
            max_length=limits.task_bytes,
            description="What you are about to do, in a sentence or a paragraph; experiences are matched to it.",
        ),
    ]
    Text = Annotated[
        str,
        Field(
            min_length=1,
            max_length=limits.experience_bytes,
            description="The lesson: one sentence of at most 32 words, starting with when it applies "
            "(e.g. 'When a proof needs an integer bound, check small cases first before generalizing').",
        ),
    ]
    Note = Annotated[
        str | None,
        Field(default=None, max_length=limits.note_bytes, description="Why this change is made (kept in history)."),
    ]
    Reason = Annotated[str, Field(min_length=1, max_length=limits.note_bytes, description="Why (kept in the history).")]
    PageLimit = Annotated[int, Field(ge=1, le=limits.page_size, description="Page size.")]

    @server.tool(annotations=RETRIEVAL)
    async def retrieve_experiences(
        task: Task,
        namespace: Namespace,
        ctx: Context[AppState],
        k: Annotated[int, Field(ge=1, le=limits.retrieve_k, description="How many experiences to return.")] = 5,
        min_score: Annotated[
            float | None, Field(ge=-1.0, le=2.0, description="Leave out experiences scoring below this.")
        ] = None,
    ) -> RetrieveResult:
        """Find the lessons from earlier work that are most relevant to a task. Call this BEFORE starting a task.

        Returns ranked experiences with scores and a prompt_block ready to paste into your instructions.
        """
        _check_bytes("task", task, limits.task_bytes)
        with tool_errors():
            authorize(namespace, "read")
            found = await _state(ctx).store.retrieve(namespace, task, k=k, min_score=min_score)
        return RetrieveResult(namespace=namespace, experiences=found, prompt_block=prompt_block(namespace, found))

    @server.tool(annotations=READ_ONLY)
    async def list_experiences(
        namespace: Namespace,
        ctx: Context[AppState],
        cursor: Annotated[str | None, Field(max_length=200, description="next_cursor from the previous page.")] = None,
        limit: PageLimit = 50,
        status: Annotated[
            Literal["active", "retired", "all"], Field(description="Which experiences to list.")
        ] = "active",
        flagged_only: Annotated[
            bool, Field(description="Only experiences that hurt more than they helped (flagged for review).")
        ] = False,
    ) -> ExperiencePage:
        """List a namespace's experiences, a page at a time, oldest first."""
        with tool_errors():
            authorize(namespace, "read")
            return await _state(ctx).store.list(
                namespace, cursor=cursor, limit=limit, status=status, flagged_only=flagged_only
            )

    @server.tool(annotations=ADDITIVE)
    async def add_experience(text: Text, namespace: Namespace, ctx: Context[AppState], note: Note = None) -> AddResult:
        """Store a new general lesson. If a near-identical one exists, that one is returned (created=false)."""
        with tool_errors():
            authorize(namespace, "write")
            return await _state(ctx).store.add(namespace, text, note=note, source=Provenance(kind="manual"))

    @server.tool(annotations=REWRITING)
    async def update_experience(
        experience_id: ExperienceId, text: Text, ctx: Context[AppState], note: Note = None
    ) -> ChangeResult:
        """Rewrite an experience's text; its id stays and the old text is kept in the history."""
        with tool_errors():
            authorize(experience_namespace(experience_id), "write")
            return await _state(ctx).store.update(experience_id, text, note=note)

    @server.tool(annotations=REWRITING)
    async def retire_experience(experience_id: ExperienceId, reason: Reason, ctx: Context[AppState]) -> ChangeResult:
        """Retire a wrong or harmful experience: it is no longer retrieved, but kept in the history."""
        with tool_errors():
            authorize(experience_namespace(experience_id), "write")
            return await _state(ctx).store.retire(experience_id, reason)

    @server.tool(annotations=READ_ONLY)
    async def list_namespaces(ctx: Context[AppState]) -> NamespaceList:
        """List every namespace with its library version and number of active and retired experiences."""
        with tool_errors():
            infos = await _state(ctx).store.namespaces()
            shown = set(visible(info.namespace for info in infos))
            return NamespaceList(namespaces=[info for info in infos if info.namespace in shown])

    @server.tool(annotations=READ_ONLY)
    async def library_history(
        namespace: Namespace,
        ctx: Context[AppState],
        since_version: Annotated[int, Field(ge=0, description="Only changes after this version.")] = 0,
        limit: PageLimit = 50,
    ) -> HistoryPage:
        """Show how a namespace's library changed, oldest first.

        Every add, update, retire, merge, import, rollback and learning step, with before/after text, reason
        and source.
        """
        store = _state(ctx).store
        with tool_errors():
            authorize(namespace, "read")
            changes = await store.history(namespace, since_version=since_version, limit=limit)
            current = await store.version(namespace)
        last = changes[-1].version if changes else since_version
        return HistoryPage(
            namespace=namespace,
            current_version=current,
            changes=changes,
            next_since_version=last if last < current else None,
        )

    @server.tool(annotations=REWRITING)
    async def rollback_library(
        namespace: Namespace,
        version: Annotated[int, Field(ge=0, description="The library version to return to (0 = empty).")],
        ctx: Context[AppState],
        reason: Note = None,
    ) -> Change:
        """Make the active library exactly what it was at an earlier version.

        Recorded as a new change, so it can itself be rolled back.
        """
        with tool_errors():
            authorize(namespace, "write")
            return await _state(ctx).store.rollback(
                namespace, version, reason=reason or f"rollback to version {version}"
            )

    @server.tool(annotations=READ_ONLY)
    async def export_library(namespace: Namespace, ctx: Context[AppState]) -> LibraryExport:
        """Export a namespace's library (active and retired experiences) as versioned JSON.

        For backup or sharing; import_library reads it back.
        """
        with tool_errors():
            authorize(namespace, "read")
            return await _state(ctx).store.export(namespace)

    @server.tool(annotations=REWRITING)
    async def import_library(
        data: Annotated[LibraryExport, Field(description="A library as produced by export_library.")],
        namespace: Namespace,
        ctx: Context[AppState],
        mode: Annotated[
            Literal["merge", "replace"],
            Field(description="'merge' adds what is new; 'replace' makes the active library exactly the import."),
        ] = "merge",
    ) -> ImportResult:
        """Import experiences from an export into a namespace, as one recorded change."""
        if len(data.experiences) > limits.import_items:
            raise ToolError(
                f"the import has {len(data.experiences)} experiences; at most {limits.import_items} are accepted "
                "in one call: split it"
            )
        store = _state(ctx).store
        with tool_errors():
            authorize(namespace, "write")
            change = await store.import_library(namespace, data, mode=mode)
            version = change.version if change is not None else await store.version(namespace)
        return ImportResult(namespace=namespace, mode=mode, version=version, change=change)

    @server.resource(
        "experiences://{namespace}",
        name="experience_library",
        description="A namespace's active experiences as plain text, ready for a system prompt.",
        mime_type="text/plain",
    )
    async def experience_library(namespace: str, ctx: Context[AppState]) -> str:
        store = _state(ctx).store
        with tool_errors():
            authorize(namespace, "read")
            items = await store.active(namespace)
            version = await store.version(namespace)
        return library_text(namespace, version, items)

    @server.prompt(
        name="use_experience_memory",
        title="Use Debrief's experience memory",
        description="Teaches the protocol: retrieve lessons before a task, apply what fits, record the outcome.",
    )
    def use_experience_memory(namespace: str = "default") -> str:
        return protocol_text(namespace)
