"""MCP tools through which the client's own model reflects on recorded outcomes: get, submit or skip a task."""

from datetime import datetime
from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from debrief.learner.operations import Operation, OperationKind
from debrief.server.learning.outcomes import OutcomeBook
from debrief.server.learning.reflection_tasks import ALLOWED_OPERATIONS, SubmittedReflection
from debrief.server.mcp.access import authorize, current_grant
from debrief.server.mcp.state import AppState, tool_errors
from debrief.server.settings import Settings
from debrief.server.store.models import Namespace

READS = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)

TaskId = Annotated[str, Field(min_length=3, max_length=40, description="task_id from get_reflection_task.")]


class ReflectionTaskView(BaseModel):
    """A prepared reflection for you to answer."""

    task_id: str = Field(description="Pass to submit_reflection or skip_reflection_task.")
    namespace: str
    text: str = Field(description="The task: the attempts as quoted data, the library slice, the questions.")
    allowed_operations: list[OperationKind] = Field(description="Operation kinds submit_reflection accepts.")
    max_operations: int = Field(description="Most operations one submission may carry.")
    aliases: list[str] = Field(description="Experience aliases the text shows (G0, G1, ...), for modify/merge/delete.")
    outcome_ids: list[str] = Field(description="The recorded outcomes the task compares.")
    expires_at: datetime


class ReflectionTaskResult(BaseModel):
    """The oldest open reflection task, or none."""

    task: ReflectionTaskView | None = Field(description="Null when no reflection is waiting.")
    open_tasks: int = Field(description="Open tasks in scope, this one included.")


class SkippedReflection(BaseModel):
    """A task set aside: its outcomes are not offered again."""

    task_id: str
    status: str


async def _authorize_task(outcomes: OutcomeBook, task_id: str) -> None:
    """Writing to a task's namespace is needed to answer or skip it (unknown ids fail later, saying so)."""
    namespace = await outcomes.task_namespace(task_id)
    if namespace is not None:
        authorize(namespace, "write")


def register_reflection_tools(server: MCPServer[AppState], settings: Settings) -> None:
    """Register get_reflection_task, submit_reflection and skip_reflection_task on ``server``."""
    limits = settings.limits

    @server.tool(annotations=READS)
    async def get_reflection_task(
        ctx: Context[AppState],
        namespace: Annotated[Namespace | None, Field(description="Only this namespace's tasks.")] = None,
    ) -> ReflectionTaskResult:
        """Get the oldest open reflection task: recorded attempts that disagree, prepared for you to learn from.

        Read its text, answer its questions in a few sentences, then call submit_reflection. Keep it brief and
        go back to the user's work afterwards.
        """
        with tool_errors():
            if namespace is not None:
                authorize(namespace, "read")
            readable = current_grant()
            task, count = await ctx.request_context.lifespan_context.outcomes.oldest_task(
                namespace, lambda name: readable.allows(name, "read")
            )
        if task is None:
            return ReflectionTaskResult(task=None, open_tasks=0)
        view = ReflectionTaskView(
            task_id=task.task_id,
            namespace=task.namespace,
            text=task.text,
            allowed_operations=list(ALLOWED_OPERATIONS),
            max_operations=task.max_operations,
            aliases=list(task.aliases),
            outcome_ids=task.outcome_ids,
            expires_at=task.expires_at,
        )
        return ReflectionTaskResult(task=view, open_tasks=count)

    @server.tool(annotations=WRITES)
    async def submit_reflection(
        task_id: TaskId,
        operations: Annotated[
            list[Operation],
            Field(
                max_length=16,
                description='Library edits, experiences named by the aliases the task showed: {"op": "add", "text"}, '
                '{"op": "modify", "experience_id": "G0", "text"}, {"op": "merge", "experience_ids": ["G0", "G1"], '
                '"text"}, {"op": "delete", "experience_id": "G2"}. Each text one sentence of at most 32 words. '
                "An empty list: nothing general to learn.",
            ),
        ],
        ctx: Context[AppState],
        analysis: Annotated[
            str | None,
            Field(max_length=limits.note_bytes, description="Your short answers to the task's questions."),
        ] = None,
    ) -> SubmittedReflection:
        """Answer a reflection task: the edits are checked, then applied as one library version with provenance.

        A submission with a problem (too many words, an alias the task did not show, a closed task) is refused
        with what to fix, and nothing is written.
        """
        outcomes = ctx.request_context.lifespan_context.outcomes
        with tool_errors():
            await _authorize_task(outcomes, task_id)
            return await outcomes.submit_reflection(task_id, operations, analysis=analysis)

    @server.tool(annotations=WRITES)
    async def skip_reflection_task(
        task_id: TaskId,
        ctx: Context[AppState],
        reason: Annotated[
            str | None, Field(max_length=limits.note_bytes, description="Why (e.g. nothing general to learn).")
        ] = None,
    ) -> SkippedReflection:
        """Set a reflection task aside: its outcomes are not offered again (a newer outcome makes a new task)."""
        outcomes = ctx.request_context.lifespan_context.outcomes
        with tool_errors():
            await _authorize_task(outcomes, task_id)
            closed = await outcomes.skip_reflection(task_id, reason=reason)
        return SkippedReflection(task_id=closed.task_id, status=closed.status)
