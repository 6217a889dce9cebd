"""MCP tools that record outcomes of real work and explain where an experience came from."""

from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from debrief.server.learning.outcome_models import Explanation, OutcomePage, RecordOutcomeResult
from debrief.server.mcp.access import authorize, experience_namespace
from debrief.server.mcp.annotations import ADDITIVE, READ_ONLY
from debrief.server.mcp.state import AppState, tool_errors
from debrief.server.settings import Settings
from debrief.server.store.experience_store import flagged
from debrief.server.store.models import Change, Namespace

HISTORY_SCAN = 10_000
"""Most history records explain_experience reads."""


def register_outcome_tools(server: MCPServer[AppState], settings: Settings) -> None:
    """Register record_outcome, list_outcomes and explain_experience on ``server``."""
    limits = settings.limits

    @server.tool(annotations=ADDITIVE)
    async def record_outcome(
        task: Annotated[str, Field(min_length=1, max_length=limits.task_bytes, description="The task, as given.")],
        attempt: Annotated[
            str,
            Field(min_length=1, max_length=limits.task_bytes, description="A short account of what you did."),
        ],
        outcome: Annotated[
            Literal["success", "failure"] | Annotated[float, Field(ge=0, le=1)],
            Field(description="'success', 'failure', or a score in [0, 1]."),
        ],
        namespace: Namespace,
        ctx: Context[AppState],
        feedback: Annotated[
            str | None, Field(max_length=limits.note_bytes, description="What the user or a check said.")
        ] = None,
        experience_ids_used: Annotated[
            list[Annotated[str, Field(max_length=100)]] | None,
            Field(max_length=50, description="Ids of the retrieved experiences you applied."),
        ] = None,
        task_key: Annotated[
            str | None,
            Field(max_length=200, description="Same key = same task (else tasks are matched by similarity)."),
        ] = None,
        wait_seconds: Annotated[
            float,
            Field(
                ge=0, le=50, description="Seconds to wait for a reflection this outcome triggers (0 = return at once)."
            ),
        ] = 0,
    ) -> RecordOutcomeResult:
        """Report how an attempt at a task went, AFTER the task. This is how the library learns.

        The experiences you used get their helpful or harmful count raised. Outcomes on the same task form a
        group; when a group has both a success and a failure, Debrief reflects on what made the difference and
        updates the library in the background.
        """
        reward = 1.0 if outcome == "success" else 0.0 if outcome == "failure" else float(outcome)
        state = ctx.request_context.lifespan_context
        with tool_errors():
            authorize(namespace, "write")
            return await state.outcomes.record(
                namespace=namespace,
                task=task,
                attempt=attempt,
                reward=reward,
                feedback=feedback,
                experience_ids_used=experience_ids_used or [],
                task_key=task_key,
                wait=wait_seconds or None,
            )

    @server.tool(annotations=READ_ONLY)
    async def list_outcomes(
        namespace: Namespace,
        ctx: Context[AppState],
        cursor: Annotated[str | None, Field(max_length=20, description="next_cursor of the previous page.")] = None,
        limit: Annotated[int, Field(ge=1, le=limits.page_size, description="Page size.")] = 20,
        group_id: Annotated[str | None, Field(max_length=220, description="Only this group's outcomes.")] = None,
    ) -> OutcomePage:
        """List recorded outcomes of a namespace, newest first."""
        with tool_errors():
            authorize(namespace, "read")
            return await ctx.request_context.lifespan_context.outcomes.page(
                namespace, cursor=cursor, limit=limit, group_id=group_id
            )

    @server.tool(annotations=READ_ONLY)
    async def explain_experience(
        experience_id: Annotated[str, Field(min_length=3, max_length=100, description="The experience's id.")],
        ctx: Context[AppState],
    ) -> Explanation:
        """Show an experience's history and the evidence behind it: the outcomes or learning runs it came from."""
        state = ctx.request_context.lifespan_context
        with tool_errors():
            authorize(experience_namespace(experience_id), "read")
            experience = await state.store.get(experience_id)
            changes: list[Change] = []
            since = 0
            while since < HISTORY_SCAN:
                page = await state.store.history(experience.namespace, since_version=since, limit=100)
                if not page:
                    break
                changes.extend(
                    change for change in page if any(edit.experience_id == experience_id for edit in change.edits)
                )
                since = page[-1].version
            sources = [experience.source, *(change.source for change in changes)]
            outcome_ids = list(dict.fromkeys(key for source in sources for key in source.outcome_ids))
            runs = list(dict.fromkeys(source.run_id for source in sources if source.run_id is not None))
            outcomes = await state.outcomes.by_ids(experience.namespace, outcome_ids)
        return Explanation(
            experience=experience,
            changes=changes,
            outcomes=outcomes,
            learning_runs=runs,
            flagged=flagged(experience.counters),
        )
