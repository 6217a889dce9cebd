"""One learning step: each group moves through its stages on its own; only consolidation waits for the batch."""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import anyio

from debrief.learner.agent import AgentSettings, AttemptStats, sample_agent_group
from debrief.learner.aliases import AliasMap
from debrief.learner.backend import ChatRequest
from debrief.learner.calls import Caller
from debrief.learner.checkpoint import RolloutRecord
from debrief.learner.config import RunConfig, fit_completion
from debrief.learner.credit import group_credit, worse_used
from debrief.learner.datasets import Problem
from debrief.learner.errors import LearnerError, describe
from debrief.learner.library import Library, LibraryEntry
from debrief.learner.prompts import Grade, rollout_messages
from debrief.learner.records import GroupRecord, Proposal, RejectedRecord
from debrief.learner.reflection import (
    ReflectSettings,
    Summary,
    cited_ids,
    fits_whole,
    group_advantage,
    judge_response,
    summarize,
)
from debrief.learner.verifiers import Verifier, safe_score

logger = logging.getLogger(__name__)

FAILED_SAMPLES = 2
SAMPLE_CHARACTERS = 400


def failed_samples(responses: list[str] | None, rewards: list[float] | None) -> list[str]:
    """A few replies of attempts that scored 0, cut short: what a user reads to see why a model failed."""
    if not responses or not rewards:
        return []
    failed = [reply for reply, reward in zip(responses, rewards, strict=False) if reward == 0]
    return [reply if len(reply) <= SAMPLE_CHARACTERS else reply[:SAMPLE_CHARACTERS] + "…" for reply in failed][
        :FAILED_SAMPLES
    ]


@dataclass
class GroupWork:
    """One problem's group as it moves through the step."""

    problem: Problem
    responses: list[str] | None = None
    reused: bool = False
    rewards: list[float] | None = None
    verifier_errors: int = 0
    kept: bool = False
    summaries: list[tuple[str, Grade | None]] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    error: str | None = None
    whole: bool = False
    """The advantage stage read the attempts themselves (they fit), not summaries."""
    used: list[frozenset[str]] = field(default_factory=list)
    """Per attempt (in sampled order), the experiences it used (stable ids)."""
    credit: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per experience, uses in better and worse attempts of this group."""
    trajectories: list[str] | None = None
    """Agent mode: each attempt whole (tool calls and results), what reflection reads instead of the answer."""
    attempt_stats: list[AttemptStats] | None = None

    def record(self) -> GroupRecord:
        """What the step record keeps of this group."""
        stats = self.attempt_stats
        return GroupRecord(
            tool_calls=None if stats is None else [item.tool_calls for item in stats],
            turns=None if stats is None else [item.turns for item in stats],
            tool_errors=0 if stats is None else sum(item.tool_errors for item in stats),
            problem_id=self.problem.problem_id,
            rewards=self.rewards,
            kept=self.kept,
            proposals=len(self.proposals),
            verifier_errors=self.verifier_errors,
            reused=self.reused,
            error=self.error,
            failed_replies=failed_samples(self.responses, self.rewards),
        )


@dataclass(frozen=True, kw_only=True)
class StepContext:
    """What every phase of a step needs."""

    config: RunConfig
    step: int
    caller: Caller
    library: Library
    verifier: Verifier
    aliases: AliasMap
    reused: dict[str, RolloutRecord]
    on_rollout: Callable[[GroupWork, RolloutRecord], Awaitable[None]]
    on_group_done: Callable[[GroupWork], None]

    @property
    def reflect(self) -> ReflectSettings:
        """Settings of the reflection stages."""
        return ReflectSettings.of(self.config)


def group_seed(config: RunConfig, step: int, problem_id: str) -> int:
    """The sampling seed of one group: the same for the same run seed, step and problem."""
    return zlib.crc32(f"{config.seed}:{step}:{problem_id}".encode())


async def _shown(ctx: StepContext, problem: Problem) -> Sequence[LibraryEntry]:
    mode = ctx.config.injection
    if mode == "auto":
        mode = "all" if len(ctx.aliases.entries) <= ctx.config.retrieve_threshold else "retrieve"
    if mode == "all" or not ctx.aliases.entries:
        return ctx.aliases.entries
    return await ctx.library.relevant(problem.question, ctx.config.retrieve_k)


async def rollout(ctx: StepContext, work: GroupWork) -> None:
    """Sample the group's attempts, unless an interrupted run of this step already paid for them."""
    saved = ctx.reused.get(work.problem.problem_id)
    if saved is not None:
        work.responses, work.reused = list(saved.responses), True
        work.trajectories, work.attempt_stats = saved.trajectories, saved.attempt_stats
        return
    request = ChatRequest(
        role="policy",
        stage="rollout",
        temperature=ctx.config.rollout_temperature,
        max_tokens=ctx.config.max_completion_tokens,
        top_p=ctx.config.top_p,
        seed=group_seed(ctx.config, ctx.step, work.problem.problem_id),
        messages=rollout_messages(
            ctx.config.instructions,
            ctx.aliases.render(await _shown(ctx, work.problem)),
            work.problem.question,
            placement=ctx.config.placement,
        ),
    )
    request = replace(request, max_tokens=fit_completion(request, ctx.config.context_tokens))
    # Agent mode (issue 13): G concurrent multi-turn loops with the run's tools instead of one sample of G.
    if ctx.config.agent:
        agents = await sample_agent_group(
            ctx.caller, ctx.caller.backends.tools, request, ctx.config.group_size, AgentSettings.of(ctx.config)
        )
        work.responses, work.trajectories, work.attempt_stats = agents.answers, agents.rendered, agents.stats
        await ctx.on_rollout(
            work,
            RolloutRecord(
                responses=agents.answers,
                tokens=agents.tokens,
                trajectories=agents.rendered,
                attempt_stats=agents.stats,
            ),
        )
        return
    texts, tokens = await ctx.caller.sample(request, ctx.config.group_size)
    work.responses = texts
    await ctx.on_rollout(work, RolloutRecord(responses=texts, tokens=tokens))


async def verify(ctx: StepContext, work: GroupWork) -> None:
    """Score the attempts and decide whether the group goes on to reflection."""
    responses = work.responses or []
    graded = ctx.config.ground_truth
    problem = work.problem
    if graded and problem.answer is None and ctx.verifier.needs_answer:
        raise LearnerError(f"problem {problem.problem_id!r} has no ground truth for verifier {ctx.verifier.name!r}")
    if graded or problem.answer is not None:
        scores: dict[int, float] = {}

        async def judge(judged: Problem, response: str) -> bool:
            return await judge_response(ctx.caller, ctx.reflect, judged, response)

        async def score(index: int) -> None:
            value, error = await safe_score(
                ctx.verifier, problem, responses[index], judge=judge, timeout=ctx.config.verifier_timeout
            )
            scores[index] = value
            if error is not None:
                work.verifier_errors += 1
                logger.warning("problem %r attempt %d: %s", problem.problem_id, index, error)

        async with anyio.create_task_group() as group:
            for index in range(len(responses)):
                group.start_soon(score, index)
        work.rewards = [scores[index] for index in range(len(responses))]
    if not graded or len(responses) == 1:
        work.kept = bool(responses)
    else:
        # graded rewards are grades: any difference within the group is a signal, not only 0 < mean < 1
        work.kept = len(set(work.rewards or [])) > 1


def _order(work: GroupWork) -> list[int]:
    """Attempt indices best first (stable), or as sampled when ungraded."""
    indices = list(range(len(work.responses or [])))
    if work.rewards is None:
        return indices
    rewards = work.rewards
    return sorted(indices, key=lambda index: -rewards[index])


async def summaries(ctx: StepContext, work: GroupWork) -> None:
    """Summarize each attempt of a kept group, best first; or read the group whole when it fits and may be."""
    if not work.kept:
        return
    responses = work.responses or []
    attempts = work.trajectories or responses
    graded = ctx.config.ground_truth and work.rewards is not None
    grades: list[Grade | None] = (
        [Grade.of_reward(reward) for reward in work.rewards or []] if graded else [None] * len(responses)
    )
    order = _order(work) if graded else list(range(len(responses)))
    if ctx.config.reflection_input == "auto" and fits_whole(attempts, ctx.reflect):
        work.whole = True
        work.used = [frozenset(cited_ids(attempts[index], ctx.aliases)) for index in range(len(attempts))]
        work.summaries = [(attempts[index], grades[index]) for index in order]
        return
    done: dict[int, Summary] = {}

    async def one(index: int) -> None:
        done[index] = await summarize(
            ctx.caller,
            ctx.reflect,
            aliases=ctx.aliases,
            problem=work.problem,
            attempt=attempts[index],
            grade=grades[index],
            show_answer=ctx.config.ground_truth,
        )

    async with anyio.create_task_group() as group:
        for index in range(len(responses)):
            group.start_soon(one, index)
    work.used = [done[index].used for index in range(len(responses))]
    work.summaries = [(done[index].text, grades[index]) for index in order]


async def advantage(ctx: StepContext, work: GroupWork) -> None:
    """Ask the kept group for its proposals."""
    if not work.kept:
        return
    rewards = work.rewards if ctx.config.ground_truth else None
    work.credit = group_credit(rewards, work.used)
    work.proposals, work.rejected = await group_advantage(
        ctx.caller,
        ctx.reflect,
        aliases=ctx.aliases,
        problem=work.problem,
        summaries=work.summaries,
        show_answer=ctx.config.ground_truth,
        whole=work.whole,
        evidence=worse_used(rewards, work.used),
        step=ctx.step,
    )


PHASES = (rollout, verify, summaries, advantage)


async def _run_phase(
    ctx: StepContext, work: GroupWork, phase: Callable[[StepContext, GroupWork], Awaitable[None]]
) -> None:
    # except*: a phase's concurrent calls (summaries, single-request samples) fail as an exception group.
    try:
        await phase(ctx, work)
    except* LearnerError as errors:
        work.error = f"{phase.__name__}: {describe(errors)}"
        logger.warning("problem %r failed: %s", work.problem.problem_id, work.error)


async def _pipeline(ctx: StepContext, work: GroupWork) -> None:
    for phase in PHASES:
        await _run_phase(ctx, work, phase)
        if work.error is not None:
            break
    ctx.on_group_done(work)


async def run_groups(ctx: StepContext, problems: Sequence[Problem]) -> list[GroupWork]:
    """Take every problem of the batch through the group phases, pipelined or stage by stage."""
    works = [GroupWork(problem=problem) for problem in problems]
    if ctx.config.schedule == "pipelined":
        async with anyio.create_task_group() as group:
            for work in works:
                group.start_soon(_pipeline, ctx, work)
        return works
    for phase in PHASES:
        async with anyio.create_task_group() as group:
            for work in works:
                if work.error is None:
                    group.start_soon(_run_phase, ctx, work, phase)
    for work in works:
        ctx.on_group_done(work)
    return works


def rejection_counts(rejected: Sequence[RejectedRecord]) -> dict[str, int]:
    """Rejections per kind."""
    return dict(Counter(item.kind for item in rejected))
