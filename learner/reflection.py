"""Summary, group advantage and consolidation: the stages that turn graded attempts into library edits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from debrief.learner.aliases import AliasMap, alias_operation, resolve_operation
from debrief.learner.backend import ChatRequest
from debrief.learner.calls import Caller
from debrief.learner.config import RunConfig
from debrief.learner.datasets import Problem
from debrief.learner.operations import DeleteOperation, Operation
from debrief.learner.prompts import (
    Grade,
    advantage_messages,
    consolidation_messages,
    cut_to_budget,
    judge_messages,
    shorten_objection,
    summary_messages,
)
from debrief.learner.records import Proposal, RejectedRecord
from debrief.learner.structured import ask_structured
from debrief.learner.words import MAX_EXPERIENCE_WORDS, count_words


class AttemptSummary(BaseModel):
    """The summary of one attempt."""

    summary: str = Field(
        description="The steps the attempt took, the experiences (by id) it used, and where it went wrong."
    )


class GroupAdvantage(BaseModel):
    """What separated the better attempts from the worse, and the library edits that would teach it."""

    analysis: str = Field(description="What the better attempts did that the worse ones did not.")
    operations: list[Operation] = Field(
        default_factory=list, description="Proposed library operations (ids as shown, e.g. G3); may be empty."
    )


class ConsolidationPlan(BaseModel):
    """The final edits of one batch."""

    reasoning: str = Field(description="Which proposals were merged, dropped or kept, and why.")
    operations: list[Operation] = Field(
        default_factory=list, description="Operations to apply (ids as shown, e.g. G3); experiences not named are kept."
    )


class JudgeVerdict(BaseModel):
    """A judge's grade of one response."""

    reasoning: str = Field(description="Brief reasons for the verdict.")
    verdict: Literal["correct", "incorrect"] = Field(description="Whether the final answer is correct.")


@dataclass(frozen=True, kw_only=True)
class ReflectSettings:
    """The run settings reflection needs."""

    temperature: float
    max_operations: int
    trajectory_token_budget: int
    max_reasks: int

    @classmethod
    def of(cls, config: RunConfig) -> ReflectSettings:
        """The reflection settings of ``config``."""
        return cls(
            temperature=config.extraction_temperature,
            max_operations=config.max_operations,
            trajectory_token_budget=config.trajectory_token_budget,
            max_reasks=config.max_reasks,
        )


def _over_cap(operations: Sequence[Operation]) -> list[str]:
    return [
        operation.text
        for operation in operations
        if not isinstance(operation, DeleteOperation) and count_words(operation.text) > MAX_EXPERIENCE_WORDS
    ]


def _cap_check(value: GroupAdvantage | ConsolidationPlan) -> str | None:
    over = _over_cap(value.operations)
    return shorten_objection(over) if over else None


def _cap_problem(operation: Operation) -> str | None:
    if isinstance(operation, DeleteOperation):
        return None
    words = count_words(operation.text)
    if words > MAX_EXPERIENCE_WORDS:
        return f"{words} words, over the {MAX_EXPERIENCE_WORDS}-word cap after one request to shorten"
    return None


def _resolve_checked(
    operation: Operation,
    aliases: AliasMap,
    *,
    stage: Literal["advantage", "consolidation"],
    problem_id: str | None,
) -> Operation | RejectedRecord:
    """The operation with stable ids, or why it is rejected: over the word cap, or naming an unknown alias."""
    cap = _cap_problem(operation)
    resolved = resolve_operation(operation, aliases)
    if cap is None and not isinstance(resolved, str):
        return resolved
    return RejectedRecord(
        operation=operation,
        kind="over_word_cap" if cap is not None else "unknown_experience",
        reason=cap if cap is not None else str(resolved),
        stage=stage,
        problem_id=problem_id,
    )


async def summarize(
    caller: Caller,
    settings: ReflectSettings,
    *,
    aliases: AliasMap,
    problem: Problem,
    attempt: str,
    grade: Grade | None,
    show_answer: bool,
) -> str:
    """Summarize one attempt (cut to the trajectory budget)."""
    request = ChatRequest(
        role="reflect",
        stage="summary",
        temperature=settings.temperature,
        messages=summary_messages(
            experiences=aliases.render(),
            question=problem.question,
            answer=problem.answer if show_answer else None,
            attempt=cut_to_budget(attempt, settings.trajectory_token_budget),
            grade=grade,
        ),
    )
    reply = await ask_structured(caller, request, AttemptSummary, max_reasks=settings.max_reasks)
    return reply.summary


async def group_advantage(
    caller: Caller,
    settings: ReflectSettings,
    *,
    aliases: AliasMap,
    problem: Problem,
    summaries: Sequence[tuple[str, Grade | None]],
    show_answer: bool,
) -> tuple[list[Proposal], list[RejectedRecord]]:
    """Ask one group for at most ``max_operations`` proposals; return them with stable ids, and the rejects."""
    request = ChatRequest(
        role="reflect",
        stage="advantage",
        temperature=settings.temperature,
        messages=advantage_messages(
            experiences=aliases.render(),
            question=problem.question,
            answer=problem.answer if show_answer else None,
            summaries=summaries,
            max_operations=settings.max_operations,
        ),
    )
    reply = await ask_structured(caller, request, GroupAdvantage, max_reasks=settings.max_reasks, check=_cap_check)
    proposals: list[Proposal] = []
    rejected: list[RejectedRecord] = []
    for number, operation in enumerate(reply.operations):
        if number >= settings.max_operations:
            rejected.append(
                RejectedRecord(
                    operation=operation,
                    kind="beyond_max_operations",
                    reason=f"a group may propose at most {settings.max_operations} operation(s)",
                    stage="advantage",
                    problem_id=problem.problem_id,
                )
            )
            continue
        checked = _resolve_checked(operation, aliases, stage="advantage", problem_id=problem.problem_id)
        if isinstance(checked, RejectedRecord):
            rejected.append(checked)
            continue
        proposals.append(Proposal(operation=checked, problem_id=problem.problem_id))
    return proposals, rejected


async def consolidate(
    caller: Caller, settings: ReflectSettings, *, aliases: AliasMap, proposals: Sequence[Proposal]
) -> tuple[list[Operation], list[RejectedRecord]]:
    """Turn a batch's proposals into the final plan (stable ids) for the library in ``aliases``."""
    shown: list[Operation] = []
    rejected: list[RejectedRecord] = []
    for proposal in proposals:
        aliased = alias_operation(proposal.operation, aliases)
        if isinstance(aliased, str):
            rejected.append(
                RejectedRecord(
                    operation=proposal.operation,
                    kind="stale",
                    reason=aliased,
                    stage="consolidation",
                    problem_id=proposal.problem_id,
                )
            )
        else:
            shown.append(aliased)
    if not shown:
        return [], rejected
    request = ChatRequest(
        role="reflect",
        stage="consolidation",
        temperature=settings.temperature,
        messages=consolidation_messages(experiences=aliases.render(), proposals=shown),
    )
    plan = await ask_structured(caller, request, ConsolidationPlan, max_reasks=settings.max_reasks, check=_cap_check)
    if not plan.operations:
        return [], rejected
    operations: list[Operation] = []
    for operation in plan.operations:
        checked = _resolve_checked(operation, aliases, stage="consolidation", problem_id=None)
        if isinstance(checked, RejectedRecord):
            rejected.append(checked)
            continue
        operations.append(checked)
    return operations, rejected


async def judge_response(caller: Caller, settings: ReflectSettings, problem: Problem, response: str) -> bool:
    """Ask the judge model whether ``response`` is correct."""
    request = ChatRequest(
        role="judge",
        stage="judge",
        temperature=settings.temperature,
        messages=judge_messages(question=problem.question, answer=problem.answer, response=response),
    )
    verdict = await ask_structured(caller, request, JudgeVerdict, max_reasks=settings.max_reasks)
    return verdict.verdict == "correct"
