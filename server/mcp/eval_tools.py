"""MCP tools that start, watch and cancel evaluations of a library (paired, with intervals and controls)."""

from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field, ValidationError

from debrief.learner.controls import ControlName
from debrief.server.errors import InvalidInput
from debrief.server.learning.evaluations import EvaluationManager, EvaluationRecord, EvaluationRequest
from debrief.server.learning.run_models import ProblemIn
from debrief.server.mcp.access import authorize, visible
from debrief.server.mcp.annotations import READ_ONLY, STARTS_RUN, STOPS_RUN
from debrief.server.mcp.state import AppState, tool_errors
from debrief.server.store.models import Namespace

EvaluationId = Annotated[
    str, Field(min_length=6, max_length=40, description="Evaluation id from start_evaluation, e.g. eval-1a2b3c4d5e6f.")
]


class EvaluationList(BaseModel):
    """Evaluations, newest first."""

    evaluations: list[EvaluationRecord]


def _evaluations(ctx: Context[AppState]) -> EvaluationManager:
    return ctx.request_context.lifespan_context.evaluations


def register_eval_tools(server: MCPServer[AppState]) -> None:
    """Register the evaluation tools on ``server``."""

    @server.tool(annotations=STARTS_RUN)
    async def start_evaluation(
        namespace: Namespace,
        ctx: Context[AppState],
        problems: Annotated[
            list[ProblemIn] | None,
            Field(max_length=1000, description="Problems with ground-truth answers (or give data_path)."),
        ] = None,
        data_path: Annotated[
            str | None, Field(max_length=4096, description="A JSONL file in an allowed dataset directory.")
        ] = None,
        verifier: Annotated[
            str, Field(max_length=200, description="math | exact | numeric[:tol] | regex[:pattern] | judge")
        ] = "math",
        samples: Annotated[int, Field(ge=1, le=32, description="Attempts per problem and arm (K).")] = 4,
        injection: Annotated[
            Literal["all", "retrieve"], Field(description="Whole library, or the top k retrieved per problem.")
        ] = "all",
        k: Annotated[int, Field(ge=1, le=50, description="Experiences retrieved per problem (retrieve).")] = 5,
        controls: Annotated[
            list[ControlName] | None,
            Field(
                max_length=4,
                description="Controls to beat: whole or retrieved (the other injection), random (a library of the "
                "same size), tips (the model's own tips written without attempts).",
            ),
        ] = None,
        random_from: Annotated[
            Namespace | None, Field(description="Namespace the random control draws from (default: shuffled words).")
        ] = None,
        per_experience: Annotated[bool, Field(description="Also measure each experience by leaving it out.")] = False,
        max_problems_per_experience: Annotated[
            int | None, Field(ge=1, le=1000, description="Bound on problems per experience when leaving it out.")
        ] = None,
        temperature: Annotated[float, Field(ge=0, le=2, description="Sampling temperature (paper: 0.3).")] = 0.3,
        top_p: Annotated[float, Field(gt=0, le=1, description="Nucleus sampling (paper: 0.95).")] = 0.95,
        seed: Annotated[int, Field(ge=0, le=2**31, description="Seed of sampling and bootstrap.")] = 0,
        model: Annotated[str | None, Field(max_length=200, description="A model from the allow-list.")] = None,
    ) -> EvaluationRecord:
        """Evaluate a namespace's library in the background, paired: without vs with it on the same seeds.

        Every problem is attempted K times without and K times with the library; the record gives Mean@K, Pass@K,
        their differences with 95% intervals, the controls asked for and per-experience effects. Returns at once
        with the evaluation id; call wait_evaluation for progress, get_evaluation for the figures.
        Nothing in the library changes.
        """
        with tool_errors():
            try:
                request = EvaluationRequest(
                    namespace=namespace,
                    problems=problems,
                    data_path=data_path,
                    verifier=verifier,
                    samples=samples,
                    injection=injection,
                    k=k,
                    controls=controls or [],
                    random_from=random_from,
                    per_experience=per_experience,
                    max_problems_per_experience=max_problems_per_experience,
                    temperature=temperature,
                    top_p=top_p,
                    seed=seed,
                    model=model,
                )
            except ValidationError as error:
                found = "; ".join(str(item["msg"]) for item in error.errors())
                raise InvalidInput(f"the evaluation request is not valid: {found}") from None
            authorize(namespace, "write")  # it spends the model budget: not for read-only tokens
            return await _evaluations(ctx).start(request)

    @server.tool(annotations=READ_ONLY)
    async def get_evaluation(evaluation_id: EvaluationId, ctx: Context[AppState]) -> EvaluationRecord:
        """Status, progress and, once finished, the figures and plain-sentence summary of an evaluation."""
        with tool_errors():
            record = await _evaluations(ctx).get(evaluation_id)
            authorize(record.namespace, "read")
            return record

    @server.tool(annotations=READ_ONLY)
    async def wait_evaluation(
        evaluation_id: EvaluationId,
        ctx: Context[AppState],
        timeout_seconds: Annotated[float, Field(gt=0, le=50, description="Longest wait (clients cancel ~60 s).")] = 30,
    ) -> EvaluationRecord:
        """Wait for an evaluation to finish, sending progress notifications meanwhile; returns its record.

        Returns after timeout_seconds even if it is still going: call again to keep watching.
        """

        async def report(record: EvaluationRecord) -> None:
            progress = record.progress
            total = float(progress.attempts_total) if progress.attempts_total else None
            await ctx.report_progress(float(progress.attempts_done), total, f"{record.status}: {progress.message}")

        with tool_errors():
            authorize((await _evaluations(ctx).get(evaluation_id)).namespace, "read")
            return await _evaluations(ctx).wait(evaluation_id, timeout=timeout_seconds, on_progress=report)

    @server.tool(annotations=STOPS_RUN)
    async def cancel_evaluation(evaluation_id: EvaluationId, ctx: Context[AppState]) -> EvaluationRecord:
        """Stop an evaluation at once; the library is untouched either way."""
        with tool_errors():
            authorize((await _evaluations(ctx).get(evaluation_id)).namespace, "write")
            return await _evaluations(ctx).cancel(evaluation_id)

    @server.tool(annotations=READ_ONLY)
    async def list_evaluations(
        ctx: Context[AppState],
        namespace: Annotated[
            Namespace | None, Field(description="Only evaluations of this namespace (default: all).")
        ] = None,
    ) -> EvaluationList:
        """List evaluations, newest first, optionally of one namespace."""
        with tool_errors():
            if namespace is not None:
                authorize(namespace, "read")
            found = await _evaluations(ctx).evaluations(namespace)
            shown = set(visible({record.namespace for record in found}))
            return EvaluationList(evaluations=[record for record in found if record.namespace in shown])
