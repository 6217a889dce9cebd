"""MCP tools that start, watch, cancel and resume learning runs."""

from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field, ValidationError

from debrief.server.errors import InvalidInput
from debrief.server.learning.run_models import ProblemIn, RunRecord, RunRequest
from debrief.server.learning.runs import RunManager
from debrief.server.mcp.access import authorize, visible
from debrief.server.mcp.annotations import READ_ONLY, STARTS_RUN, STOPS_RUN
from debrief.server.mcp.state import AppState, tool_errors
from debrief.server.store.models import Namespace

RunId = Annotated[str, Field(min_length=5, max_length=40, description="Run id from start_learning_run.")]


class RunList(BaseModel):
    """Learning runs, newest first."""

    runs: list[RunRecord]


def _runs(ctx: Context[AppState]) -> RunManager:
    return ctx.request_context.lifespan_context.runs


def register_run_tools(server: MCPServer[AppState]) -> None:
    """Register the learning-run tools on ``server``."""

    @server.tool(annotations=STARTS_RUN)
    async def start_learning_run(
        namespace: Namespace,
        ctx: Context[AppState],
        problems: Annotated[
            list[ProblemIn] | None,
            Field(max_length=1000, description="Training problems with ground-truth answers (or give data_path)."),
        ] = None,
        data_path: Annotated[
            str | None,
            Field(
                max_length=4096,
                description="A JSONL file in an allowed dataset directory (get_server_info lists them).",
            ),
        ] = None,
        verifier: Annotated[
            str, Field(max_length=200, description="math | exact | numeric[:tol] | regex[:pattern] | judge")
        ] = "math",
        epochs: Annotated[int, Field(ge=1, le=10, description="Passes over the training problems.")] = 1,
        group_size: Annotated[int, Field(ge=1, le=16, description="Attempts per problem (G).")] = 5,
        batch_size: Annotated[int, Field(ge=1, le=500, description="Problems per learning step.")] = 20,
        budget_tokens: Annotated[int | None, Field(ge=1, description="Token budget (default: server's).")] = None,
        budget_usd: Annotated[float | None, Field(gt=0, allow_inf_nan=False, description="Dollar budget.")] = None,
        model: Annotated[
            str | None, Field(max_length=200, description="A model from the allow-list (get_server_info lists it).")
        ] = None,
        ground_truth: Annotated[bool, Field(description="False: the model judges attempts itself.")] = True,
        validation_problems: Annotated[
            list[ProblemIn] | None,
            Field(max_length=1000, description="Held-out problems: each planned edit is validated on them first."),
        ] = None,
        validation_fraction: Annotated[
            float | None, Field(gt=0, lt=1, description="Or hold out this share of the problems for validation.")
        ] = None,
        validation_samples: Annotated[int, Field(ge=1, le=16, description="Attempts per validation problem.")] = 2,
        validation_margin: Annotated[
            float, Field(ge=0, le=1, description="Keep an edit if validation Mean@K drops by at most this.")
        ] = 0.0,
        keep_best: Annotated[bool, Field(description="End on the best library by validation, not the last.")] = False,
        agent: Annotated[
            bool, Field(description="Attempts call the tools the server's operator configured, until they answer.")
        ] = False,
        max_turns: Annotated[int | None, Field(ge=1, le=100, description="Agent mode: replies per attempt.")] = None,
        max_tokens: Annotated[
            int | None, Field(ge=16, le=131_072, description="Completion cap per attempt (default 16,384).")
        ] = None,
        top_p: Annotated[float | None, Field(gt=0, le=1, description="Nucleus sampling of attempts.")] = None,
        temperature: Annotated[
            float | None, Field(ge=0, le=2, description="Sampling temperature of attempts (default 0.7).")
        ] = None,
        placement: Annotated[
            Literal["system", "user"] | None,
            Field(description="Experiences in the system prompt (default) or after the problem in the user turn."),
        ] = None,
        max_operations: Annotated[
            int | None, Field(ge=1, le=5, description="Most library edits one group may propose (default 1).")
        ] = None,
        instructions: Annotated[
            str | None, Field(min_length=1, max_length=4000, description="Instructions to the policy.")
        ] = None,
    ) -> RunRecord:
        """Start learning experiences from training problems (Training-Free GRPO) in the background.

        Returns at once with the run id; poll get_learning_run, or call wait_learning_run for progress. The run
        writes new library versions to the namespace as it goes.
        """
        with tool_errors():
            try:
                request = RunRequest(
                    namespace=namespace,
                    problems=problems,
                    data_path=data_path,
                    verifier=verifier,
                    epochs=epochs,
                    group_size=group_size,
                    batch_size=batch_size,
                    budget_tokens=budget_tokens,
                    budget_usd=budget_usd,
                    model=model,
                    ground_truth=ground_truth,
                    validation_problems=validation_problems,
                    validation_fraction=validation_fraction,
                    validation_samples=validation_samples,
                    validation_margin=validation_margin,
                    keep_best=keep_best,
                    agent=agent,
                    max_turns=max_turns,
                    max_tokens=max_tokens,
                    top_p=top_p,
                    temperature=temperature,
                    placement=placement,
                    max_operations=max_operations,
                    instructions=instructions,
                )
            except ValidationError as error:
                problems_found = "; ".join(str(item["msg"]) for item in error.errors())
                raise InvalidInput(f"the run request is not valid: {problems_found}") from None
            authorize(namespace, "write")
            return await _runs(ctx).start(request)

    @server.tool(annotations=READ_ONLY)
    async def get_learning_run(run_id: RunId, ctx: Context[AppState]) -> RunRecord:
        """Status, progress, per-step records, tokens, cost and library versions of a learning run."""
        with tool_errors():
            record = await _runs(ctx).get(run_id)
            authorize(record.namespace, "read")
            return record

    @server.tool(annotations=READ_ONLY)
    async def wait_learning_run(
        run_id: RunId,
        ctx: Context[AppState],
        timeout_seconds: Annotated[float, Field(gt=0, le=50, description="Longest wait (clients cancel ~60 s).")] = 30,
    ) -> RunRecord:
        """Wait up to timeout_seconds (default 30, at most 50) for a learning run to finish; returns its record.

        Sends a progress notification at every change and at least every 10 s, so clients keep the call alive.
        Returns after timeout_seconds even if the run is still going (desktop clients cancel calls at about
        60 s): call again to keep watching.
        """

        async def report(record: RunRecord) -> None:
            progress = record.progress
            total = float(progress.attempts_total) if progress.attempts_total else None
            message = f"{record.status}: step {progress.step}/{progress.total_steps} {progress.message}".strip()
            await ctx.report_progress(float(progress.attempts_done), total, message)

        with tool_errors():
            authorize((await _runs(ctx).get(run_id)).namespace, "read")
            return await _runs(ctx).wait(run_id, timeout=timeout_seconds, on_progress=report)

    @server.tool(annotations=STOPS_RUN)
    async def cancel_learning_run(run_id: RunId, ctx: Context[AppState]) -> RunRecord:
        """Stop a learning run after its current step; the library stays at a consistent version."""
        with tool_errors():
            authorize((await _runs(ctx).get(run_id)).namespace, "write")
            return await _runs(ctx).cancel(run_id)

    @server.tool(annotations=STARTS_RUN)
    async def resume_learning_run(
        run_id: RunId,
        ctx: Context[AppState],
        budget_tokens: Annotated[
            int | None, Field(ge=1, description="New token budget for the whole run (e.g. after a budget stop).")
        ] = None,
        budget_usd: Annotated[
            float | None, Field(gt=0, allow_inf_nan=False, description="New dollar budget for the whole run.")
        ] = None,
    ) -> RunRecord:
        """Continue an interrupted, failed, cancelled or budget-stopped run from its last finished step."""
        with tool_errors():
            authorize((await _runs(ctx).get(run_id)).namespace, "write")
            return await _runs(ctx).resume(run_id, budget_tokens=budget_tokens, budget_usd=budget_usd)

    @server.tool(annotations=READ_ONLY)
    async def list_learning_runs(
        ctx: Context[AppState],
        namespace: Annotated[Namespace | None, Field(description="Only runs of this namespace (default: all).")] = None,
    ) -> RunList:
        """List learning runs, newest first, optionally of one namespace."""
        with tool_errors():
            if namespace is not None:
                authorize(namespace, "read")
            runs = await _runs(ctx).runs(namespace)
            shown = set(visible({record.namespace for record in runs}))
            return RunList(runs=[record for record in runs if record.namespace in shown])
