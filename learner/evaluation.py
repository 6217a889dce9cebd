"""Held-out evaluation: sample each problem k times, with or without experiences, and score the answers.

Mean@k is the mean reward over all samples; Pass@k the share of problems with at least one right sample.
Experiences are shown exactly as in learning rollouts, so the comparison measures what the library adds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import anyio
from pydantic import BaseModel, Field

from debrief.learner.accounting import TokenCount
from debrief.learner.aliases import AliasMap
from debrief.learner.backend import Backends, ChatRequest
from debrief.learner.calls import Caller
from debrief.learner.config import RunConfig
from debrief.learner.datasets import Problem
from debrief.learner.library import LibraryEntry
from debrief.learner.prompts import rollout_messages
from debrief.learner.reflection import ReflectSettings, judge_response
from debrief.learner.verifiers import Verifier, safe_score

ExperiencesFor = Callable[[Problem], Awaitable[Sequence[LibraryEntry]]]
"""Which experiences to show for a problem (e.g. retrieved from a store); ``None`` evaluates without any."""


class ProblemResult(BaseModel):
    """One problem's samples and their rewards."""

    problem_id: str
    rewards: list[float]
    experiences_shown: int = Field(description="How many experiences were in the prompt.")


class EvaluationReport(BaseModel):
    """Accuracy over a problem set at k samples each."""

    samples_per_problem: int
    mean_at_k: float = Field(description="Mean reward over every sample.")
    pass_at_k: float = Field(description="Share of problems with at least one sample scoring 1.")
    problems: list[ProblemResult]
    tokens: TokenCount
    wall_seconds: float


async def evaluate(
    problems: Sequence[Problem],
    *,
    backends: Backends,
    verifier: Verifier,
    samples: int,
    experiences_for: ExperiencesFor | None = None,
    config: RunConfig | None = None,
    seed: int = 0,
) -> EvaluationReport:
    """Sample every problem ``samples`` times at the rollout temperature and score each answer."""
    config = config or RunConfig()
    caller = Caller(backends, concurrency=config.concurrency, prices=config.prices)
    reflect = ReflectSettings.of(config)
    results: dict[str, ProblemResult] = {}
    started = time.perf_counter()

    async def judge(judged: Problem, response: str) -> bool:
        return await judge_response(caller, reflect, judged, response)

    async def one(index: int, problem: Problem) -> None:
        shown = list(await experiences_for(problem)) if experiences_for is not None else []
        request = ChatRequest(
            role="policy",
            stage="rollout",
            temperature=config.rollout_temperature,
            max_tokens=config.max_completion_tokens,
            seed=seed * 1_000_003 + index * 101,
            messages=rollout_messages(config.instructions, AliasMap.of(shown).render(), problem.question),
        )
        texts, _tokens = await caller.sample(request, samples)
        rewards = []
        for text in texts:
            reward, _error = await safe_score(verifier, problem, text, judge=judge, timeout=config.verifier_timeout)
            rewards.append(reward)
        results[problem.problem_id] = ProblemResult(
            problem_id=problem.problem_id, rewards=rewards, experiences_shown=len(shown)
        )

    async with anyio.create_task_group() as group:
        for index, problem in enumerate(problems):
            group.start_soon(one, index, problem)
    ordered = [results[problem.problem_id] for problem in problems]
    every = [reward for result in ordered for reward in result.rewards]
    return EvaluationReport(
        samples_per_problem=samples,
        mean_at_k=sum(every) / len(every) if every else 0.0,
        pass_at_k=sum(1 for result in ordered if any(r >= 1.0 for r in result.rewards)) / len(ordered)
        if ordered
        else 0.0,
        problems=ordered,
        tokens=caller.ledger.total,
        wall_seconds=time.perf_counter() - started,
    )
