"""Reflection on one group of attempts recorded from real work, when clients report outcomes that disagree.

No rollout and no ground truth: the attempts are what clients did, and their grades (and any feedback) are the
signal. The stages are those of a learning step: a summary per attempt, the group advantage with the library in
view, consolidation, and one library change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from pydantic import BaseModel, Field

from debrief.learner.accounting import TokenCount
from debrief.learner.aliases import AliasMap
from debrief.learner.backend import STAGES, Backends
from debrief.learner.budget import RequestBudget
from debrief.learner.calls import Caller, RetryPolicy
from debrief.learner.config import RunConfig
from debrief.learner.consolidation import consolidate_and_apply
from debrief.learner.datasets import Problem, problem_key
from debrief.learner.errors import ConfigError, LearnerError, describe
from debrief.learner.library import Library, Provenance
from debrief.learner.prompts import Grade, cut_to_budget
from debrief.learner.records import AppliedRecord, Proposal, RejectedRecord
from debrief.learner.reflection import ReflectSettings, group_advantage, summarize
from debrief.learner.rewards import SUCCESS_REWARD


@dataclass(frozen=True, kw_only=True)
class RecordedAttempt:
    """One attempt at a task as a client reported it."""

    attempt_id: str
    """Stable key of the attempt, e.g. the outcome id."""
    account: str
    """The client's short account of what it did."""
    reward: float
    """In [0, 1]: 1 is success, 0 failure."""
    feedback: str | None = None
    """What the user or a checker said about it."""


class ReflectionReport(BaseModel):
    """What reflecting on one group of recorded attempts did."""

    problem_id: str = Field(description="Key of the task in proposals and rejections (a hash of its text).")
    proposals: list[Proposal] = Field(description="Operations the group advantage proposed that passed the checks.")
    applied: list[AppliedRecord] = Field(description="Operations the library applied.")
    rejected: list[RejectedRecord] = Field(description="Operations not applied, with reasons.")
    version: int | None = Field(description="Library version after the change; None when nothing was applied.")
    tokens: TokenCount = Field(description="Tokens and cost of all calls.")
    tokens_by_stage: dict[str, TokenCount] = Field(description="Tokens and cost per stage.")
    error: str | None = Field(
        default=None, description="Why reflection stopped (backend error, invalid replies); nothing was applied."
    )


def _validate(task: str, attempts: Sequence[RecordedAttempt]) -> None:
    if not task.strip():
        raise ConfigError("the task is empty; pass the text of the task the attempts were made at")
    if len(attempts) < 2:
        raise ConfigError(f"reflection compares attempts: got {len(attempts)}, need at least 2")
    ids = [attempt.attempt_id for attempt in attempts]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"attempt ids must be unique, got {ids!r}")
    for attempt in attempts:
        if not 0.0 <= attempt.reward <= 1.0:
            raise ConfigError(f"attempt {attempt.attempt_id!r} has reward {attempt.reward!r}; rewards are in [0, 1]")
        if not attempt.account.strip():
            raise ConfigError(f"attempt {attempt.attempt_id!r} has an empty account")
    rewards = [attempt.reward for attempt in attempts]
    if not (any(r >= SUCCESS_REWARD for r in rewards) and any(r < SUCCESS_REWARD for r in rewards)):
        raise ConfigError(
            f"the attempts are not mixed (rewards {rewards!r}): reflection needs at least one success "
            f"(reward >= {SUCCESS_REWARD}) and one failure"
        )


async def reflect_on_attempts(
    *,
    task: str,
    attempts: Sequence[RecordedAttempt],
    backends: Backends,
    library: Library,
    provenance: Provenance,
    reason: str,
    config: RunConfig | None = None,
) -> ReflectionReport:
    """Learn from one mixed group of recorded attempts: at most one ``library.apply`` with ``provenance``.

    ``config`` supplies max_operations, extraction_temperature, max_reasks, trajectory_token_budget, concurrency
    and prices; its other fields are not used. A backend error or replies still invalid after the re-asks end
    the reflection with ``error`` set and the library untouched.

    Raises:
        ConfigError: fewer than two attempts, not both a success and a failure, or otherwise bad input.
    """
    _validate(task, attempts)
    config = config or RunConfig()
    settings = ReflectSettings.of(config)
    # The config's budget binds every request (the server passes what it reserved of the daily cap).
    budget = RequestBudget(tokens=config.budget_tokens, usd=config.budget_usd)
    caller = Caller(
        backends,
        concurrency=config.concurrency,
        prices=config.prices,
        retry=RetryPolicy.of(config),
        budget=budget if budget.limited else None,
    )
    problem = Problem(problem_id=problem_key(task), question=task)
    aliases = AliasMap.of(await library.entries())
    grades = [
        Grade.of_reward(
            attempt.reward,
            feedback=cut_to_budget(attempt.feedback, config.trajectory_token_budget) if attempt.feedback else None,
        )
        for attempt in attempts
    ]
    texts: dict[int, str] = {}

    async def one(index: int) -> None:
        texts[index] = (
            await summarize(
                caller,
                settings,
                aliases=aliases,
                problem=problem,
                attempt=attempts[index].account,
                grade=grades[index],
                show_answer=False,
            )
        ).text

    proposals: list[Proposal] = []
    rejected: list[RejectedRecord] = []
    error: str | None = None
    try:
        async with anyio.create_task_group() as group:
            for index in range(len(attempts)):
                group.start_soon(one, index)
        proposals, rejected = await group_advantage(
            caller,
            settings,
            aliases=aliases,
            problem=problem,
            summaries=[(texts[index], grades[index]) for index in range(len(attempts))],
            show_answer=False,
        )
    except* LearnerError as errors:
        error = f"{'advantage' if len(texts) == len(attempts) else 'summary'}: {describe(errors)}"
    if error is None:
        consolidated = await consolidate_and_apply(
            caller, settings, library, proposals, provenance=provenance, reason=reason
        )
        rejected += consolidated.rejected
        applied = consolidated.applied
        version = consolidated.version if consolidated.applied else None
        error = None if consolidated.error is None else f"consolidation: {consolidated.error}"
    else:
        applied, version = [], None
    by_stage = caller.ledger.by_stage
    return ReflectionReport(
        problem_id=problem.problem_id,
        proposals=proposals,
        applied=applied,
        rejected=rejected,
        version=version,
        tokens=caller.ledger.total,
        tokens_by_stage={stage: by_stage[stage] for stage in STAGES if stage in by_stage},
        error=error,
    )
